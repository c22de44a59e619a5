// The API Keys page: sections Enabled, Disabled, Expired and Revoked (collapsed), search
// and sort, inline rename, the enable toggle, and the generate, one-time secret, revoke
// and delete dialogs. The table is described by COLUMNS: adding a column is one entry.

import { api, all, can, serverMeta, ApiError } from "./api.js";
import { h, clear, fill, announce, timeEl, dateEl, exact, relative, newId } from "./dom.js";
import { openDialog, actions } from "./dialog.js";
import { snippets } from "./snippets.js";
import { copyText } from "./copy.js";

const DAY = 86400 * 1000;
const SECTIONS = [
	{ state: "enabled", title: "Enabled", open: true },
	{ state: "disabled", title: "Disabled", open: true },
	{ state: "expired", title: "Expired", open: true },
	{ state: "revoked", title: "Revoked", open: false },
];

const view = {
	root: null, account: null, catalogue: [], keys: [], search: "", sort: "last_used",
	open: {}, error: "",
};

function stale(k, now) {
	const last = k.last_used_at ? Date.parse(k.last_used_at) : Date.parse(k.created_at);
	return now - last > 30 * DAY;
}

function cellText(v, empty) {
	return v === null || v === undefined || v === "" ? h("span", { class: "muted" }, empty || "\u2014") : String(v);
}

// ---------------------------------------------------------------- columns
const COLUMNS = [
	{ id: "name", title: "Name", cell: nameCell },
	{ id: "enabled", title: "Enabled", cell: toggleCell },
	{ id: "key", title: "Key ID", cell: (k) => h("span", { class: "keyid" },
		h("code", { "data-testid": "key-id" }, k.client_id),
		h("button", { type: "button", class: "small", "aria-label": `Copy key ID of ${k.name}`,
			"data-testid": "copy-key-id", on: { click: (e) => copyText(k.client_id, e.currentTarget) } }, "Copy")) },
	{ id: "secret", title: "Secret", cell: secretCell },
	{ id: "scopes", title: "Scopes", cell: (k) => h("ul", { class: "chips" },
		k.scopes.map((s) => h("li", {}, s))) },
	{ id: "subject", title: "Subject / member", cell: (k) => k.kind === "member" ?
		h("span", { "data-testid": "key-member" }, "member ", h("strong", {}, k.member_name || k.member)) :
		cellText(k.subject, "the key") },
	{ id: "kind", title: "Kind", cell: (k) => h("ul", { class: "chips", "data-testid": "key-kind" },
		h("li", {}, k.kind || "account"), k.role ? h("li", {}, "role " + k.role) : null,
		k.environment ? h("li", {}, k.environment) : null) },
	{ id: "created", title: "Created", cell: (k) => timeEl(k.created_at) },
	{ id: "last_used", title: "Last used", cell: (k) => h("span", {}, timeEl(k.last_used_at),
		stale(k, Date.now()) && k.state !== "revoked" ?
			h("span", { class: "badge warn", "data-testid": "stale-mark" }, "unused 30+ days") : null) },
	{ id: "expires", title: "Expires", cell: (k) => k.state === "revoked" ?
		h("span", {}, "revoked ", timeEl(k.revoked_at)) : dateEl(k.expires_at) },
	{ id: "actions", title: "Actions", cell: actionsCell },
];

// A publishable key has no secret: its (public) ID is the credential; it shows
// the browser origins it may be used from instead.
function secretCell(k) {
	if (k.kind !== "publishable")
		return h("code", { "data-testid": "key-masked" }, k.masked);
	return h("span", { "data-testid": "key-origins" }, h("span", { class: "muted" }, "none; origins:"),
		h("ul", { class: "chips" }, (k.allowed_origins || []).map((o) => h("li", {}, h("code", {}, o)))));
}

function nameCell(k) {
	if (!can().write)
		return h("span", { class: "keyname", "data-testid": "key-name" }, k.name);
	return h("button", { type: "button", class: "keyname link", "data-testid": "key-name",
		title: "Rename", on: { click: (e) => startRename(k, e.currentTarget) } }, k.name);
}

