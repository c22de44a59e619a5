/*
 * test_observe.c - the observability helpers: typed log values
 * (core/log.c), request ids and W3C traceparent (http/worker.c), /proc
 * parsing (core/procstat.c), per-account counters (core/acctcount.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acctcount.h"
#include "log.h"
#include "procstat.h"
#include "server.h"
#include "unit.h"

/* Run tk_log with stderr sent to a pipe; return the line written. */
static char *captured(const char *format, const char *k, const char *v)
{
	static char line[4096];
	int p[2], saved = dup(2);
	if (pipe(p) != 0)
		return NULL;
	dup2(p[1], 2);
	tk_log_init("info", format);
	tk_log(TK_LOG_INFO, "t.ev", k, v, NULL);
	dup2(saved, 2);
	close(saved);
	close(p[1]);
	ssize_t n = read(p[0], line, sizeof(line) - 1);
	close(p[0]);
	line[n > 0 ? n : 0] = '\0';
	return line;
}

static void test_typed_log_values(void)
{
	TEST_ASSERT(strstr(captured("json", TK_LOG_NUM "status", "200"), ",\"status\":200}"));
	TEST_ASSERT(strstr(captured("json", TK_LOG_NUM "us", "-12.5"), ",\"us\":-12.5}"));
	TEST_ASSERT(strstr(captured("json", TK_LOG_BOOL "ok", "1"), ",\"ok\":true}"));
	TEST_ASSERT(strstr(captured("json", TK_LOG_BOOL "ok", "no"), ",\"ok\":false}"));
	TEST_ASSERT(strstr(captured("json", "status", "200"), ",\"status\":\"200\"}"));   /* untyped: a string */
	/* A value that is not what its key promises stays a (escaped) string. */
	TEST_ASSERT(strstr(captured("json", TK_LOG_NUM "n", "1,\"x\":2"), ",\"n\":\"1,\\\"x\\\":2\"}"));
	TEST_ASSERT(strstr(captured("json", TK_LOG_NUM "n", "012"), ",\"n\":\"012\"}"));
	TEST_ASSERT(strstr(captured("json", TK_LOG_NUM "n", ""), ",\"n\":\"\"}"));
	TEST_ASSERT(strstr(captured("json", TK_LOG_NUM "n", "1e5"), ",\"n\":\"1e5\"}"));
	TEST_ASSERT(strstr(captured("json", TK_LOG_BOOL "b", "maybe"), ",\"b\":\"maybe\"}"));
	TEST_ASSERT(strstr(captured("text", TK_LOG_NUM "status", "200"), " status=200\n"));
	TEST_ASSERT(strstr(captured("text", TK_LOG_NUM "status", "2 x=1"), " status=\"2 x=1\"\n"));
	TEST_ASSERT(strstr(captured("text", "status", "200"), " status=\"200\"\n"));
}

static void test_request_id(void)
{
	TEST_ASSERT(tk_request_id_ok("f47ac10b-58cc-4372-a567-0e02b2c3d479"));
	TEST_ASSERT(tk_request_id_ok("a"));
	TEST_ASSERT(tk_request_id_ok("Root=1-5759e988-bd862e3fe1be46a994272793"));
	char max[TK_REQID_MAX + 2];
	memset(max, 'a', sizeof(max));
	max[TK_REQID_MAX] = '\0';
	TEST_ASSERT(tk_request_id_ok(max));
	max[TK_REQID_MAX] = 'a';
	max[TK_REQID_MAX + 1] = '\0';
	TEST_ASSERT(!tk_request_id_ok(max));                      /* too long */
	TEST_ASSERT(!tk_request_id_ok(""));
	TEST_ASSERT(!tk_request_id_ok(NULL));
	TEST_ASSERT(!tk_request_id_ok("a b"));
	TEST_ASSERT(!tk_request_id_ok("a\"b"));
	TEST_ASSERT(!tk_request_id_ok("a\nb"));
	TEST_ASSERT(!tk_request_id_ok("x\x1b[31m"));
	TEST_ASSERT(!tk_request_id_ok("caf\xc3\xa9"));
	TEST_ASSERT(!tk_request_id_ok("tks_2pQ4mVb7Xc9Z"));       /* a secret's shape: never taken */
}

