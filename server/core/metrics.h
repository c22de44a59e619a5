/*
 * metrics.h - per-worker counters, one definition list (X-macro), aggregated
 * across workers by /metrics. Each worker writes only its own struct (plain
 * relaxed stores, no locks); the metrics handler reads them all.
 */
#ifndef TOKEND_METRICS_H
#define TOKEND_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

/* X(field, prometheus name, help) */
#define TK_COUNTERS(X) \
	X(tokens_issued,      "tokend_tokens_issued_total",        "Access tokens issued") \
	X(auth_failures,      "tokend_auth_failures_total",        "Client authentications refused") \
	X(auth_throttled,     "tokend_auth_throttled_total",       "Requests refused with 429 after too many failed authentications") \
	X(tokens_rate_limited, "tokend_tokens_rate_limited_total", "Token requests refused with 429 by a key's rate limit") \
	X(cache_hits,         "tokend_key_cache_hits_total",       "Key lookups answered from the cache") \
	X(cache_misses,       "tokend_key_cache_misses_total",     "Key lookups that went to PostgreSQL") \
	X(db_errors,          "tokend_db_errors_total",            "Requests that failed because the database was unavailable or too slow") \
	X(mint_failures,      "tokend_mint_failures_total",        "Tokens that could not be signed") \
	X(conns_accepted,     "tokend_connections_accepted_total", "Client connections accepted") \
	X(conn_cap_reached,   "tokend_connection_cap_reached_total", "Times a listener stopped accepting at its share of max_connections") \
	X(conns_reaped_idle,  "tokend_connections_reaped_idle_total", "Idle keep-alive connections closed to admit a new one at max_connections") \
	X(conns_refused_address, "tokend_connections_refused_per_address_total", "Connections refused at max_connections_per_address") \
	X(requests_malformed, "tokend_requests_malformed_total",   "Requests refused before parsing (malformed head, body on a method without one, oversized head), connection closed") \
	X(requests_fast,      "tokend_requests_fast_lane_total",   "Requests read and answered by the fast lane (POST /oauth2/token served without evhttp)") \
	X(send_batches,       "tokend_send_batches_total",         "Groups of fast-lane answers sent together at the end of a pass of a worker's loop (send_batch)") \
	X(send_batched,       "tokend_send_batched_answers_total", "Fast-lane answers sent in full in those groups (over tokend_send_batches_total: the mean group)") \
	X(send_uring_calls,   "tokend_send_uring_calls_total",     "Groups of two or more fast-lane answers handed to the kernel in one io_uring_enter (send_uring)") \
	X(send_uring_short,   "tokend_send_uring_short_total",     "Answers such a call left partly or wholly unsent (a full socket, a peer gone): finished, awaited or closed after it as a send(2) would be") \
	X(last_used_recorded, "tokend_last_used_recorded_total",   "Key uses recorded for writing (at most one a key per last_used_precision on this instance; the other uses change no time shown)") \
	X(last_used_written,  "tokend_last_used_written_total",    "Key last-used times written to PostgreSQL (rows sent in successful batches)")

/* Endpoints, for requests_total{endpoint=...}. */
#define TK_ENDPOINTS(X) \
	X(EP_TOKEN, "token") X(EP_INTROSPECT, "introspect") X(EP_REVOKE, "revoke") X(EP_JWKS, "jwks") X(EP_METADATA, "metadata") \
	X(EP_STATUS_LIST, "status_list") \
	X(EP_ADMIN, "admin") X(EP_CONSOLE, "console") \
	X(EP_HEALTH, "healthz") X(EP_READY, "readyz") X(EP_METRICS, "metrics") X(EP_OTHER, "other")

#define TK_EP_ENUM(e, name) e,
typedef enum { TK_ENDPOINTS(TK_EP_ENUM) EP_COUNT } tk_endpoint;
#undef TK_EP_ENUM

/* Status codes counted individually; everything else falls in "other". */
#define TK_STATUS_CODES(X) X(200) X(201) X(304) X(400) X(401) X(403) X(404) X(405) X(409) X(413) X(429) X(500) X(503)
#define TK_ST_COUNT (13 + 1)

/* Latency histogram bucket upper bounds, in microseconds (token endpoint). */
#define TK_LAT_BUCKETS(X) X(250) X(500) X(1000) X(2500) X(5000) X(10000) X(25000) X(50000) X(100000) X(250000) X(1000000)
#define TK_LAT_COUNT (11 + 1)

typedef struct tk_metrics {
#define TK_COUNTER_FIELD(f, n, h) _Atomic uint64_t f;
	TK_COUNTERS(TK_COUNTER_FIELD)
#undef TK_COUNTER_FIELD
	_Atomic uint64_t requests[EP_COUNT][TK_ST_COUNT];
	_Atomic uint64_t latency[TK_LAT_COUNT];   /* non-cumulative per bucket; last is +Inf */
	_Atomic uint64_t latency_sum_us;
	_Atomic int64_t conns_open;                /* gauge */
	_Atomic uint64_t conn_timeouts[5];         /* by phase: header, body, (server), write, idle */
} tk_metrics;

/* Single-writer increment: a relaxed load and store, no locked instruction. */
static inline void tk_metric_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

void tk_metrics_request(tk_metrics *m, tk_endpoint ep, int status, uint64_t micros);

#endif
