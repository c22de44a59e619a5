/*
 * server.h - the running server: shared state and the per-worker context.
 *
 * One process, `workers` threads, each with its own event_base and evhttp
 * on the shared port (SO_REUSEPORT): nothing is locked on the hot path but a
 * key-cache shard. Database work goes to the dbpool threads; results come
 * back through the worker's mailbox.
 */
#ifndef TOKEND_SERVER_H
#define TOKEND_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>

#include <tokend/crypto.h>
#include <tokend/signer.h>
#include <tokend/verify.h>

#include "acctcount.h"
#include "config.h"
#include "dbpool.h"
#include "keycache.h"
#include "keyset.h"
#include "lastused.h"
#include "listener.h"
#include "metrics.h"
#include "ratelimit.h"
#include "req.h"
#include "router.h"

typedef struct tk_worker tk_worker;

typedef struct tk_server {
	tk_config *cfg;
	/* The signing keys, JWKS and own-token verifiers (keyset.h): replaced by
	 * SIGHUP; workers move to a new set at their next request. */
	pthread_mutex_t keys_mu;
	tk_keyset *keys;
	_Atomic uint64_t keys_gen;
	char jwks_cache_control[64];
	/* signing_key_source = database (dbkeys.c): the listener sets the flag on
	 * NOTIFY tokend_signing_keys; the main thread reloads. */
	_Atomic int signing_keys_changed;
	struct tk_dbkeys *dbkeys;
	char *default_audience;
	tk_router *router;                    /* every endpoint module's routes (serve.c) */
	tk_keycache *cache;
	tk_dbpool *db;
	tk_listener *listener;
	tk_ratelimit *rl_addr;                /* failed authentications per client address */
	tk_ratelimit *rl_key;                 /* failed authentications per key ID */
	tk_ratelimit *rl_issue;               /* tokens per key with a rate_limit */
	tk_ratelimit *rl_public;              /* publishable keys: tokens per key ("k:" ID) and
	                                         per client address ("a:" address), preflights
	                                         per client address */
	/* Metadata (RFC 8414): rebuilt when the scope catalogue changes. */
	pthread_mutex_t meta_mu;
	char *meta_body;
	_Atomic int meta_stale;
	/* Token Status List (oauth/statuslist.c): the signed list token, built on
	 * demand and rebuilt when a key changes (NOTIFY: sl_stale), when the
	 * signing keys change, and once it is half status_list_ttl old. */
	char *status_uri;                     /* <issuer>/oauth2/status-list; NULL: status_list off */
	pthread_mutex_t sl_mu;
	char *sl_body;
	size_t sl_len;
	char sl_etag[40];
	int64_t sl_built_at;                  /* monotonic seconds */
	uint64_t sl_gen;
	_Atomic int sl_stale;
	_Atomic int sl_building;
	/* A digest no secret produces: compared against for an unknown key, so
	 * that an unknown key ID costs the same work as a wrong secret. */
	unsigned char dummy_hash[TK_HASH_LEN];
	/* Held only while the workers' hashers are made, then wiped. */
	unsigned char pepper[TK_PEPPER_MAX];
	size_t pepper_len;
	/* The pepper's check value (peppercheck.h; not secret: the database
	 * holds it) and whether the database's matched it: 1 yes, 0 not known
	 * yet (the database was down at start; serve.c retries), -1 it differs.
	 * /readyz is 503 unless 1. */
	unsigned char pepper_check[TK_HASH_LEN];
	_Atomic int pepper_ok;
	int nworkers;
	int port_shared;                      /* another process listened on listen_port at start */
	tk_worker *workers;
	_Atomic int stopping;
	int64_t started_at;
	char reqid_prefix[17];                /* random per process: generated request ids */
	tk_acctcount *acct_tokens;            /* metrics_per_account: tokens per account, else NULL */
} tk_server;


