// The tokend console: sign-in, then one page at a time (#/keys, #/audit, #/accounts,
// #/scopes). The URL fragment names the page only: never a key, a secret or a token.
// Built only on /oauth2/token and /admin/v1 (same origin); see api.js for the session.

import { signIn, signOut, signedIn, can, clientId, api, onSessionEnd, ApiError } from "./js/api.js";
import { h, clear, fill, $ } from "./js/dom.js";
import { closeDialog } from "./js/dialog.js";
import * as keys from "./js/keys.js";
import * as audit from "./js/audit.js";
import { renderAccounts, renderScopes } from "./js/operator.js";

const PAGES = {
	keys: { title: "API Keys", render: keys.render },
	audit: { title: "Audit log", render: audit.render },
	accounts: { title: "Accounts", render: renderAccounts },
	scopes: { title: "Scopes", render: renderScopes },
};

function pageName() {
	const m = /^#\/([a-z]+)$/.exec(location.hash);
	return m && PAGES[m[1]] ? m[1] : "keys";
}

function showSignIn(notice) {
	closeDialog();
	clear($("#page"));
	$("#nav").hidden = true;
	$("#who").hidden = true;
	$("#signin").hidden = false;
	$("#signin-notice").textContent = notice || "";
	$("#signin-error").textContent = "";
	document.title = "Sign in \u2014 tokend console";
	$("#signin-id").focus();
}

function describe(c) {
	if (c.operator)
		return "Operator: every account, every change";
	if (c.write)
		return "Administrator: read and change this account's keys";
	return "Read-only administrator: can view, cannot change keys";
}

async function showApp() {
	$("#signin").hidden = true;
	$("#nav").hidden = false;
	$("#who").hidden = false;
	const c = can();
	document.querySelectorAll("[data-operator]").forEach((e) => { e.hidden = !c.operator; });
	$("#who-can").textContent = describe(c);
	$("#who-can").dataset.can = c.operator ? "operator" : (c.write ? "write" : "read");
	try {
		const a = await api("GET", "/account");
		$("#who-account").textContent = `${a.name || a.id} (${a.id}) \u00b7 key ${clientId()}`;
	} catch (e) {
		$("#who-account").textContent = `key ${clientId()}`;
	}
	await route();
}

let routing = 0;
async function route() {
	if (!signedIn())
		return;
	const name = pageName();
	const page = PAGES[name];
	const n = ++routing;
	document.querySelectorAll("#nav a[data-page]").forEach((a) => {
		if (a.dataset.page === name)
			a.setAttribute("aria-current", "page");
		else
			a.removeAttribute("aria-current");
	});
	document.title = `${page.title} \u2014 tokend console`;
	const root = $("#page");
	root.dataset.page = name;
	try {
		await page.render(root);
	} catch (e) {
		if (n !== routing || !signedIn())
			return;
		fill(root, h("h1", { id: "page-title", tabindex: "-1" }, page.title),
			h("p", { class: "error", role: "alert", "data-testid": "page-error" },
				e instanceof ApiError ? e.message : "Something went wrong."));
	}
}

async function onSubmit(ev) {
	ev.preventDefault();
	const idEl = $("#signin-id");
	const secretEl = $("#signin-secret");
	const err = $("#signin-error");
	const id = idEl.value.trim();
	const secret = secretEl.value.trim();
	// The secret leaves the field at once, whatever happens next.
	secretEl.value = "";
	err.textContent = "";
	if (!id || !secret) {
		err.textContent = "Enter the key ID and its secret.";
		(id ? secretEl : idEl).focus();
		return;
	}
	const btn = ev.target.querySelector("button[type=submit]");
	btn.disabled = true;
	try {
		await signIn(id, secret);
		idEl.value = "";
		$("#signin-notice").textContent = "";
		if (!location.hash)
			history.replaceState(null, "", "#/keys");
		await showApp();
		const t = document.getElementById("page-title");
		if (t)
			t.focus();
	} catch (e) {
		if (e.status === 401 || e.code === "invalid_client")
			err.textContent = "Sign-in failed: the key ID or the secret is wrong, or the key is not usable.";
		else if (e.status === 404)
			err.textContent = "Sign-in failed: this address has no token endpoint (/oauth2/token answers 404 here).";
		else
			err.textContent = `Sign-in failed: ${e.message}`;
		secretEl.focus();
	} finally {
		btn.disabled = false;
	}
}

function boot() {
	$("#signin-form").addEventListener("submit", onSubmit);
	$("#sign-out").addEventListener("click", () => {
		signOut();
		showSignIn("You signed out.");
	});
	onSessionEnd((message) => showSignIn(message));
	window.addEventListener("hashchange", () => {
		if (signedIn())
			route().then(() => { const t = document.getElementById("page-title"); if (t) t.focus(); });
	});
	showSignIn("");
}

if (document.readyState === "loading")
	document.addEventListener("DOMContentLoaded", boot);
else
	boot();
