// The session and every call the console makes: POST /oauth2/token and /admin/v1/...,
// same origin only. The access token and the signing-in key's secret (needed to renew
// the token before it expires) live in this module's closure only: never in
// localStorage, sessionStorage, a cookie, the URL or a global. Signing out (or any 401)
// forgets both.

const ADMIN = "/admin/v1";
const SCOPES = {
	read: "tokend:admin:read",
	write: "tokend:admin:write",
	operator: "tokend:operator",
};

let session = null;     // {clientId, secret, token, scopes:Set, expiresAt, timer}
let onEnd = () => {};   // called with a message when the session ends by itself

export class ApiError extends Error {
	constructor(status, body) {
		const desc = body && (body.error_description || body.error);
		super(desc ? String(desc) : `HTTP ${status}`);
		this.status = status;
		this.code = body && body.error ? String(body.error) : "";
		this.field = body && body.field ? String(body.field) : "";
		this.body = body || {};
	}
}

export function onSessionEnd(fn) {
	onEnd = fn;
}

export function signedIn() {
	return session !== null;
}

// What the signed-in key may do, from the scope the token endpoint granted.
export function can() {
	const s = session ? session.scopes : new Set();
	const operator = s.has(SCOPES.operator);
	const write = operator || s.has(SCOPES.write);
	const read = write || s.has(SCOPES.read);
	return { read, write, operator };
}

export function clientId() {
	return session ? session.clientId : "";
}

async function requestToken(clientId, secret) {
	const form = new URLSearchParams();
	form.set("grant_type", "client_credentials");
	form.set("client_id", clientId);
	form.set("client_secret", secret);
	let r;
	try {
		r = await fetch("/oauth2/token", {
			method: "POST",
			headers: { "Content-Type": "application/x-www-form-urlencoded" },
			body: form.toString(),
			credentials: "omit",
			cache: "no-store",
			referrerPolicy: "no-referrer",
		});
	} catch (e) {
		throw new ApiError(0, { error: "network", error_description: "tokend could not be reached" });
	}
	let body = null;
	try {
		body = await r.json();
	} catch (e) {
		body = null;
	}
	if (!r.ok || !body || typeof body.access_token !== "string")
		throw new ApiError(r.status, body);
	return body;
}

function schedule() {
	clearTimeout(session.timer);
	const left = session.expiresAt - Date.now();
	// Renew at 80% of the lifetime (at least 5 s ahead of expiry).
	const wait = Math.max(1000, Math.min(left * 0.8, left - 5000));
	session.timer = setTimeout(renew, wait);
}

async function renew() {
	if (!session)
		return;
	const s = session;
	try {
		const t = await requestToken(s.clientId, s.secret);
		if (session !== s)
			return;
		s.token = t.access_token;
		s.expiresAt = Date.now() + (t.expires_in || 300) * 1000;
		schedule();
	} catch (e) {
		if (session !== s)
			return;
		if (e.status === 401 || e.status === 400) {
			end("Your session ended: the key can no longer get a token. Sign in again.");
			return;
		}
		// tokend unreachable: try again shortly while the token still lives.
		s.timer = setTimeout(renew, 5000);
	}
}

// Obtains a token; resolves with what the key may do, or throws ApiError.
export async function signIn(id, secret) {
	signOut();
	const t = await requestToken(id, secret);
	const scopes = new Set(String(t.scope || "").split(" ").filter(Boolean));
	session = {
		clientId: id, secret, token: t.access_token, scopes,
		expiresAt: Date.now() + (t.expires_in || 300) * 1000, timer: null,
	};
	if (!can().read) {
		signOut();
		throw new ApiError(403, { error: "insufficient_scope",
			error_description: "This key holds no admin scope (tokend:admin:read, tokend:admin:write or tokend:operator)." });
	}
	schedule();
	return can();
}

export function signOut() {
	if (session) {
		clearTimeout(session.timer);
		session.secret = "";
		session.token = "";
	}
	session = null;
}

function end(message) {
	signOut();
	onEnd(message);
}

// One admin API call. path is relative to /admin/v1; query: object of parameters.
// Resolves with the parsed JSON body; throws ApiError (a 401 also ends the session).
export async function api(method, path, { body, query, headers } = {}) {
	if (!session)
		throw new ApiError(401, { error: "invalid_token", error_description: "Not signed in." });
	const s = session;
	let url = ADMIN + path;
	if (query) {
		const q = new URLSearchParams();
		for (const [k, v] of Object.entries(query))
			if (v !== undefined && v !== null && v !== "")
				q.set(k, String(v));
		const qs = q.toString();
		if (qs)
			url += "?" + qs;
	}
	const h = Object.assign({ Authorization: "Bearer " + s.token, Accept: "application/json" }, headers || {});
	const init = { method, headers: h, credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer" };
	if (body !== undefined) {
		h["Content-Type"] = "application/json";
		init.body = JSON.stringify(body);
	}
	let r;
	try {
		r = await fetch(url, init);
	} catch (e) {
		throw new ApiError(0, { error: "network", error_description: "tokend could not be reached." });
	}
	let data = null;
	try {
		data = await r.json();
	} catch (e) {
		data = null;
	}
	if (r.status === 401) {
		if (session === s)
			end("Your session ended: the API refused the token (the key may have been disabled, revoked or deleted). Sign in again.");
		throw new ApiError(401, data);
	}
	if (!r.ok)
		throw new ApiError(r.status, data);
	return data;
}

// Every page of a cursor-paginated list: items under `member`.
export async function all(path, member, query) {
	const out = [];
	let cursor = null;
	for (let i = 0; i < 100; i++) {
		const page = await api("GET", path, { query: Object.assign({}, query || {}, { limit: 200, cursor }) });
		out.push(...(page[member] || []));
		cursor = page.next_cursor;
		if (!cursor)
			break;
	}
	return out;
}

// The token endpoint and issuer as the server publishes them (RFC 8414 metadata), else
// this origin's token endpoint.
let meta = null;
export async function serverMeta() {
	if (meta)
		return meta;
	const m = { issuer: location.origin, token_endpoint: location.origin + "/oauth2/token" };
	try {
		const r = await fetch("/.well-known/oauth-authorization-server", { credentials: "omit" });
		const j = await r.json();
		if (j && typeof j.token_endpoint === "string" && /^https?:\/\//.test(j.token_endpoint))
			m.token_endpoint = j.token_endpoint;
		if (j && typeof j.issuer === "string")
			m.issuer = j.issuer;
		meta = m;
	} catch (e) {
		return m;
	}
	return meta;
}