struct tk_worker {
	tk_server *srv;
	int index;
	pthread_t thread;
	int started;                          /* thread is running: join it */
	struct event_base *base;
	struct evhttp *http;
	evutil_socket_t fd;
	struct evhttp *admin_http;            /* worker 0, when admin_listen_port is set */
	evutil_socket_t admin_fd;
	struct tk_connset *conns;             /* deadlines and the cap (conn.h) */
	struct tk_connset *admin_conns;
	struct evhttp *ops_http;              /* worker 0, when ops_listen_port is set */
	evutil_socket_t ops_fd;
	struct tk_connset *ops_conns;
	tk_mailbox *mbox;
	tk_hasher *hasher;
	tk_keyset *keys;                      /* the set this worker uses, and its minter */
	uint64_t keys_gen;
	tk_minter *minter;
	tk_metrics metrics;
	tk_lastused lastused;
	void *spare_req;                      /* oauth/token.c: the last token request freed, kept
	                                         for the next (freed with the worker) */
	tk_dbjob flush_job;
	int flush_inflight;
	int flush_again;                      /* a flush was asked for while one was in flight */
	size_t flush_batch;                   /* marks per flush statement now (worker.c: flush_sized) */
	int64_t flush_sent_us;                /* when the batch in flight was sent */
	struct event *flush_ev;
	struct event *stop_ev;
	struct event *purge_ev;               /* worker 0: forget expired revoked tokens */
	tk_dbjob purge_job;
	int purge_inflight;
	uint64_t reqseq;
	size_t pending;                       /* token requests waiting on the database */
	int64_t drain_deadline_us;            /* stopping: when to give up on open connections */
};

/* The longest X-Request-Id taken from a client (tk_request_id_ok). */
#define TK_REQID_MAX 64

/* Per-request facts for the access log and metrics. */
typedef struct tk_reqinfo {
	tk_endpoint ep;
	int64_t start_us;
	/* Request id: the client's X-Request-Id when sane, else generated
	 * (<process prefix>-<worker>-<seq>); echoed in the response, in every
	 * log line of the request ("req"). */
	char id[TK_REQID_MAX + 1];
	/* W3C traceparent (version 00 layout), when the request carried a valid
	 * one: "" otherwise. Logged with the access line. */
	char trace_id[33];
	char parent_id[17];
	const char *client_id;                /* a well-formed key ID, or NULL */
} tk_reqinfo;

/*
 * 1 when `v` may be used as a request id: 1..TK_REQID_MAX characters of
 * [A-Za-z0-9.:+/=-]. No underscore, space, quote or control character: a
 * tokend secret ("tks_...") or a token with its dots too long is never
 * taken (and so never logged), nor text that could forge a log field.
 */
int tk_request_id_ok(const char *v);
/*
 * Parse a W3C Trace Context traceparent value into trace_id (32 lowercase
 * hex, not all zero) and parent_id (16, not all zero). Version 00 must be
 * exactly 55 characters; a later version (not ff) at least 55 with '-'
 * after the flags. Returns 0, or -1 leaving both "" (the header is then
 * ignored, as the specification says).
 */
int tk_traceparent_parse(const char *v, char trace_id[33], char parent_id[17]);

/* Send a response and account for it (metrics, access log). Adds
 * X-Content-Type-Options and Content-Type. `body` may be NULL. */
void tk_http_reply(tk_worker *w, struct evhttp_request *req, const tk_reqinfo *ri, int status,
                   const char *ctype, const char *body, size_t len);

/* The same through the request interface (req.h): the token path's. */
void tk_req_reply(tk_worker *w, tk_req req, const tk_reqinfo *ri, int status,
                  const char *ctype, const char *body, size_t len);
void tk_req_oauth_error(tk_worker *w, tk_req req, const tk_reqinfo *ri, int status,
                        const char *error, const char *description);
void tk_req_client(tk_worker *w, tk_req req, char *buf, size_t len);

/* The TCP peer's address of `req` ("" when its connection is gone). */
void tk_http_peer(struct evhttp_request *req, char *buf, size_t len);
/* The client's address of `req`: the TCP peer, or behind a peer in
 * trusted_proxies the last untrusted X-Forwarded-For hop (proxy.h). For the
 * failure limits, logs and audit rows alike. */
