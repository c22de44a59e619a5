/*
 * test_headscan.c - the request-head scanner (server/http/headscan.c): each
 * shape it refuses, the Content-Length it reports, and the same verdicts
 * however the bytes are split across reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "headscan.h"
#include "unit.h"

#define MAX_HEAD 1024

typedef struct verdict {
	int r;            /* TK_HS_* */
	size_t at;        /* bytes of the input taken when it came */
	int status;
	uint64_t cl;
} verdict;

/* Feed `n` bytes of `p` in pieces of `piece` bytes (0: in one piece, and
 * also split at position `split`). */
static verdict feed_split(const char *p, size_t n, size_t split)
{
	tk_headscan s;
	tk_headscan_reset(&s, MAX_HEAD);
	verdict v = { TK_HS_MORE, n, 0, 0 };
	size_t off = 0;
	size_t parts[2] = { split, n - split };
	for (int i = 0; i < 2; i++) {
		size_t used = 0;
		int r = tk_headscan_feed(&s, (const unsigned char *)p + off, parts[i], &used);
		if (r != TK_HS_MORE) {
			v.r = r;
			v.at = off + used;
			v.status = r == TK_HS_REFUSE ? s.status : 0;
			v.cl = tk_headscan_length(&s);
			return v;
		}
		off += used;
	}
	return v;
}

/* The verdict on `text`, checked to be the same at every split point. */
static verdict scan_all_splits(const char *text)
{
	size_t n = strlen(text);
	verdict one = feed_split(text, n, n);
	for (size_t k = 0; k <= n; k++) {
		verdict v = feed_split(text, n, k);
		if (v.r != one.r || v.at != one.at || v.status != one.status || v.cl != one.cl) {
			fprintf(stderr, "split at %zu of %zu differs: %d/%zu/%d vs %d/%zu/%d\n", k, n,
			        v.r, v.at, v.status, one.r, one.at, one.status);
			TEST_ASSERT(0);
			break;
		}
	}
	/* Byte by byte too. */
	tk_headscan s;
	tk_headscan_reset(&s, MAX_HEAD);
	for (size_t i = 0; i < n; i++) {
		size_t used;
		int r = tk_headscan_feed(&s, (const unsigned char *)text + i, 1, &used);
		if (r != TK_HS_MORE) {
			TEST_ASSERT(r == one.r && i + 1 == one.at);
			break;
		}
	}
	return one;
}

static void accepted(const char *text, uint64_t cl)
{
	verdict v = scan_all_splits(text);
	if (v.r != TK_HS_DONE)
		fprintf(stderr, "refused (%d): %s\n", v.status, text);
	TEST_ASSERT(v.r == TK_HS_DONE);
	TEST_ASSERT(v.at == strlen(text));
	TEST_ASSERT(v.cl == cl);
}

static void refused(const char *text, int status)
{
	verdict v = scan_all_splits(text);
	if (v.r != TK_HS_REFUSE || v.status != status)
		fprintf(stderr, "not refused with %d: %s\n", status, text);
	TEST_ASSERT(v.r == TK_HS_REFUSE);
	TEST_ASSERT(v.status == status);
}