function startRename(k, btn) {
	const td = btn.parentElement;
	let done = false;
	const input = h("input", { class: "rename", value: k.name, maxlength: "100", "aria-label": `New name for key ${k.client_id}`,
		"data-testid": "rename-input" });
	const cancel = () => {
		if (done)
			return;
		done = true;
		td.replaceChildren(nameCell(k));
		td.querySelector("button").focus();
	};
	input.addEventListener("keydown", async (ev) => {
		if (ev.key === "Escape") {
			ev.preventDefault();
			ev.stopPropagation();
			cancel();
		} else if (ev.key === "Enter") {
			ev.preventDefault();
			const name = input.value.trim();
			if (name === k.name) {
				cancel();
				return;
			}
			done = true;
			input.disabled = true;
			try {
				await api("PATCH", `/keys/${encodeURIComponent(k.client_id)}`, { body: { name } });
				announce(`Renamed to ${name}`);
				await reload();
				focusRow(k.client_id, "key-name");
			} catch (e) {
				done = false;
				input.disabled = false;
				input.focus();
				showError(e);
			}
		}
	});
	input.addEventListener("blur", () => {
		if (!input.disabled)
			cancel();
	});
	td.replaceChildren(input);
	input.focus();
	input.select();
}

function toggleCell(k) {
	if (k.state === "revoked")
		return h("span", { class: "muted", "data-testid": "no-toggle" }, "revoked");
	if (k.state === "expired")
		return h("span", { class: "muted", "data-testid": "no-toggle" }, "expired");
	const id = newId("toggle");
	const input = h("input", { type: "checkbox", role: "switch", id, class: "switch", checked: k.state === "enabled",
		disabled: !can().write, "data-testid": "key-toggle",
		on: { change: () => setEnabled(k, input.checked) } });
	return h("span", { class: "toggle" }, input,
		h("label", { for: id, class: "visually-hidden" }, `Enabled: ${k.name}`));
}

async function setEnabled(k, on) {
	try {
		await api("POST", `/keys/${encodeURIComponent(k.client_id)}/${on ? "enable" : "disable"}`);
		announce(`${k.name} ${on ? "enabled" : "disabled"}`);
		await reload();
		focusRow(k.client_id, "key-toggle");
	} catch (e) {
		showError(e);
		await reload().catch(() => {});
	}
}

function actionsCell(k) {
	const w = can().write;
	return h("span", { class: "row-actions" },
		k.state !== "revoked" ? h("button", { type: "button", class: "small", disabled: !w, "data-testid": "revoke",
			"aria-label": `Revoke ${k.name}`, on: { click: () => revokeDialog(k) } }, "Revoke") : null,
		h("button", { type: "button", class: "small danger", disabled: !w, "data-testid": "delete",
			"aria-label": `Delete ${k.name}`, on: { click: () => deleteDialog(k) } }, "Delete"));
}

function focusRow(id, testid) {
	const row = [...document.querySelectorAll("[data-testid=key-row]")].find((r) => r.dataset.keyId === id);
	const el = row && row.querySelector(`[data-testid=${testid}]`);
	if (el)
		el.focus();
}

// ---------------------------------------------------------------- page
function showError(e) {
	view.error = e instanceof ApiError || e instanceof Error ? e.message : String(e);
	const p = document.querySelector("[data-testid=page-error]");
	if (p)
		p.textContent = view.error;
}

export async function reload() {
	const [account, keys] = await Promise.all([api("GET", "/account"), all("/keys", "keys")]);
	view.account = account;
	view.keys = keys;
	draw();
}

export async function render(root) {
	view.root = root;
	view.error = "";
	fill(root, h("p", { class: "muted" }, "Loading keys\u2026"));
	const [account, catalogue, keys] = await Promise.all([
		api("GET", "/account"), api("GET", "/scopes"), all("/keys", "keys")]);
	view.account = account;
	view.catalogue = catalogue.scopes || [];
	view.keys = keys;
	draw();
}

