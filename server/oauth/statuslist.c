/*
 * statuslist.c - GET /oauth2/status-list: the Token Status List
 * (draft-ietf-oauth-status-list) of every API key, as a signed JWT
 * (application/statuslist+jwt; statuslist.h describes the token).
 *
 * The list is derived from the key rows (sql/012): a key's bit is 1 while it
 * is disabled, revoked, deleted or expired, or its account is disabled. It is built on demand and kept in
 * memory (srv->sl_*): a request rebuilds it when a key changed since the last
 * build (the listener's NOTIFY sets sl_stale), when the signing keys changed,
 * or when it is half status_list_ttl old (so that keys that expired meanwhile
 * are listed); otherwise it is served from memory. One build at a time: the
 * request that starts it waits for it (a database query on the pool, then a
 * signature with its worker's minter); requests arriving meanwhile get the
 * previous list, or 503 when there is none yet.
 *
 * The list covers every index allocated so far plus headroom (keys created
 * after the build fall inside it with bit 0, so verifiers rarely find an
 * index beyond the list). Claims: sub (the list's URI), iss, iat,
 * exp = iat + 2 * ttl, ttl, status_list {bits 1, lst}. Served with
 * Cache-Control: public, max-age=<ttl> and an ETag.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <libpq-fe.h>

#include <tokend/statuslist.h>

#include "clock.h"
#include "log.h"
#include "oauth.h"
#include "server.h"

/* Indexes beyond the highest allocated one, and the granule of the list's
 * size (bits): a list of 100,000 keys covers 106,496 indexes. */
#define SL_HEADROOM   1024
#define SL_GRANULE    8192

/* The highest index allocated, the indexes whose bit is 1, the time. */
static const char SL_SQL[] =
	"SELECT coalesce((SELECT max(status_idx) FROM api_keys), -1),"
	" coalesce((SELECT string_agg(k.status_idx::text, ',') FROM api_keys k"
	"  JOIN accounts a ON a.id = k.account_id"
	"  WHERE k.disabled_at IS NOT NULL OR k.revoked_at IS NOT NULL OR k.deleted_at IS NOT NULL"
	"     OR k.expires_at <= now() OR a.disabled_at IS NOT NULL), ''),"
	" floor(extract(epoch FROM now()))::bigint";

typedef struct slreq {
	tk_worker *w;
	struct evhttp_request *req;
	tk_reqinfo ri;
	tk_dbjob job;
} slreq;

static void unavailable(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri)
{
	static const char body[] = "{\"error\":\"temporarily_unavailable\"}";
	evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
	tk_http_reply(w, req, ri, 503, "application/json", body, sizeof(body) - 1);
}

/* Reply with the list held now (a copy: another worker may replace it). */
static void send_list(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri)
{
	tk_server *srv = w->srv;
	char etag[sizeof(srv->sl_etag)], cc[48];
	pthread_mutex_lock(&srv->sl_mu);
	size_t len = srv->sl_len;
	char *body = srv->sl_body ? malloc(len) : NULL;
	if (body)
		memcpy(body, srv->sl_body, len);
	memcpy(etag, srv->sl_etag, sizeof(etag));
	pthread_mutex_unlock(&srv->sl_mu);
	if (!body)
		return unavailable(w, req, ri);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	snprintf(cc, sizeof(cc), "public, max-age=%lld", (long long)srv->cfg->status_list_ttl);
	evhttp_add_header(out, "Cache-Control", cc);
	evhttp_add_header(out, "ETag", etag);
	const char *inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
	if (inm && strstr(inm, etag)) {
		free(body);
		return tk_http_reply(w, req, ri, 304, NULL, NULL, 0);
	}
	tk_http_reply(w, req, ri, 200, TK_STATUS_MEDIA_TYPE, body, len);
	free(body);
}

/* Set bit `idx` for each index in the comma-separated `list`. 0, or -1 for
 * an index outside [0, max] (the row changed between the two subqueries:
 * build again). */
static int set_bits(unsigned char *bytes, int64_t max, const char *list)
{
	const char *p = list;
	while (*p) {
		char *end;
		long long idx = strtoll(p, &end, 10);
		if (end == p || idx < 0 || idx > max)
			return -1;
		bytes[idx / 8] |= (unsigned char)(1u << (idx % 8));
		p = *end == ',' ? end + 1 : end;
	}
	return 0;
}

