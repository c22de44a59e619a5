/*
 * ops.c - /healthz, /readyz and /metrics (Prometheus text format).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "ops.h"
#include "server.h"

void tk_healthz_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri)
{
	static const char ok[] = "{\"status\":\"ok\"}";
	tk_http_reply(w, req, ri, 200, "application/json", ok, sizeof(ok) - 1);
}

void tk_readyz_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri)
{
	tk_server *srv = w->srv;
	int db = tk_dbpool_connected(srv->db) > 0;
	int listen = tk_listener_up(srv->listener);
	int signer = tk_signer_count(w->keys->signer) > 0;
	int pepper = atomic_load(&srv->pepper_ok) == 1;
	/* Ready: the database answers (pool and notification connection), it
	 * holds this pepper's check value, and a signing key is loaded. */
	int ready = db && listen && signer && pepper;
	char body[240];
	int n = snprintf(body, sizeof(body),
	                 "{\"status\":\"%s\",\"database\":%s,\"notifications\":%s,\"signing_key\":%s,"
	                 "\"pepper\":%s}",
	                 ready ? "ready" : "not_ready", db ? "true" : "false", listen ? "true" : "false",
	                 signer ? "true" : "false", pepper ? "true" : "false");
	if (!ready)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
	tk_http_reply(w, req, ri, ready ? 200 : 503, "application/json", body, (size_t)n);
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

void tk_metrics_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri)
{
	tk_server *srv = w->srv;
	struct evbuffer *b = evbuffer_new();
	uint64_t sum;

#define TK_EMIT_COUNTER(f, name, help) \
	sum = 0; \
	for (int i = 0; i < srv->nworkers; i++) \
		sum += LOAD(srv->workers[i].metrics.f); \
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name, \
	                    (unsigned long long)sum);
	TK_COUNTERS(TK_EMIT_COUNTER)
#undef TK_EMIT_COUNTER

	static const char *const eps[] = {
#define TK_EP_NAME(e, name) name,
		TK_ENDPOINTS(TK_EP_NAME)
#undef TK_EP_NAME
	};
	static const char *const codes[] = {
#define TK_CODE(c) #c,
		TK_STATUS_CODES(TK_CODE)
#undef TK_CODE
		"other"
	};
	evbuffer_add_printf(b, "# HELP tokend_http_requests_total HTTP requests by endpoint and status\n"
	                       "# TYPE tokend_http_requests_total counter\n");
	for (int e = 0; e < EP_COUNT; e++)
		for (int s = 0; s < TK_ST_COUNT; s++) {
			sum = 0;
			for (int i = 0; i < srv->nworkers; i++)
				sum += LOAD(srv->workers[i].metrics.requests[e][s]);
			if (sum)
				evbuffer_add_printf(b, "tokend_http_requests_total{endpoint=\"%s\",code=\"%s\"} %llu\n",
				                    eps[e], codes[s], (unsigned long long)sum);
		}

	static const char *const bounds[] = {
#define TK_B(x) #x,
		TK_LAT_BUCKETS(TK_B)
#undef TK_B
	};
	evbuffer_add_printf(b, "# HELP tokend_token_request_duration_seconds Token endpoint latency\n"
	                       "# TYPE tokend_token_request_duration_seconds histogram\n");
	uint64_t cum = 0;
	for (int k = 0; k < TK_LAT_COUNT; k++) {
		for (int i = 0; i < srv->nworkers; i++)
			cum += LOAD(srv->workers[i].metrics.latency[k]);
		if (k < TK_LAT_COUNT - 1)
			evbuffer_add_printf(b, "tokend_token_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
			                    atof(bounds[k]) / 1e6, (unsigned long long)cum);
		else
			evbuffer_add_printf(b, "tokend_token_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
			                    (unsigned long long)cum);
	}
	sum = 0;
	for (int i = 0; i < srv->nworkers; i++)
		sum += LOAD(srv->workers[i].metrics.latency_sum_us);
	evbuffer_add_printf(b, "tokend_token_request_duration_seconds_sum %.6f\n"
	                       "tokend_token_request_duration_seconds_count %llu\n",
	                    (double)sum / 1e6, (unsigned long long)cum);

	evbuffer_add_printf(b, "# HELP tokend_key_cache_entries Keys in the cache\n# TYPE tokend_key_cache_entries gauge\n"
	                       "tokend_key_cache_entries %zu\n", tk_keycache_size(srv->cache));
	evbuffer_add_printf(b, "# HELP tokend_key_cache_bypassed 1 while the notification connection is down\n"
	                       "# TYPE tokend_key_cache_bypassed gauge\ntokend_key_cache_bypassed %d\n",
	                    tk_keycache_bypassed(srv->cache));
	evbuffer_add_printf(b, "# HELP tokend_db_connections Open database connections of the pool\n"
	                       "# TYPE tokend_db_connections gauge\ntokend_db_connections %d\n",
	                    tk_dbpool_connected(srv->db));
	int64_t open = 0;
	for (int i = 0; i < srv->nworkers; i++)
		open += atomic_load_explicit(&srv->workers[i].metrics.conns_open, memory_order_relaxed);
	evbuffer_add_printf(b, "# HELP tokend_connections_open Client connections open\n"
	                       "# TYPE tokend_connections_open gauge\ntokend_connections_open %lld\n",
	                    (long long)open);
	evbuffer_add_printf(b, "# HELP tokend_connections_timed_out_total Connections closed at a phase deadline\n"
	                       "# TYPE tokend_connections_timed_out_total counter\n");
	static const char *const phases[] = { "header", "body", NULL, "write", "idle" };
	for (int p = 0; p < 5; p++) {
		if (!phases[p])
			continue;
		sum = 0;
		for (int i = 0; i < srv->nworkers; i++)
			sum += LOAD(srv->workers[i].metrics.conn_timeouts[p]);
		evbuffer_add_printf(b, "tokend_connections_timed_out_total{phase=\"%s\"} %llu\n", phases[p],
		                    (unsigned long long)sum);
	}
	size_t len = evbuffer_get_length(b);
	char *text = malloc(len + 1);
	if (text) {
		evbuffer_remove(b, text, len);
		tk_http_reply(w, req, ri, 200, "text/plain; version=0.0.4", text, len);
		free(text);
	} else {
		tk_http_reply(w, req, ri, 500, "text/plain", "out of memory\n", 14);
	}
	evbuffer_free(b);
}
