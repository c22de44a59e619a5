/*
 * resource_server.c - an example resource server protecting a route with
 * tokend's verification API (lib/include/tokend/verify.h).
 *
 *   resource-server --port PORT --jwks-url http://HOST:PORT/.well-known/jwks.json
 *                   --issuer ISS [--audience AUD] [--scope "S ..."] [--refresh-min SECONDS]
 *                   [--status-list-url URL [--status-refresh-min S] [--status-refresh-max S]]
 *                   [--leeway SECONDS]
 *
 * GET /hello with "Authorization: Bearer <token>":
 *   200 {"hello": <sub>, "client_id": ..., "scope": ...} for a valid token;
 *   401 + WWW-Authenticate: Bearer error="invalid_token" for a missing or bad token;
 *   403 + error="insufficient_scope" when a required scope is missing.
 *
 * The JWKS is fetched at startup. A token whose kid is unknown triggers one
 * refetch (signing-key rotation), at most once per --refresh-min seconds
 * (default 30) so that forged kids cannot make us hammer the issuer; the
 * request waits for that fetch and is then judged against the new keys.
 * Offline verification: tokend is never asked about a token.
 *
 * With --status-list-url (tokend's /oauth2/status-list, statuslist.h), a
 * valid token is also judged against the Token Status List: the list is
 * fetched when due (its ttl, bounded by --status-refresh-min, default 1, and
 * --status-refresh-max, default 300 seconds; requests wait for that fetch) and
 * a token whose key is listed is refused 401. Fail closed: without a valid
 * list (never fetched, or past its exp) tokens are refused.
 *
 * --leeway: the verifier's clock leeway in seconds (0..TK_VERIFY_LEEWAY_MAX,
 * default TK_VERIFY_LEEWAY_DEFAULT), for tokens and the status list alike.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include <tokend/statuslist.h>
#include <tokend/verify.h>

#define JWKS_MAX (64 * 1024)

typedef struct waiting {
	struct evhttp_request *req;
	struct waiting *next;
} waiting;

static struct {
	struct event_base *base;
	struct evhttp *http;
	tk_verifier *verifier;
	const char *jwks_url, *issuer, *audience, *scopes;
	long refresh_min;
	long leeway;               /* --leeway, seconds */
	time_t last_fetch;
	int fetching;
	waiting *queue;            /* requests waiting for a JWKS refresh */
	const char *status_url;    /* --status-list-url, or NULL */
	tk_status_cache *status;
	int sl_fetching;
	struct evhttp_connection *sl_conn;  /* the last status list fetch's (freed by the next) */
	waiting *sl_queue;         /* requests waiting for a status list refresh */
} app;

static void judge(struct evhttp_request *req, int allow_refresh);

static void reply(struct evhttp_request *req, int status, const char *reason, const char *www,
                  json_t *body)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	evhttp_add_header(out, "Content-Type", "application/json");
	evhttp_add_header(out, "Cache-Control", "no-store");
	if (www)
		evhttp_add_header(out, "WWW-Authenticate", www);
	struct evbuffer *buf = evbuffer_new();
	char *text = json_dumps(body, JSON_COMPACT);
	if (text)
		evbuffer_add(buf, text, strlen(text));
	evhttp_send_reply(req, status, reason, buf);
	evbuffer_free(buf);
	free(text);
	json_decref(body);
}

/* Build a new verifier from JWKS text; swap it in on success. */
static int install_jwks(const char *json, size_t len)
{
	char err[256];
	tk_verifier *v = tk_verifier_new();
	if (!v || tk_verifier_load_jwks(v, json, len, err, sizeof(err)) != 0 ||
	    tk_verifier_set_issuer(v, app.issuer, err, sizeof(err)) != 0 ||
	    tk_verifier_set_audience(v, app.audience, err, sizeof(err)) != 0 ||
	    tk_verifier_set_scopes(v, app.scopes, err, sizeof(err)) != 0 ||
	    tk_verifier_set_leeway(v, app.leeway, err, sizeof(err)) != 0) {
		fprintf(stderr, "resource-server: JWKS refused: %s\n", v ? err : "out of memory");
		tk_verifier_free(v);
		return -1;
	}
	/* Single-threaded: no verification runs while we swap. */
	tk_verifier_free(app.verifier);
	app.verifier = v;
	fprintf(stderr, "resource-server: JWKS loaded (%zu keys)\n", tk_verifier_key_count(v));
	return 0;
}