void tk_http_client(tk_worker *w, struct evhttp_request *req, char *buf, size_t len);

/* How many times header `name` (any case) occurs. */
struct evkeyvalq;
int tk_header_count(struct evkeyvalq *h, const char *name);

/* An RFC 6749 §5.2 error response (JSON, no-store). */
void tk_http_oauth_error(tk_worker *w, struct evhttp_request *req, const tk_reqinfo *ri, int status,
                         const char *error, const char *description);

/* Floors of the body and header limits (max_body_size, max_header_size), so
 * that introspection and revocation take any token we issue, as a `token`
 * parameter next to client credentials or as a bearer credential. */
#define TK_TOKEN_BODY_MIN   (TK_TOKEN_MAX + 2048)
#define TK_TOKEN_HEADER_MIN (TK_TOKEN_MAX + 2048)
#define TK_AT_LEAST(v, min) ((v) > (min) ? (v) : (min))

/* Window of the "recently used" guard of key deletion, widened by
 * last_used_precision here and in SQL (sql/015, tokend_recent_use_since). */
#define TK_RECENT_USE_WINDOW 86400
/*
 * Mark `k` used now (batched, flushed every last_used_flush_interval), unless
 * its last recorded use is less than last_used_precision old: then nothing is
 * written (one worker of all records a use; the key's cached last_used_at
 * holds the time recorded). When the key's last known use is older than the
 * guard's window minus one flush interval and a minute - a first use in about
 * a day, the only case where the batch could hide a use from the guard - the
 * marks are flushed at once (asynchronously, never on the request's path), so
 * every instance and the CLI see the use in the database within a moment.
 */
void tk_lastused_mark(tk_worker *w, const tk_apikey *k);
/* This worker's unflushed mark of `key_id` (epoch seconds), or 0. */
int64_t tk_lastused_pending(const tk_worker *w, const char *key_id);

/* Serve a request the fast lane (conn.c) took, with route `rt` (its `fast`
 * handler), as dispatch does an evhttp request: request id, trace context,
 * key set refresh. */
void tk_worker_dispatch_fast(tk_worker *w, tk_req req, const tk_route *rt);

/* Set up the workers' HTTP servers on `fd`-s bound by the caller; start/stop them. */
int tk_workers_start(tk_server *srv, char *err, size_t errlen);
/* Stop the loops and join the threads. */
void tk_workers_stop(tk_server *srv);
/* After the loops stopped: hand each worker's last-used marks to the pool. */
void tk_workers_flush(tk_server *srv);
/* After the database pool has stopped: run what is left in the mailboxes, free. */
void tk_workers_free(tk_server *srv);

/* Make `ks` the current key set (takes the caller's reference). */
void tk_server_set_keys(tk_server *srv, tk_keyset *ks);
/* At the start of a request: move worker `w` to the current key set if a
 * newer one exists (a failure keeps the old one, logged). */
void tk_worker_keys_refresh(tk_worker *w);

/* Load the signing keys named by the configuration into a first key set
 * (serverkeys.c); free them at the end. */
int tk_server_keys_load(tk_server *srv, char *err, size_t errlen);
/* The same with a key set built elsewhere (taken over). */
void tk_server_keys_start(tk_server *srv, tk_keyset *ks);
void tk_server_keys_free(tk_server *srv);

/*
 * signing_key_source = database (dbkeys.c). Start: read the key-encryption
 * key, connect, generate the initial key of an empty table (under the
 * rotation lock), load and decrypt the keys (a wrong KEK refuses the start),
 * install the set. 0, or -1 with err.
 * Tick (main thread, a few times a second): on NOTIFY, at the next time the
 * set or the signing key changes, and every 5 s, read the rows again and
 * install a new set when they or the time say so; run the rotation steps
 * when due (one instance per step: the advisory lock). Stop: close, wipe.
 */
int tk_server_dbkeys_start(tk_server *srv, char *err, size_t errlen);
void tk_server_dbkeys_tick(tk_server *srv);
void tk_server_dbkeys_stop(tk_server *srv);

#endif