function sorted(keys) {
	const by = view.sort;
	return [...keys].sort((a, b) => {
		if (by === "last_used") {
			const x = a.last_used_at ? Date.parse(a.last_used_at) : -Infinity;
			const y = b.last_used_at ? Date.parse(b.last_used_at) : -Infinity;
			if (x !== y)
				return y > x ? 1 : -1;
		}
		return Date.parse(b.created_at) - Date.parse(a.created_at) || a.client_id.localeCompare(b.client_id);
	});
}

function genState() {
	const a = view.account;
	if (!can().write)
		return { ok: false, why: "Only an administrator of the account can change keys." };
	if (a.active_keys >= a.key_limit)
		return { ok: false, why: `The account has reached its limit of ${a.key_limit} active keys: revoke or delete a key, or ask an operator to raise the limit.` };
	return { ok: true, why: "" };
}

function draw() {
	const root = view.root;
	if (!root || !root.isConnected)
		return;
	const a = view.account;
	const g = genState();
	const hadFocus = document.activeElement && document.activeElement.id;
	const search = h("input", { id: "key-search", type: "search", value: view.search, "data-testid": "key-search",
		on: { input: (e) => { view.search = e.target.value; drawSections(); } } });
	const sort = h("select", { id: "key-sort", "data-testid": "key-sort",
		on: { change: (e) => { view.sort = e.target.value; drawSections(); } } },
		h("option", { value: "last_used", selected: view.sort === "last_used" ? "" : null }, "Last used"),
		h("option", { value: "created", selected: view.sort === "created" ? "" : null }, "Created"));
	fill(root, 
		h("div", { class: "page-head" },
			h("div", {},
				h("h1", { id: "page-title", tabindex: "-1" }, "API Keys"),
				h("p", { class: "muted" }, "Account ", h("strong", { "data-testid": "account-name" }, a.name || a.id),
					" (", h("code", {}, a.id), ")")),
			h("div", { class: "gen" },
				h("p", { "data-testid": "key-count" }, `${a.active_keys} of ${a.key_limit} active keys`),
				h("button", { type: "button", class: "primary", id: "generate", "data-testid": "generate",
					disabled: !g.ok, "aria-describedby": g.ok ? null : "generate-why",
					on: { click: generateDialog } }, "Generate key"),
				g.ok ? null : h("p", { id: "generate-why", class: "why", "data-testid": "generate-why" }, g.why))),
		can().write ? null : h("p", { class: "note", role: "note", "data-testid": "readonly-note" },
			"Read-only access: you can see every key, but only an administrator of the account can change keys."),
		h("p", { class: "error", role: "alert", "data-testid": "page-error" }, view.error),
		h("div", { class: "toolbar" },
			h("div", { class: "field inline" }, h("label", { for: "key-search" }, "Search by name or ID"), search),
			h("div", { class: "field inline" }, h("label", { for: "key-sort" }, "Sort by"), sort)),
		h("div", { id: "key-sections" }));
	drawSections();
	if (hadFocus === "key-search")
		search.focus();
}

function drawSections() {
	const box = document.getElementById("key-sections");
	if (!box)
		return;
	const term = view.search.trim().toLowerCase();
	const shown = view.keys.filter((k) => !term || k.name.toLowerCase().includes(term) ||
		k.client_id.toLowerCase().includes(term));
	clear(box);
	for (const sec of SECTIONS) {
		const keys = sorted(shown.filter((k) => k.state === sec.state));
		const open = sec.state in view.open ? view.open[sec.state] : sec.open;
		const det = h("details", { class: "section", "data-testid": `section-${sec.state}`, open,
			on: { toggle: (e) => { view.open[sec.state] = e.target.open; } } },
			h("summary", {}, h("h2", {}, `${sec.title} (${keys.length})`)));
		if (keys.length === 0) {
			det.append(h("p", { class: "muted" }, term ? "No key matches the search." : `No ${sec.title.toLowerCase()} keys.`));
		} else {
			const table = h("table", { class: "keys" },
				h("caption", { class: "visually-hidden" }, `${sec.title} keys`),
				h("thead", {}, h("tr", {}, COLUMNS.map((c) => h("th", { scope: "col", class: `col-${c.id}` }, c.title)))),
				h("tbody", {}, keys.map((k) => h("tr", { "data-testid": "key-row", dataset: { keyId: k.client_id, state: k.state } },
					COLUMNS.map((c) => h("td", { class: `col-${c.id}` }, c.cell(k)))))));
			det.append(h("div", { class: "table-wrap" }, table));
		}
		box.append(det);
	}
}

