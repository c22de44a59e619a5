// Operator pages: accounts (create, key limit, disable/enable) and the scope catalogue
// (everyone signed in reads it; an operator adds scopes).

import { api, can } from "./api.js";
import { h, fill, announce, timeEl, newId } from "./dom.js";

function errorLine(testid) {
	return h("p", { class: "error", role: "alert", "data-testid": testid });
}

export async function renderAccounts(root) {
	if (!can().operator) {
		fill(root, h("h1", { id: "page-title", tabindex: "-1" }, "Accounts"),
			h("p", { class: "note" }, "Only an operator (tokend:operator) can manage accounts."));
		return;
	}
	const data = await api("GET", "/accounts");
	const err = errorLine("accounts-error");
	const id = h("input", { id: "acct-id", required: true, maxlength: "63", pattern: "[a-z0-9][a-z0-9_-]{0,62}",
		"aria-describedby": "acct-id-help", "data-testid": "acct-id" });
	const name = h("input", { id: "acct-name", maxlength: "100", "data-testid": "acct-name" });
	const limit = h("input", { id: "acct-limit", type: "number", min: "0", max: "100000", value: "3", "data-testid": "acct-limit" });
	const form = h("form", { class: "inline-form", novalidate: true, "aria-labelledby": "acct-new" },
		h("h2", { id: "acct-new" }, "New account"),
		h("div", { class: "field" }, h("label", { for: "acct-id" }, "Account ID"), id,
			h("p", { id: "acct-id-help", class: "help" }, "Lower-case letters, digits, - and _.")),
		h("div", { class: "field" }, h("label", { for: "acct-name" }, "Name (optional)"), name),
		h("div", { class: "field" }, h("label", { for: "acct-limit" }, "Key limit"), limit),
		h("button", { type: "submit", class: "primary", "data-testid": "acct-create" }, "Create account"));
	form.addEventListener("submit", async (ev) => {
		ev.preventDefault();
		err.textContent = "";
		const body = { id: id.value.trim(), key_limit: Number(limit.value) };
		if (name.value.trim())
			body.name = name.value.trim();
		if (!body.id || !Number.isInteger(body.key_limit)) {
			err.textContent = "Give an account ID and a whole-number key limit.";
			return;
		}
		try {
			await api("POST", "/accounts", { body });
			announce(`Account ${body.id} created`);
			await renderAccounts(root);
		} catch (e) {
			err.textContent = e.message;
		}
	});
	const rows = (data.accounts || []).map((a) => {
		const lid = newId("limit");
		const lim = h("input", { id: lid, type: "number", min: "0", max: "100000", value: String(a.key_limit), class: "num",
			"data-testid": "acct-row-limit" });
		const save = h("button", { type: "button", class: "small", "data-testid": "acct-row-save",
			on: { click: () => patch(a, { key_limit: Number(lim.value) }, "acct-row-save") } }, "Save limit");
		const dis = h("button", { type: "button", class: a.disabled_at ? "small" : "small danger", "data-testid": "acct-row-toggle",
			on: { click: () => patch(a, { disabled: !a.disabled_at }, "acct-row-toggle") } }, a.disabled_at ? "Enable" : "Disable");
		return h("tr", { "data-testid": "account-row", dataset: { accountId: a.id } },
			h("td", {}, h("code", {}, a.id)),
			h("td", {}, a.name),
			h("td", { "data-testid": "acct-row-count" }, `${a.active_keys} of ${a.key_limit}`),
			h("td", {}, h("label", { for: lid, class: "visually-hidden" }, `Key limit of ${a.id}`), lim, " ", save),
			h("td", {}, (a.scopes || []).join(" ") || h("span", { class: "muted" }, "none")),
			h("td", { "data-testid": "acct-row-state" }, a.disabled_at ? "disabled" : "active"),
			h("td", {}, dis));
	});
	async function patch(a, body, testid) {
		err.textContent = "";
		if (body.key_limit !== undefined && !Number.isInteger(body.key_limit)) {
			err.textContent = "The key limit must be a whole number.";
			return;
		}
		try {
			await api("PATCH", `/accounts/${encodeURIComponent(a.id)}`, { body });
			announce(`Account ${a.id} changed`);
			await renderAccounts(root);
			const row = [...root.querySelectorAll("[data-testid=account-row]")].find((r) => r.dataset.accountId === a.id);
			const b = row && row.querySelector(`[data-testid=${testid}]`);
			if (b)
				b.focus();
		} catch (e) {
			err.textContent = e.message;
		}
	}
	fill(root, 
		h("h1", { id: "page-title", tabindex: "-1" }, "Accounts"),
		err,
		h("div", { class: "table-wrap" }, h("table", {},
			h("caption", { class: "visually-hidden" }, "Accounts"),
			h("thead", {}, h("tr", {}, ["ID", "Name", "Active keys", "Key limit", "Scope allow-list", "State", "Actions"]
				.map((t) => h("th", { scope: "col" }, t)))),
			h("tbody", {}, rows))),
		form);
}

export async function renderScopes(root) {
	const data = await api("GET", "/scopes");
	const err = errorLine("scopes-error");
	let form = null;
	if (can().operator) {
		const name = h("input", { id: "scope-name", required: true, maxlength: "128", "data-testid": "scope-name" });
		const desc = h("input", { id: "scope-desc", maxlength: "500", "data-testid": "scope-desc" });
		form = h("form", { class: "inline-form", novalidate: true, "aria-labelledby": "scope-new" },
			h("h2", { id: "scope-new" }, "Add a scope"),
			h("div", { class: "field" }, h("label", { for: "scope-name" }, "Name"), name),
			h("div", { class: "field" }, h("label", { for: "scope-desc" }, "Description (optional)"), desc),
			h("button", { type: "submit", class: "primary", "data-testid": "scope-add" }, "Add scope"));
		form.addEventListener("submit", async (ev) => {
			ev.preventDefault();
			err.textContent = "";
			const body = { name: name.value.trim() };
			if (desc.value.trim())
				body.description = desc.value.trim();
			if (!body.name) {
				err.textContent = "Give the scope a name.";
				return;
			}
			try {
				await api("POST", "/scopes", { body });
				announce(`Scope ${body.name} added`);
				await renderScopes(root);
			} catch (e) {
				err.textContent = e.message;
			}
		});
	}
	fill(root, 
		h("h1", { id: "page-title", tabindex: "-1" }, "Scope catalogue"),
		h("p", { class: "muted" }, "Every scope a key may hold. Scopes are never removed."),
		err,
		h("div", { class: "table-wrap" }, h("table", {},
			h("caption", { class: "visually-hidden" }, "Scopes"),
			h("thead", {}, h("tr", {}, ["Name", "Description", "Added"].map((t) => h("th", { scope: "col" }, t)))),
			h("tbody", {}, (data.scopes || []).map((s) => h("tr", { "data-testid": "scope-row", dataset: { scope: s.name } },
				h("td", {}, h("code", {}, s.name)), h("td", {}, s.description), h("td", {}, timeEl(s.created_at))))))),
		form);
}
