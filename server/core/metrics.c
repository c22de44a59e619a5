/*
 * metrics.c - counting a request into a worker's metrics (see metrics.h).
 */
#include "metrics.h"

void tk_metrics_request(tk_metrics *m, tk_endpoint ep, int status, uint64_t micros)
{
	static const int codes[] = {
#define TK_CODE(c) c,
		TK_STATUS_CODES(TK_CODE)
#undef TK_CODE
	};
	int idx = TK_ST_COUNT - 1;
	for (int i = 0; i < TK_ST_COUNT - 1; i++)
		if (codes[i] == status)
			idx = i;
	tk_metric_add(&m->requests[ep][idx], 1);
	if (ep != EP_TOKEN)
		return;
	static const uint64_t bounds[] = {
#define TK_B(b) b,
		TK_LAT_BUCKETS(TK_B)
#undef TK_B
	};
	int b = TK_LAT_COUNT - 1;
	for (int i = 0; i < TK_LAT_COUNT - 1; i++)
		if (micros <= bounds[i]) {
			b = i;
			break;
		}
	tk_metric_add(&m->latency[b], 1);
	tk_metric_add(&m->latency_sum_us, micros);
}