static void fetch_done(struct evhttp_request *resp, void *arg)
{
	(void)arg;
	app.fetching = 0;
	if (resp && evhttp_request_get_response_code(resp) == 200) {
		struct evbuffer *b = evhttp_request_get_input_buffer(resp);
		size_t len = evbuffer_get_length(b);
		if (len > 0 && len <= JWKS_MAX)
			install_jwks((const char *)evbuffer_pullup(b, -1), len);
	} else {
		fprintf(stderr, "resource-server: JWKS fetch failed\n");
	}
	/* Judge the waiting requests against whatever keys we now hold. */
	waiting *w = app.queue;
	app.queue = NULL;
	while (w) {
		waiting *next = w->next;
		judge(w->req, 0);
		free(w);
		w = next;
	}
}

/* GET `url`, answer to `cb`. 0, or -1 (a bad URL or no request made). With
 * `keep`, the connection is not freed on completion (libevent 2.1 does not free
 * an auto-free connection whose connect failed): it is stored in *keep for the
 * caller to free once its request is over. */
static int http_get(const char *url, void (*cb)(struct evhttp_request *, void *),
                    struct evhttp_connection **keep)
{
	struct evhttp_uri *uri = evhttp_uri_parse(url);
	if (!uri || !evhttp_uri_get_host(uri) || !evhttp_uri_get_scheme(uri) ||
	    strcasecmp(evhttp_uri_get_scheme(uri), "http") != 0) {
		fprintf(stderr, "resource-server: %s must be an http:// URL (put TLS in front)\n", url);
		if (uri)
			evhttp_uri_free(uri);
		return -1;
	}
	int port = evhttp_uri_get_port(uri);
	struct evhttp_connection *c = evhttp_connection_base_new(app.base, NULL, evhttp_uri_get_host(uri),
	                                                         (unsigned short)(port > 0 ? port : 80));
	evhttp_connection_set_timeout(c, 5);
	if (keep)
		*keep = c;
	else
		evhttp_connection_free_on_completion(c);
	struct evhttp_request *req = evhttp_request_new(cb, NULL);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", evhttp_uri_get_host(uri));
	/* One request per connection: the server closes it, and libevent frees it. */
	evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
	const char *path = evhttp_uri_get_path(uri);
	int rc = evhttp_make_request(c, req, EVHTTP_REQ_GET, path && *path ? path : "/");
	evhttp_uri_free(uri);
	return rc != 0 ? -1 : 0;
}

static int start_fetch(void)
{
	if (http_get(app.jwks_url, fetch_done, NULL) != 0)
		return -1;
	app.fetching = 1;
	app.last_fetch = time(NULL);
	return 0;
}

#define STATUS_LIST_MAX TK_STATUS_TOKEN_MAX

