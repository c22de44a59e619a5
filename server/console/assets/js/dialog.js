// One modal <dialog> for every dialog of the console. Opening it remembers the focused
// element and gives it back on close; Tab and Shift+Tab cycle inside the dialog; Escape
// closes it (the native cancel event). Closing empties the dialog, so what it showed
// (a new key's secret) leaves the DOM, and runs the caller's onClose.

import { h, clear, newId } from "./dom.js";

const FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), " +
	"textarea:not([disabled]), [tabindex]:not([tabindex='-1'])";

let current = null;     // {restore, onClose}

function dlg() {
	return document.getElementById("dialog");
}

function focusables(root) {
	return [...root.querySelectorAll(FOCUSABLE)].filter((e) => !e.closest("[hidden]"));
}

function trap(ev) {
	if (ev.key !== "Tab")
		return;
	const f = focusables(dlg());
	if (f.length === 0) {
		ev.preventDefault();
		return;
	}
	const first = f[0];
	const last = f[f.length - 1];
	if (ev.shiftKey && document.activeElement === first) {
		ev.preventDefault();
		last.focus();
	} else if (!ev.shiftKey && document.activeElement === last) {
		ev.preventDefault();
		first.focus();
	}
}

function onNativeClose() {
	const d = dlg();
	d.removeEventListener("keydown", trap);
	d.removeEventListener("close", onNativeClose);
	clear(d);
	d.removeAttribute("aria-labelledby");
	d.removeAttribute("aria-describedby");
	delete d.dataset.kind;
	const c = current;
	current = null;
	if (c) {
		if (c.onClose)
			c.onClose();
		// The close event is a task of its own: the page may already have put
		// the focus where it belongs (after a revoke, the reloaded row's Delete),
		// since the browser can run the reload's network tasks first. Keep it.
		const active = document.activeElement;
		if (active && active !== document.body && active.isConnected && !d.contains(active) && active !== c.restore)
			return;
		let back = c.restore;
		if (!back || !back.isConnected || back === document.body)
			back = c.fallback ? c.fallback() : null;
		if (back && back.isConnected)
			back.focus();
	}
}

// open({title, kind, build(body, close), onClose, fallback, describedBy})
// build fills the dialog's body and returns the element to focus first (optional).
export function openDialog({ title, kind, build, onClose, fallback }) {
	const d = dlg();
	if (d.open)
		d.close();
	const titleId = newId("dlg-title");
	current = { restore: document.activeElement, onClose, fallback };
	clear(d);
	d.dataset.kind = kind || "";
	d.setAttribute("aria-labelledby", titleId);
	const close = () => {
		if (d.open)
			d.close();
	};
	const body = h("div", { class: "dialog-body" });
	d.append(
		h("div", { class: "dialog-head" },
			h("h2", { id: titleId }, title),
			h("button", { type: "button", class: "icon", "aria-label": "Close dialog", "data-testid": "dialog-close",
				on: { click: close } }, "\u00d7")),
		body);
	const first = build(body, close);
	d.addEventListener("keydown", trap);
	d.addEventListener("close", onNativeClose);
	d.showModal();
	const f = first || focusables(body)[0];
	if (f)
		f.focus();
	return close;
}

export function closeDialog() {
	const d = dlg();
	if (d.open)
		d.close();
}

// A row of buttons at the foot of a dialog.
export function actions(...buttons) {
	return h("div", { class: "dialog-actions" }, ...buttons);
}
