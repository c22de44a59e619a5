/*
 * ops.c - /healthz, /readyz and /metrics (Prometheus text exposition format
 * 0.0.4): tokend's own series, tokend_build_info, the standard process_*
 * series (procstat.h) and, with metrics_per_account, tokens per account.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "memtrim.h"
#include "ops.h"
#include "procstat.h"
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
	int signer = tk_signer_active_kid(w->keys->signer) != NULL;   /* a key that may sign */
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

/* A label value: backslash, double quote and line feed escaped. */
static void add_label_value(struct evbuffer *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			evbuffer_add_printf(b, "\\%c", *v);
		else if (*v == '\n')
			evbuffer_add(b, "\\n", 2);
		else
			evbuffer_add(b, v, 1);
	}
}

static void emit_account(const char *account, uint64_t n, void *arg)
{
	struct evbuffer *b = arg;
	evbuffer_add_printf(b, "tokend_account_tokens_issued_total{account=\"");
	add_label_value(b, account);
	evbuffer_add_printf(b, "\"} %llu\n", (unsigned long long)n);
}

static void emit_process(struct evbuffer *b)
{
	tk_procstat ps;
	if (tk_procstat_read(&ps) != 0)
		return;   /* no /proc: left out rather than published as zeros */
	evbuffer_add_printf(b,
		"# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
		"# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n"
		"# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
		"# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n"
		"# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
		"# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %llu\n"
		"# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
		"# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n"
		"# HELP process_open_fds Number of open file descriptors.\n"
		"# TYPE process_open_fds gauge\nprocess_open_fds %lld\n",
		ps.cpu_seconds, (unsigned long long)ps.resident_bytes, (unsigned long long)ps.virtual_bytes,
		ps.start_time, (long long)ps.open_fds);
	if (ps.max_fds >= 0)
		evbuffer_add_printf(b, "# HELP process_max_fds Maximum number of open file descriptors.\n"
		                       "# TYPE process_max_fds gauge\nprocess_max_fds %lld\n", (long long)ps.max_fds);
}

void tk_metrics_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri)
{
	tk_server *srv = w->srv;
	struct evbuffer *b = evbuffer_new();
	uint64_t sum;

	if (!b)
		return tk_http_reply(w, req, ri, 500, "text/plain; charset=utf-8", "out of memory\n", 14);
	evbuffer_add_printf(b, "# HELP tokend_build_info tokend's version (the value is always 1)\n"
	                       "# TYPE tokend_build_info gauge\ntokend_build_info{version=\"%s\"} 1\n",
	                    TOKEND_VERSION);
	emit_process(b);
	if (srv->acct_tokens) {
		evbuffer_add_printf(b, "# HELP tokend_account_tokens_issued_total Access tokens issued per account "
		                       "(metrics_per_account; account=\"\" counts the accounts past %d)\n"
		                       "# TYPE tokend_account_tokens_issued_total counter\n",
		                    TK_METRICS_ACCOUNTS_MAX);
		tk_acctcount_foreach(srv->acct_tokens, emit_account, b);
	}

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
	tk_dbkeystats ks;
	tk_dbpool_key_stats(srv->db, &ks);
	evbuffer_add_printf(b, "# HELP tokend_db_key_statements_total Statements sent to look up keys (a batch is one)\n"
	                       "# TYPE tokend_db_key_statements_total counter\ntokend_db_key_statements_total %llu\n"
	                       "# HELP tokend_db_key_lookups_total Key lookups those statements carried\n"
	                       "# TYPE tokend_db_key_lookups_total counter\ntokend_db_key_lookups_total %llu\n"
	                       "# HELP tokend_db_key_spills_total Key lookups taken by another connection past a stuck lane\n"
	                       "# TYPE tokend_db_key_spills_total counter\ntokend_db_key_spills_total %llu\n"
	                       "# HELP tokend_db_key_spill_threshold_seconds How long a lane runs before it counts as stuck\n"
	                       "# TYPE tokend_db_key_spill_threshold_seconds gauge\ntokend_db_key_spill_threshold_seconds %.4f\n",
	                    (unsigned long long)ks.statements, (unsigned long long)ks.lookups,
	                    (unsigned long long)ks.spills, (double)ks.spill_us / 1e6);
	evbuffer_add_printf(b, "# HELP tokend_memory_trims_total Free heap pages handed back after bursts of key records (malloc_trim)\n"
	                       "# TYPE tokend_memory_trims_total counter\ntokend_memory_trims_total %llu\n"
	                       "# HELP tokend_memory_trim_seconds_total Time those trims took\n"
	                       "# TYPE tokend_memory_trim_seconds_total counter\ntokend_memory_trim_seconds_total %.6f\n",
	                    (unsigned long long)tk_memtrim_count(), (double)tk_memtrim_us() / 1e6);
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
		tk_http_reply(w, req, ri, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
		free(text);
	} else {
		tk_http_reply(w, req, ri, 500, "text/plain; charset=utf-8", "out of memory\n", 14);
	}
	evbuffer_free(b);
}