static void status_fetch_done(struct evhttp_request *resp, void *arg)
{
	(void)arg;
	app.sl_fetching = 0;
	int64_t now = (int64_t)time(NULL);
	char err[256];
	if (resp && evhttp_request_get_response_code(resp) == 200) {
		struct evbuffer *b = evhttp_request_get_input_buffer(resp);
		size_t len = evbuffer_get_length(b);
		int rc = len > 0 && len <= STATUS_LIST_MAX && app.verifier
		         ? tk_status_cache_install(app.status, app.verifier,
		                                   (const char *)evbuffer_pullup(b, -1), len, now, err,
		                                   sizeof(err))
		         : TK_VERIFY_MALFORMED;
		if (rc == TK_VERIFY_OK)
			fprintf(stderr, "resource-server: status list loaded\n");
		else
			fprintf(stderr, "resource-server: status list refused: %s\n",
			        rc == TK_VERIFY_MALFORMED && !app.verifier ? "no JWKS" : tk_verify_strerror(rc));
	} else {
		tk_status_cache_failed(app.status, now);
		fprintf(stderr, "resource-server: status list fetch failed\n");
	}
	waiting *w = app.sl_queue;
	app.sl_queue = NULL;
	while (w) {
		waiting *next = w->next;
		judge(w->req, 0);
		free(w);
		w = next;
	}
}

static void judge(struct evhttp_request *req, int allow_refresh)
{
	const char *authz = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	if (!authz || strncasecmp(authz, "Bearer ", 7) != 0)
		return reply(req, 401, "Unauthorized", "Bearer", json_pack("{s:s}", "error", "invalid_token"));
	const char *token = authz + 7;
	tk_claims c;
	char err[256];
	int rc = app.verifier ? tk_verify(app.verifier, token, strlen(token), &c, err, sizeof(err))
	                      : TK_VERIFY_KID_UNKNOWN;
	if (rc == TK_VERIFY_KID_UNKNOWN && allow_refresh &&
	    (app.fetching || time(NULL) - app.last_fetch >= app.refresh_min)) {
		/* Maybe a new signing key: refetch once and judge again. */
		waiting *w = calloc(1, sizeof(*w));
		if (w && (app.fetching || start_fetch() == 0)) {
			w->req = req;
			w->next = app.queue;
			app.queue = w;
			return;
		}
		free(w);
	}
	if (rc == TK_VERIFY_SCOPE)
		return reply(req, 403, "Forbidden", "Bearer error=\"insufficient_scope\"",
		             json_pack("{s:s, s:s}", "error", "insufficient_scope", "error_description", err));
	if (rc != TK_VERIFY_OK)
		return reply(req, 401, "Unauthorized", "Bearer error=\"invalid_token\"",
		             json_pack("{s:s, s:s}", "error", "invalid_token", "error_description",
		                       tk_verify_strerror(rc)));
	if (app.status) {
		int64_t now = (int64_t)time(NULL);
		if (allow_refresh && (app.sl_fetching || tk_status_cache_due(app.status, now))) {
			/* The list is due: judge this request against the fresh one. */
			waiting *w = calloc(1, sizeof(*w));
			if (w && !app.sl_fetching && app.sl_conn) {
				evhttp_connection_free(app.sl_conn);     /* its request is over */
				app.sl_conn = NULL;
			}
			if (w && (app.sl_fetching ||
			          http_get(app.status_url, status_fetch_done, &app.sl_conn) == 0)) {
				app.sl_fetching = 1;
				w->req = req;
				w->next = app.sl_queue;
				app.sl_queue = w;
				tk_claims_release(&c);
				return;
			}
			free(w);
			tk_status_cache_failed(app.status, now);
		}
		rc = tk_status_check(app.status, &c, now, err, sizeof(err));
		if (rc != TK_VERIFY_OK) {
			tk_claims_release(&c);
			return reply(req, 401, "Unauthorized", "Bearer error=\"invalid_token\"",
			             json_pack("{s:s, s:s}", "error", "invalid_token", "error_description",
			                       tk_verify_strerror(rc)));
		}
	}
	json_t *body = json_pack("{s:s, s:s, s:s?, s:s?}", "hello", c.sub, "client_id", c.client_id,
	                         "scope", c.scope, "acct", c.acct);
	tk_claims_release(&c);
	reply(req, 200, "OK", NULL, body);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	(void)arg;
	const char *uri = evhttp_request_get_uri(req);
	if (strncmp(uri, "/hello", 6) != 0 || (uri[6] && uri[6] != '?'))
		return reply(req, 404, "Not Found", NULL, json_pack("{s:s}", "error", "not_found"));
	judge(req, 1);
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	event_base_loopexit(app.base, NULL);
}

