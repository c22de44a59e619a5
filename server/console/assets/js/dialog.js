// One modal <dialog> for every dialog of the console. Opening it remembers the focused
// element and gives it back on close; Tab and Shift+Tab cycle inside the dialog; Escape
// closes it (the native cancel event). Closing empties the dialog, so what it showed
// (a new key's secret) leaves the DOM, and runs the caller's onClose.

import { h, clear, newId } from "./dom.js";

const FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), " +
	"textarea:not([disabled]), [tabindex]:not([tabindex='-1'])";

let current = null;     // the dialog showing: {restore, onClose, fallback}
// Dialogs closed whose close event has not come yet, oldest first. The event is a
// task of its own, and the browser may run others first (a reload's network
// tasks): a new dialog may already be showing when an older one's event comes.
const closing = [];

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

// Close the dialog showing, as `c` (its close event comes later).
function closeAs(d, c) {
	if (!d.open)
		return;
	if (c && c === current) {
		closing.push(c);
		current = null;
	}
	d.close();
}

function onNativeClose() {
	const d = dlg();
	// Whose close this is: the oldest closed by us, else the one showing
	// (Escape: the browser closed it).
	const c = closing.length ? closing.shift() : current;
	if (c === current)
		current = null;
	if (c && c.onClose)
		c.onClose();
	if (d.open)
		return;           // a newer dialog shows already: it keeps the element, its content and the focus
	d.removeEventListener("keydown", trap);
	d.removeEventListener("close", onNativeClose);
	clear(d);
	d.removeAttribute("aria-labelledby");
	d.removeAttribute("aria-describedby");
	delete d.dataset.kind;
	if (c) {
		// The page may already have put the focus where it belongs (after a
		// revoke, the reloaded row's Delete) before this event came. Keep it.
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
	closeAs(d, current);
	const titleId = newId("dlg-title");
	const self = { restore: document.activeElement, onClose, fallback };
	current = self;
	clear(d);
	d.dataset.kind = kind || "";
	d.setAttribute("aria-labelledby", titleId);
	const close = () => {
		if (current === self)
			closeAs(d, self);
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
	closeAs(dlg(), current);
}

// A row of buttons at the foot of a dialog.
export function actions(...buttons) {
	return h("div", { class: "dialog-actions" }, ...buttons);
}
