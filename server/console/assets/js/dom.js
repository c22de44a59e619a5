// DOM helpers. Every value reaches the page as text (textContent, attribute values):
// nothing here parses HTML, so a key name such as <img src=x onerror=...> stays text.

// h("tag", {attr: value, class: "a b", on: {click: fn}, dataset: {...}}, ...children)
// children: strings/numbers (text nodes), nodes, arrays, null/false (skipped).
export function h(tag, attrs, ...children) {
	const el = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs || {})) {
		if (v === null || v === undefined || v === false)
			continue;
		if (k === "on") {
			for (const [ev, fn] of Object.entries(v))
				el.addEventListener(ev, fn);
		} else if (k === "dataset") {
			for (const [dk, dv] of Object.entries(v))
				el.dataset[dk] = String(dv);
		} else if (k === "class") {
			el.className = v;
		} else if (k === "text") {
			el.textContent = String(v);
		} else if (k === "value") {
			el.value = String(v);
		} else if (k === "checked" || k === "disabled" || k === "hidden" || k === "required" || k === "open") {
			el[k] = Boolean(v);
		} else {
			el.setAttribute(k, v === true ? "" : String(v));
		}
	}
	append(el, children);
	return el;
}

export function append(el, children) {
	for (const c of children.flat(Infinity)) {
		if (c === null || c === undefined || c === false)
			continue;
		el.append(c instanceof Node ? c : document.createTextNode(String(c)));
	}
	return el;
}

export function clear(el) {
	el.replaceChildren();
	return el;
}

// Replaces el's children (same rules as h: null and false are skipped).
export function fill(el, ...children) {
	el.replaceChildren();
	return append(el, children);
}

export function $(sel, root) {
	return (root || document).querySelector(sel);
}

let uid = 0;
export function newId(prefix) {
	uid += 1;
	return `${prefix}-${uid}`;
}

// Announce a short message to screen readers (and tests) in the polite live region.
export function announce(text) {
	const live = document.getElementById("live");
	live.textContent = "";
	live.textContent = text;
}

// Times: the API speaks RFC 3339 UTC.
const rtf = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
export function relative(iso, now) {
	const t = Date.parse(iso);
	const s = Math.round((t - (now || Date.now())) / 1000);
	const a = Math.abs(s);
	if (a < 45)
		return rtf.format(s, "second");
	if (a < 2700)
		return rtf.format(Math.round(s / 60), "minute");
	if (a < 79200)
		return rtf.format(Math.round(s / 3600), "hour");
	if (a < 86400 * 45)
		return rtf.format(Math.round(s / 86400), "day");
	if (a < 86400 * 320)
		return rtf.format(Math.round(s / (86400 * 30)), "month");
	return rtf.format(Math.round(s / (86400 * 365)), "year");
}

export function exact(iso) {
	return new Date(Date.parse(iso)).toUTCString();
}

// <time> showing a relative time, the exact time on hover (title) and to assistive technology.
export function timeEl(iso, empty) {
	if (!iso)
		return h("span", { class: "muted" }, empty || "never");
	return h("time", { datetime: iso, title: exact(iso) }, relative(iso));
}

export function dateEl(iso, empty) {
	if (!iso)
		return h("span", { class: "muted" }, empty || "never");
	return h("time", { datetime: iso, title: exact(iso) }, iso.slice(0, 10));
}
