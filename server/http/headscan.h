/*
 * headscan.h - the request-head scanner: a pure function over bytes.
 *
 * It reads an HTTP/1.x request head (request line and header fields) byte by
 * byte, in as many pieces as the bytes arrive in, and says where the head
 * ends or why it is refused. It knows nothing of connections: conn.c feeds it
 * each connection's input and acts on the verdict (conn.h lists what is
 * refused and why).
 *
 * Contract: tk_headscan_reset before each request; then tk_headscan_feed
 * with the bytes in order, split anywhere: the verdicts and positions are the
 * same however the bytes are split. After a verdict of TK_HS_DONE or
 * TK_HS_REFUSE the state must be reset before it is fed again.
 */
#ifndef TOKEND_HEADSCAN_H
#define TOKEND_HEADSCAN_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of the request target kept (the path a limit may depend on); the
 * length of a longer target is still counted (tlen). */
#define TK_HEADSCAN_TARGET_MAX 128

enum {
	TK_HS_MORE = 0,      /* every byte taken; the head goes on */
	TK_HS_DONE = 1,      /* the head ended at *used bytes of this piece */
	TK_HS_REFUSE = -1,   /* refused at *used bytes: status and why are set */
};

typedef struct tk_headscan {
	size_t max_head;            /* request head bytes at most (431 beyond) */
	/* Where the scanner is; a CR waiting for its LF; bytes of the head so far. */
	int st;
	int cr;
	size_t head_bytes;
	/* The method (first 7 bytes; longer ones are none of those checked), the
	 * target (first TK_HEADSCAN_TARGET_MAX bytes) and version. */
	char method[8];
	char target[TK_HEADSCAN_TARGET_MAX];
	unsigned mlen, vlen, nlen;
	size_t tlen;
	char version[9];
	/* The field name being read (lowercased, first 20 bytes) and its kind. */
	char name[20];
	int field;
	/* Content-Length: seen, digits read, trailing whitespace begun, value. */
	int cl_seen, cl_digits, cl_tail;
	uint64_t cl;
	/* Refused: 400 or 431, and a reason fit for the client. */
	int status;
	const char *why;
} tk_headscan;

/* Ready `s` for a new request head of at most `max_head` bytes. */
void tk_headscan_reset(tk_headscan *s, size_t max_head);

/* Feed the next `n` bytes at `p`. Returns TK_HS_MORE (*used = n),
 * TK_HS_DONE or TK_HS_REFUSE (*used: the bytes of `p` taken, the last one
 * included). */
int tk_headscan_feed(tk_headscan *s, const unsigned char *p, size_t n, size_t *used);

/* Whether the request line has begun: until then only empty lines (and
 * perhaps the CR of one) have been fed. */
int tk_headscan_begun(const tk_headscan *s);

/* After TK_HS_DONE: the request's Content-Length (0 when none). */
static inline uint64_t tk_headscan_length(const tk_headscan *s)
{
	return s->cl;
}

/* After TK_HS_DONE: the path of the target (up to '?'), as far as it was
 * kept; *truncated set when the target was longer than what was kept. */
const char *tk_headscan_path(const tk_headscan *s, size_t *len, int *truncated);

#endif