/* The signed list token for the query's row, or NULL with `why`. */
static char *build_token(tk_worker *w, PGresult *r, char *why, size_t wl)
{
	tk_server *srv = w->srv;
	int64_t max = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	int64_t now = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	int64_t ttl = srv->cfg->status_list_ttl;
	int64_t nbits = ((max + 1 + SL_HEADROOM + SL_GRANULE - 1) / SL_GRANULE) * SL_GRANULE;
	unsigned char *bytes = NULL;
	char *lst = NULL, *claims = NULL, *tok = NULL;
	json_t *o = NULL;

	if (max < -1 || nbits / 8 > TK_STATUS_BYTES_MAX) {
		snprintf(why, wl, "more keys than a status list holds");
		goto out;
	}
	bytes = calloc(1, (size_t)(nbits / 8));
	if (!bytes) {
		snprintf(why, wl, "out of memory");
		goto out;
	}
	if (set_bits(bytes, max, PQgetvalue(r, 0, 1)) != 0) {
		snprintf(why, wl, "an index outside the list (keys changed during the query)");
		goto out;
	}
	lst = tk_status_list_encode(bytes, (size_t)(nbits / 8), why, wl);
	if (!lst)
		goto out;
	o = json_pack("{s:s,s:s,s:I,s:I,s:I,s:{s:i,s:s}}", "sub", srv->status_uri, "iss",
	              srv->cfg->issuer, "iat", (json_int_t)now, "exp", (json_int_t)(now + 2 * ttl),
	              "ttl", (json_int_t)ttl, "status_list", "bits", 1, "lst", lst);
	claims = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (!claims) {
		snprintf(why, wl, "out of memory");
		goto out;
	}
	tok = tk_minter_sign(w->minter, "statuslist+jwt", claims, TK_STATUS_TOKEN_MAX, why, wl);
out:
	json_decref(o);
	free(claims);
	free(lst);
	free(bytes);
	return tok;
}

static void query_done(tk_dbjob *job)
{
	slreq *sr = job->arg;
	tk_worker *w = sr->w;
	tk_server *srv = w->srv;
	PGresult *r = job->result;
	char why[256] = "the database did not answer";
	char *tok = NULL;

	if (job->status == TK_DBJOB_OK && r && PQresultStatus(r) == PGRES_TUPLES_OK &&
	    PQntuples(r) == 1 && PQnfields(r) == 3)
		tok = build_token(w, r, why, sizeof(why));
	else if (r)
		snprintf(why, sizeof(why), "the status list query failed");
	PQclear(r);
	if (tok) {
		pthread_mutex_lock(&srv->sl_mu);
		free(srv->sl_body);
		srv->sl_body = tok;
		srv->sl_len = strlen(tok);
		srv->sl_gen++;
		snprintf(srv->sl_etag, sizeof(srv->sl_etag), "\"sl-%llx-%llu\"",
		         (unsigned long long)tk_mono_us(), (unsigned long long)srv->sl_gen);
		srv->sl_built_at = tk_mono_ms();
		pthread_mutex_unlock(&srv->sl_mu);
	} else {
		atomic_store(&srv->sl_stale, 1);         /* try again at the next request */
		tk_log(TK_LOG_ERROR, "status_list.build_failed", "req", sr->ri.id, "detail", why, NULL);
	}
	atomic_store(&srv->sl_building, 0);
	send_list(w, sr->req, &sr->ri);
	free(sr);
}

void tk_status_list_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri)
{
	tk_server *srv = w->srv;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		static const char body[] = "{\"error\":\"invalid_request\",\"error_description\":\"use GET\"}";
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		return tk_http_reply(w, req, ri, 405, "application/json", body, sizeof(body) - 1);
	}
	if (!srv->status_uri) {
		static const char body[] = "{\"error\":\"not_found\",\"error_description\":"
		                           "\"the status list is off (status_list = off)\"}";
		return tk_http_reply(w, req, ri, 404, "application/json", body, sizeof(body) - 1);
	}
	/* Half the ttl, at least a second: expiries show within that. */
	int64_t refresh_ms = srv->cfg->status_list_ttl * 500;
	if (refresh_ms < 1000)
		refresh_ms = 1000;
	pthread_mutex_lock(&srv->sl_mu);
	int old = !srv->sl_body || tk_mono_ms() - srv->sl_built_at >= refresh_ms;
	pthread_mutex_unlock(&srv->sl_mu);
	if (!old && !atomic_load(&srv->sl_stale))
		return send_list(w, req, ri);
	if (atomic_exchange(&srv->sl_building, 1))
		return send_list(w, req, ri);            /* another request is building it */
	atomic_store(&srv->sl_stale, 0);             /* a NOTIFY from now on: build again */
	slreq *sr = calloc(1, sizeof(*sr));
	if (!sr) {
		atomic_store(&srv->sl_stale, 1);
		atomic_store(&srv->sl_building, 0);
		return send_list(w, req, ri);
	}
	sr->w = w;
	sr->req = req;
	sr->ri = *ri;
	sr->job.kind = TK_DBJOB_QUERY;
	sr->job.sql = SL_SQL;
	sr->job.done = query_done;
	sr->job.reply = w->mbox;
	sr->job.arg = sr;
	if (tk_dbpool_submit(srv->db, &sr->job) != 0) {
		atomic_store(&srv->sl_stale, 1);
		atomic_store(&srv->sl_building, 0);
		free(sr);
		return send_list(w, req, ri);
	}
}
