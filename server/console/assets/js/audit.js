// The audit page: the account's audit log, newest first, a page at a time (the API's
// cursor; "Newer" walks back through the cursors already seen).

import { api } from "./api.js";
import { h, fill, timeEl } from "./dom.js";

const PAGE = 25;

export async function render(root) {
	const cursors = [null];     // cursors[i]: the cursor of page i
	let page = 0;
	async function show() {
		const data = await api("GET", "/audit", { query: { limit: PAGE, cursor: cursors[page] } });
		if (data.next_cursor && cursors.length === page + 1)
			cursors.push(data.next_cursor);
		const events = data.events || [];
		const newer = h("button", { type: "button", "data-testid": "audit-newer", disabled: page === 0,
			on: { click: () => { page -= 1; show().then(() => focus("audit-newer")); } } }, "Newer");
		const older = h("button", { type: "button", "data-testid": "audit-older", disabled: !data.next_cursor,
			on: { click: () => { page += 1; show().then(() => focus("audit-older")); } } }, "Older");
		fill(root, 
			h("h1", { id: "page-title", tabindex: "-1" }, "Audit log"),
			h("p", { class: "muted" }, "Every change to the account's keys, newest first."),
			events.length === 0 ? h("p", { class: "muted" }, "No events.") :
				h("div", { class: "table-wrap" }, h("table", { class: "audit" },
					h("caption", { class: "visually-hidden" }, "Audit events"),
					h("thead", {}, h("tr", {}, ["Time", "Actor", "Action", "Key", "Address", "Detail"].map((t) => h("th", { scope: "col" }, t)))),
					h("tbody", {}, events.map((e) => h("tr", { "data-testid": "audit-row", dataset: { action: e.action, key: e.key || "" } },
						h("td", {}, timeEl(e.at)),
						h("td", {}, h("code", {}, e.actor)),
						h("td", {}, e.action),
						h("td", {}, e.key ? h("code", {}, e.key) : h("span", { class: "muted" }, "\u2014")),
						h("td", {}, e.address || h("span", { class: "muted" }, "\u2014")),
						h("td", { class: "detail" }, detail(e.detail))))))),
			h("nav", { class: "pager", "aria-label": "Audit pages" }, newer,
				h("span", { "data-testid": "audit-page" }, `Page ${page + 1}`), older));
	}
	function focus(id) {
		const b = root.querySelector(`[data-testid=${id}]`);
		if (b && !b.disabled)
			b.focus();
	}
	fill(root, h("p", { class: "muted" }, "Loading the audit log\u2026"));
	await show();
}

function detail(d) {
	if (!d || typeof d !== "object" || Object.keys(d).length === 0)
		return "";
	return Object.entries(d).map(([k, v]) => `${k}: ${show(v)}`).join("; ");
}

function show(v) {
	if (v === null || v === undefined)
		return "none";
	if (Array.isArray(v))
		return v.length ? v.map(show).join(" ") : "none";
	if (typeof v === "object")
		return JSON.stringify(v);
	return String(v);
}