function generateFallback() {
	return document.getElementById("generate") || document.getElementById("page-title");
}

// ---------------------------------------------------------------- generate
// A fresh Idempotency-Key per submission (crypto.randomUUID needs a secure context;
// getRandomValues works on plain http too).
function idempotencyKey() {
	if (typeof crypto.randomUUID === "function")
		return crypto.randomUUID();
	const b = crypto.getRandomValues(new Uint8Array(16));
	return "console-" + [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

function isoIn(ms) {
	return new Date(Date.now() + ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function generateDialog() {
	const allowed = new Set(view.account.scopes || []);
	const scopes = view.catalogue.filter((s) => allowed.has(s.name));
	openDialog({
		title: "Generate key", kind: "generate", fallback: generateFallback,
		build(body, close) {
			const err = h("p", { class: "error", role: "alert", "data-testid": "generate-error" });
			const name = h("input", { id: "gen-name", maxlength: "100", required: true, "data-testid": "gen-name" });
			const subject = h("input", { id: "gen-subject", maxlength: "255", "data-testid": "gen-subject",
				"aria-describedby": "gen-subject-help" });
			const date = h("input", { id: "gen-date", type: "date", "data-testid": "gen-date" });
			const dateField = h("div", { class: "field", hidden: true }, h("label", { for: "gen-date" }, "Expiry date (UTC, end of day)"), date);
			const expiry = h("select", { id: "gen-expiry", "data-testid": "gen-expiry",
				on: { change: () => { dateField.hidden = expiry.value !== "date"; } } },
				h("option", { value: "30" }, "In 30 days"), h("option", { value: "90" }, "In 90 days"),
				h("option", { value: "date" }, "On a date"), h("option", { value: "never" }, "Never"));
			const lifetime = h("select", { id: "gen-lifetime", "data-testid": "gen-lifetime" },
				h("option", { value: "" }, "Server default"), h("option", { value: "300" }, "5 minutes"),
				h("option", { value: "900" }, "15 minutes"), h("option", { value: "3600" }, "1 hour"));
			const boxes = scopes.map((s) => {
				const id = newId("scope");
				return h("div", { class: "check" },
					h("input", { type: "checkbox", id, value: s.name, "data-testid": "gen-scope" }),
					h("label", { for: id }, h("code", {}, s.name), s.description ? h("span", { class: "desc" }, ` \u2014 ${s.description}`) : null));
			});
			const submit = h("button", { type: "submit", class: "primary", "data-testid": "gen-submit" }, "Generate");
			const form = h("form", { novalidate: true },
				h("div", { class: "field" }, h("label", { for: "gen-name" }, "Name"), name),
				h("fieldset", { class: "scopes" }, h("legend", {}, "Scopes"),
					boxes.length ? boxes : h("p", { class: "muted" }, "The account's scope allow-list is empty: an operator must grant scopes first.")),
				h("div", { class: "field" }, h("label", { for: "gen-subject" }, "Subject (optional)"), subject,
					h("p", { id: "gen-subject-help", class: "help" }, "The member this key acts for; its tokens then name it as sub.")),
				h("div", { class: "field" }, h("label", { for: "gen-expiry" }, "Expiry"), expiry),
				dateField,
				h("div", { class: "field" }, h("label", { for: "gen-lifetime" }, "Token lifetime"), lifetime),
				err,
				actions(h("button", { type: "button", on: { click: close } }, "Cancel"), submit));
			form.addEventListener("submit", async (ev) => {
				ev.preventDefault();
				err.textContent = "";
				const req = { name: name.value.trim(), scopes: boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value) };
				if (!req.name) {
					err.textContent = "Give the key a name.";
					name.focus();
					return;
				}
				if (req.scopes.length === 0) {
					err.textContent = "Choose at least one scope.";
					return;
				}
				if (subject.value.trim())
					req.subject = subject.value.trim();
				if (expiry.value === "30" || expiry.value === "90") {
					req.expires_at = isoIn(Number(expiry.value) * DAY);
				} else if (expiry.value === "date") {
					if (!/^\d{4}-\d{2}-\d{2}$/.test(date.value)) {
						err.textContent = "Choose the expiry date.";
						date.focus();
						return;
					}
					req.expires_at = `${date.value}T23:59:59Z`;
					if (Date.parse(req.expires_at) <= Date.now()) {
						err.textContent = "The expiry date must be in the future.";
						date.focus();
						return;
					}
				}
				if (lifetime.value)
					req.token_lifetime = Number(lifetime.value);
				submit.disabled = true;
				try {
					const created = await api("POST", "/keys", { body: req,
						headers: { "Idempotency-Key": idempotencyKey() } });
					const meta = await serverMeta();
					close();
					await reload().catch(showError);
					secretDialog(created, meta);
				} catch (e) {
					submit.disabled = false;
					err.textContent = e.message + (e.field ? ` (${e.field})` : "");
				}
			});
			body.append(form);
			return name;
		},
	});
}

// The one-time dialog. The secret lives in this closure and the dialog's DOM only;
// closing the dialog empties it and drops the closure (nothing else keeps it).
function secretDialog(created, meta) {
	let secret = created.client_secret;
	created.client_secret = null;
	const clientId = created.client_id;
	openDialog({
		title: "Your new key", kind: "secret", fallback: () => focusRowEl(clientId) || generateFallback(),
		onClose() {
			secret = null;
			announce("The secret is no longer shown.");
		},
		build(body, close) {
			const list = snippets({ clientId, secret, tokenUrl: meta.token_endpoint, issuer: meta.issuer });
			const code = h("code", { "data-testid": "snippet" });
			const pre = h("pre", { class: "snippet", tabindex: "0", "aria-label": "Snippet" }, code);
			const tabs = list.map((s, i) => h("button", { type: "button", class: "tab", "aria-pressed": i === 0 ? "true" : "false",
				"data-testid": `snippet-${s.id}`, on: { click: (e) => pick(i, e.currentTarget) } }, s.label));
			let chosen = 0;
			function pick(i) {
				chosen = i;
				tabs.forEach((t, j) => t.setAttribute("aria-pressed", j === i ? "true" : "false"));
				code.textContent = list[i].text;
				pre.setAttribute("aria-label", `${list[i].label} snippet`);
			}
			pick(0);
			const done = h("button", { type: "button", class: "primary", "data-testid": "secret-done", on: { click: close } },
				"I have stored the secret");
			body.append(
				h("p", { class: "warning", "data-testid": "secret-warning" },
					h("strong", {}, "Copy the secret now: it will not be shown again."),
					" tokend stores only a hash of it. If you lose it, generate a new key."),
				h("dl", { class: "creds" },
					h("dt", {}, "Key ID"),
					h("dd", {}, h("code", { "data-testid": "new-key-id" }, clientId),
						h("button", { type: "button", class: "small", "data-testid": "copy-new-id",
							on: { click: (e) => copyText(clientId, e.currentTarget) } }, "Copy key ID")),
					h("dt", {}, "Secret"),
					h("dd", {}, h("code", { "data-testid": "new-key-secret", class: "secret" }, secret),
						h("button", { type: "button", class: "small", "data-testid": "copy-secret",
							on: { click: (e) => copyText(secret || "", e.currentTarget) } }, "Copy secret"))),
				h("section", { class: "use", "aria-labelledby": "use-title" },
					h("h3", { id: "use-title" }, "Use this key"),
					h("p", { class: "help" }, "Token URL: ", h("code", { "data-testid": "token-url" }, meta.token_endpoint),
						". The snippets read the secret from TOKEND_CLIENT_SECRET (the .env file holds it)."),
					h("div", { class: "tabs", role: "group", "aria-label": "Snippet language" }, tabs),
					pre,
					h("button", { type: "button", class: "small", "data-testid": "copy-snippet",
						on: { click: (e) => copyText(list[chosen].text, e.currentTarget) } }, "Copy snippet")),
				actions(done));
			return body.querySelector("[data-testid=copy-secret]");
		},
	});
}

function focusRowEl(id) {
	const row = [...document.querySelectorAll("[data-testid=key-row]")].find((r) => r.dataset.keyId === id);
	return row ? row.querySelector("button, input") : null;
}

// ---------------------------------------------------------------- revoke and delete
function revokeDialog(k) {
	openDialog({
		title: "Revoke key", kind: "revoke", fallback: generateFallback,
		build(body, close) {
			const err = h("p", { class: "error", role: "alert", "data-testid": "revoke-error" });
			const reason = h("input", { id: "revoke-reason", maxlength: "500", required: true, "data-testid": "revoke-reason" });
			const go = h("button", { type: "submit", class: "danger", "data-testid": "revoke-confirm" }, "Revoke key");
			const form = h("form", { novalidate: true },
				h("p", {}, "Revoke ", h("strong", {}, k.name), " (", h("code", {}, k.client_id), ")? ",
					"Revocation is permanent: the key never gets a token again and cannot be re-enabled. It stays listed under Revoked."),
				h("div", { class: "field" }, h("label", { for: "revoke-reason" }, "Reason"), reason),
				err,
				actions(h("button", { type: "button", on: { click: close } }, "Cancel"), go));
			form.addEventListener("submit", async (ev) => {
				ev.preventDefault();
				const r = reason.value.trim();
				if (!r) {
					err.textContent = "Give a reason: it is kept in the audit log.";
					reason.focus();
					return;
				}
				go.disabled = true;
				try {
					await api("POST", `/keys/${encodeURIComponent(k.client_id)}/revoke`, { body: { reason: r } });
					view.open.revoked = true;
					close();
					announce(`${k.name} revoked`);
					await reload();
					focusRow(k.client_id, "delete");
				} catch (e) {
					go.disabled = false;
					err.textContent = e.message;
				}
			});
			body.append(form);
			return reason;
		},
	});
}

function deleteDialog(k) {
	openDialog({
		title: "Delete key", kind: "delete", fallback: generateFallback,
		build(body, close) {
			let confirmed = false;
			const err = h("p", { class: "error", role: "alert", "data-testid": "delete-error" });
			const warn = h("div", { class: "warning", role: "alert", "data-testid": "recent-warning", hidden: true });
			const go = h("button", { type: "button", class: "danger", "data-testid": "delete-confirm" }, "Delete key");
			go.addEventListener("click", async () => {
				err.textContent = "";
				go.disabled = true;
				try {
					await api("DELETE", `/keys/${encodeURIComponent(k.client_id)}`, { query: confirmed ? { confirm: "true" } : null });
					close();
					announce(`${k.name} deleted`);
					await reload();
					const t = document.getElementById("page-title");
					if (t)
						t.focus();
				} catch (e) {
					go.disabled = false;
					if (e.status === 409 && e.code === "recently_used" && !confirmed) {
						let last = k.last_used_at;
						try {
							last = (await api("GET", `/keys/${encodeURIComponent(k.client_id)}`)).last_used_at || last;
						} catch (e2) {
							// keep what the list said
						}
						confirmed = true;
						fill(warn, 
							h("strong", {}, "This key was used in the last 24 hours"),
							last ? h("span", {}, " (last used ", h("time", { datetime: last, "data-testid": "recent-last-used" },
								`${relative(last)}, ${exact(last)}`), ")") : null,
							". Applications using it will stop getting tokens. Delete it anyway?");
						warn.hidden = false;
						go.textContent = "Delete anyway";
						go.dataset.testid = "delete-anyway";
						go.focus();
					} else {
						err.textContent = e.message;
					}
				}
			});
			body.append(
				h("p", {}, "Delete ", h("strong", {}, k.name), " (", h("code", {}, k.client_id), ")? ",
					"It disappears from the list and can never get a token again; the audit log keeps it."),
				warn, err,
				actions(h("button", { type: "button", "data-testid": "delete-cancel", on: { click: close } }, "Cancel"), go));
			return go;
		},
	});
}