static void test_well_formed(void)
{
	accepted("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0);
	accepted("GET / HTTP/1.0\n\n", 0);
	accepted("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 0);   /* empty lines before it */
	accepted("POST /oauth2/token HTTP/1.1\r\nContent-Length: 42\r\n\r\n", 42);
	accepted("POST /t HTTP/1.1\r\ncontent-LENGTH:\t 7 \t\r\n\r\n", 7);
	accepted("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 0);
	accepted("GET / HTTP/1.1\r\nX-A: caf\xc3\xa9\tok\r\n\r\n", 0);   /* obs-text, HTAB */
}

static void test_obs_fold(void)
{
	refused("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400);
	refused("GET / HTTP/1.1\r\nHost: x\r\n\tfolded\r\n\r\n", 400);
	refused("GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400);
}

static void test_cl_te_shapes(void)
{
	refused("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
	refused("POST / HTTP/1.1\r\ntransfer-encoding: identity\r\n\r\n", 400);
	refused("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
	refused("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400);
	refused("POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n", 400);
	refused("POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n", 400);
	refused("POST / HTTP/1.1\r\nContent-Length: 3 3\r\n\r\n", 400);
	refused("POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", 400);
	refused("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400);
	refused("POST / HTTP/1.1\r\nContent-Length: 1234567890123456\r\n\r\n", 400);
	refused("POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\n", 400);
	/* A body on a method that carries none. */
	refused("HEAD / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", 400);
	refused("GET / HTTP/1.1\r\nContent-Length: 1\r\n\r\n", 400);
	refused("DELETE /x HTTP/1.1\r\nContent-Length: 1\r\n\r\n", 400);
	refused("TRACE / HTTP/1.1\r\nContent-Length: 1\r\n\r\n", 400);
}

static void test_names_and_ctls(void)
{
	refused("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400);
	refused("GET / HTTP/1.1\r\nBad\"Name: x\r\n\r\n", 400);
	refused("GET / HTTP/1.1\r\n: x\r\n\r\n", 400);
	refused("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400);
	refused("GET / HTTP/1.1\r\nX: a\x01" "b\r\n\r\n", 400);
	refused("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", 400);
	refused("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400);        /* CR without LF */
	refused("G@T / HTTP/1.1\r\n\r\n", 400);
	refused("GET  / HTTP/1.1\r\n\r\n", 400);
	refused("GET /a b HTTP/1.1\r\n\r\n", 400);
	refused("GET / HTTP/2.0\r\n\r\n", 400);
	refused("GET / HTTP/1.1x\r\n\r\n", 400);
	refused("GET /\r\n\r\n", 400);
	/* NUL in a value (strlen would stop there: fed explicitly). */
	static const char nul[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
	tk_headscan s;
	size_t used;
	tk_headscan_reset(&s, MAX_HEAD);
	TEST_ASSERT(tk_headscan_feed(&s, (const unsigned char *)nul, sizeof(nul) - 1, &used) == TK_HS_REFUSE);
	TEST_ASSERT(s.status == 400);
	TEST_ASSERT(used == 21);   /* the NUL is the 21st byte */
}

static void test_oversize(void)
{
	size_t n = MAX_HEAD + 100;
	char *big = malloc(n + 1);
	TEST_ASSERT(big != NULL);
	if (!big)
		return;
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	memset(big + 19, 'a', n - 19);
	big[n] = '\0';
	verdict v = scan_all_splits(big);
	TEST_ASSERT(v.r == TK_HS_REFUSE && v.status == 431);
	TEST_ASSERT(v.at == MAX_HEAD + 1);
	/* Exactly max_head bytes, the blank line included, is accepted. */
	memset(big, 'a', n);
	const char *pre = "GET / HTTP/1.1\r\nX: ";
	memcpy(big, pre, strlen(pre));
	memcpy(big + MAX_HEAD - 4, "\r\n\r\n", 4);
	big[MAX_HEAD] = '\0';
	accepted(big, 0);
	free(big);
}

/* Two pipelined requests in one stream: the first verdict ends at its head;
 * the scanner, reset, reads the second from there; every split of the whole
 * stream gives the same two verdicts. */
static void test_pipelining(void)
{
	const char *stream = "POST /oauth2/token HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
	                     "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
	size_t n = strlen(stream);
	const size_t head1 = strlen("POST /oauth2/token HTTP/1.1\r\nContent-Length: 3\r\n\r\n");
	for (size_t k = 0; k <= n; k++) {
		tk_headscan s;
		tk_headscan_reset(&s, MAX_HEAD);
		size_t off = 0, ends[2] = { 0, 0 };
		int found = 0, bad = 0;
		size_t cuts[3] = { 0, k, n };
		for (int c = 0; c < 2 && !bad; c++) {
			size_t pos = cuts[c] > off ? cuts[c] : off;
			while (pos < cuts[c + 1] && found < 2) {
				size_t used;
				int r = tk_headscan_feed(&s, (const unsigned char *)stream + pos, cuts[c + 1] - pos, &used);
				pos += used;
				if (r == TK_HS_MORE)
					break;
				if (r != TK_HS_DONE) {
					bad = 1;
					break;
				}
				ends[found] = pos;
				if (found++ == 0) {
					/* The body (Content-Length bytes) is not head: skip it. */
					pos += tk_headscan_length(&s);
					tk_headscan_reset(&s, MAX_HEAD);
				}
			}
			off = pos;
		}
		TEST_ASSERT(!bad);
		TEST_ASSERT(found == 2);
		TEST_ASSERT(ends[0] == head1);
		TEST_ASSERT(ends[1] == n);
	}
}

static void test_path(void)
{
	tk_headscan s;
	size_t used, len;
	int trunc;
	const char *req = "POST /admin/v1/keys?x=1 HTTP/1.1\r\n\r\n";
	tk_headscan_reset(&s, MAX_HEAD);
	TEST_ASSERT(tk_headscan_feed(&s, (const unsigned char *)req, strlen(req), &used) == TK_HS_DONE);
	const char *p = tk_headscan_path(&s, &len, &trunc);
	TEST_ASSERT(len == 14 && memcmp(p, "/admin/v1/keys", 14) == 0 && !trunc);
	char longreq[512];
	snprintf(longreq, sizeof(longreq), "GET /%0300d HTTP/1.1\r\n\r\n", 0);
	tk_headscan_reset(&s, MAX_HEAD);
	TEST_ASSERT(tk_headscan_feed(&s, (const unsigned char *)longreq, strlen(longreq), &used) == TK_HS_DONE);
	tk_headscan_path(&s, &len, &trunc);
	TEST_ASSERT(len == TK_HEADSCAN_TARGET_MAX && trunc);
}

/* Empty lines before the request line leave it not begun (conn.c drains them
 * then); its first byte begins it, and a reset ends it. */
static void test_begun(void)
{
	tk_headscan s;
	size_t used;
	tk_headscan_reset(&s, MAX_HEAD);
	TEST_ASSERT(!tk_headscan_begun(&s));
	TEST_ASSERT(tk_headscan_feed(&s, (const unsigned char *)"\r\n\n\r", 4, &used) == TK_HS_MORE);
	TEST_ASSERT(!tk_headscan_begun(&s));          /* a CR waiting for its LF: still none */
	TEST_ASSERT(tk_headscan_feed(&s, (const unsigned char *)"\nG", 2, &used) == TK_HS_MORE);
	TEST_ASSERT(tk_headscan_begun(&s));
	tk_headscan_reset(&s, MAX_HEAD);
	TEST_ASSERT(!tk_headscan_begun(&s));
	TEST_ASSERT(tk_headscan_feed(&s, (const unsigned char *)"\rG", 2, &used) == TK_HS_REFUSE);
}

int main(void)
{
	TEST_RUN(test_begun);
	TEST_RUN(test_well_formed);
	TEST_RUN(test_obs_fold);
	TEST_RUN(test_cl_te_shapes);
	TEST_RUN(test_names_and_ctls);
	TEST_RUN(test_oversize);
	TEST_RUN(test_pipelining);
	TEST_RUN(test_path);
	TEST_DONE();
}