static void test_traceparent(void)
{
	char t[33], p[17];
	TEST_ASSERT(tk_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", t, p) == 0);
	TEST_ASSERT_STR(t, "4bf92f3577b34da6a3ce929d0e0e4736");
	TEST_ASSERT_STR(p, "00f067aa0ba902b7");
	/* A later version may append fields after a '-'. */
	TEST_ASSERT(tk_traceparent_parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz", t, p) == 0);
	TEST_ASSERT(tk_traceparent_parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01xyz", t, p) == -1);
	static const char *const bad[] = {
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* version 00: exactly 55 */
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* version ff */
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",  /* zero trace id */
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  /* zero parent id */
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  /* upper case */
		"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",   /* short */
		"00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
		"0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
		"", NULL,
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(t, "junk");
		strcpy(p, "junk");
		TEST_ASSERT(tk_traceparent_parse(bad[i], t, p) == -1);
		TEST_ASSERT(t[0] == '\0' && p[0] == '\0');
	}
}

static void test_procstat(void)
{
	tk_procstat ps = { 0 };
	/* A comm with spaces and a ')' in it. */
	const char *stat = "1234 (tok end) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 3 0 "
	                   "5000 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
	TEST_ASSERT(tk_procstat_parse_stat(stat, 100, 4096, 1700000000, &ps) == 0);
	TEST_ASSERT(ps.cpu_seconds > 3.99 && ps.cpu_seconds < 4.01);          /* (250 + 150) / 100 */
	TEST_ASSERT(ps.start_time > 1700000049.9 && ps.start_time < 1700000050.1);
	TEST_ASSERT(ps.virtual_bytes == 104857600);
	TEST_ASSERT(ps.resident_bytes == 2560ull * 4096);
	TEST_ASSERT(tk_procstat_parse_stat("1234 (x) S 1 2", 100, 4096, 0, &ps) == -1);
	TEST_ASSERT(tk_procstat_parse_stat("no parenthesis", 100, 4096, 0, &ps) == -1);
	TEST_ASSERT(tk_procstat_parse_stat(NULL, 100, 4096, 0, &ps) == -1);
	/* The real thing: this process has a few descriptors and some memory. */
	TEST_ASSERT(tk_procstat_read(&ps) == 0);
	TEST_ASSERT(ps.open_fds >= 3 && ps.max_fds >= ps.open_fds);
	TEST_ASSERT(ps.resident_bytes > 0 && ps.virtual_bytes >= ps.resident_bytes);
	TEST_ASSERT(ps.start_time > 1.6e9);
}

static void sum_cb(const char *account, uint64_t n, void *arg)
{
	char *out = arg;
	size_t l = strlen(out);
	snprintf(out + l, 512 - l, "[%s=%llu]", account, (unsigned long long)n);
}

static void test_acctcount(void)
{
	TEST_ASSERT(tk_acctcount_new(0) == NULL);
	tk_acctcount *t = tk_acctcount_new(2);
	TEST_ASSERT(t != NULL);
	tk_acctcount_add(t, "acme");
	tk_acctcount_add(t, "acme");
	tk_acctcount_add(t, "globex");
	tk_acctcount_add(t, "initech");      /* past the bound: counted with the rest */
	tk_acctcount_add(t, NULL);
	tk_acctcount_add(t, "acme");
	char out[512] = "";
	tk_acctcount_foreach(t, sum_cb, out);
	TEST_ASSERT(strstr(out, "[acme=3]") && strstr(out, "[globex=1]") && !strstr(out, "initech"));
	TEST_ASSERT(strstr(out, "[=2]") != NULL);
	tk_acctcount_free(t);
	tk_acctcount_add(NULL, "acme");      /* off: nothing, no crash */
	tk_acctcount_free(NULL);
}

int main(void)
{
	TEST_RUN(test_typed_log_values);
	TEST_RUN(test_request_id);
	TEST_RUN(test_traceparent);
	TEST_RUN(test_procstat);
	TEST_RUN(test_acctcount);
	TEST_DONE();
}