int main(int argc, char **argv)
{
	int port = 0;
	long sl_min = 1, sl_max = 300;
	app.refresh_min = 30;
	app.leeway = TK_VERIFY_LEEWAY_DEFAULT;
	app.scopes = "";
	app.audience = "";
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--port") == 0)
			port = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--jwks-url") == 0)
			app.jwks_url = argv[i + 1];
		else if (strcmp(argv[i], "--issuer") == 0)
			app.issuer = argv[i + 1];
		else if (strcmp(argv[i], "--audience") == 0)
			app.audience = argv[i + 1];
		else if (strcmp(argv[i], "--scope") == 0)
			app.scopes = argv[i + 1];
		else if (strcmp(argv[i], "--refresh-min") == 0)
			app.refresh_min = atol(argv[i + 1]);
		else if (strcmp(argv[i], "--status-list-url") == 0)
			app.status_url = argv[i + 1];
		else if (strcmp(argv[i], "--status-refresh-min") == 0)
			sl_min = atol(argv[i + 1]);
		else if (strcmp(argv[i], "--status-refresh-max") == 0)
			sl_max = atol(argv[i + 1]);
		else if (strcmp(argv[i], "--leeway") == 0) {
			char *end;
			errno = 0;
			app.leeway = strtol(argv[i + 1], &end, 10);
			if (errno || end == argv[i + 1] || *end || app.leeway < 0 ||
			    app.leeway > TK_VERIFY_LEEWAY_MAX) {
				fprintf(stderr, "resource-server: --leeway must be 0..%d seconds\n",
				        TK_VERIFY_LEEWAY_MAX);
				return 2;
			}
		} else {
			fprintf(stderr, "resource-server: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (port <= 0 || !app.jwks_url || !app.issuer) {
		fprintf(stderr, "usage: resource-server --port PORT --jwks-url URL --issuer ISS "
		        "[--audience AUD] [--scope \"S ...\"] [--refresh-min SECONDS]\n"
		        "       [--status-list-url URL [--status-refresh-min S] [--status-refresh-max S]]\n"
		        "       [--leeway SECONDS]\n");
		return 2;
	}
	if (app.status_url) {
		char err[256];
		app.status = tk_status_cache_new(app.status_url, sl_min, sl_max, err, sizeof(err));
		if (!app.status) {
			fprintf(stderr, "resource-server: %s\n", err);
			return 2;
		}
	}
	app.base = event_base_new();
	app.http = evhttp_new(app.base);
	evhttp_set_max_headers_size(app.http, 16384);
	evhttp_set_max_body_size(app.http, 0);
	evhttp_set_timeout(app.http, 10);
	evhttp_set_gencb(app.http, on_request, NULL);
	if (evhttp_bind_socket(app.http, "127.0.0.1", (unsigned short)port) != 0) {
		fprintf(stderr, "resource-server: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
		return 1;
	}
	/* First JWKS before serving. */
	if (start_fetch() != 0)
		return 1;
	while (app.fetching)
		event_base_loop(app.base, EVLOOP_ONCE);
	if (!app.verifier) {
		fprintf(stderr, "resource-server: no usable JWKS at %s\n", app.jwks_url);
		return 1;
	}
	struct event *sigterm = evsignal_new(app.base, SIGTERM, on_signal, NULL);
	struct event *sigint = evsignal_new(app.base, SIGINT, on_signal, NULL);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	fprintf(stderr, "resource-server: listening on 127.0.0.1:%d\n", port);
	event_base_dispatch(app.base);
	event_free(sigterm);
	event_free(sigint);
	evhttp_free(app.http);
	tk_verifier_free(app.verifier);
	if (app.sl_conn)
		evhttp_connection_free(app.sl_conn);
	tk_status_cache_free(app.status);
	event_base_free(app.base);
	return 0;
}
