/*
 * openloop.c - an open-loop HTTP/1.1 load generator for tests/bench/run.sh.
 *
 * Requests are due at a fixed rate (request i at start + i / rate) whatever
 * the server does; each one's latency runs from the time it was due, not from
 * when a connection was free to send it, so a slow answer counts for every
 * request queued behind it (no coordinated omission). Keep-alive connections,
 * one request in flight per connection, plain epoll, one thread.
 *
 *   openloop -p PORT (-r RATE | -C) -d SECONDS [-c CONNECTIONS] [-P PATH]
 *            [-H "Name: value"]... [-b BODY] [-T TRACE_FILE] [-S]
 *
 * -C: closed loop instead (no rate): each connection sends its next request
 * as soon as its answer is in, as wrk does; latency runs from the send.
 * -S: spin: wait for answers with a zero timeout, never sleeping. A client
 * asleep in epoll_wait must be woken by the server's send (on loopback the
 * server's CPU pays for that wake-up, an inter-processor interrupt on another
 * core, which a client on another machine would pay for itself); a spinning
 * client is always awake, so the server's CPU per request is its own work.
 * It burns its core: give it one of its own (taskset).
 *
 * -T writes one line per answered request: its due time (us since the start)
 * and its latency (us), so that a tail can be placed in time (is it periodic?
 * which connections?).
 *
 * OPENLOOP_AUTH in the environment, when set, is sent as
 * "Authorization: Basic $OPENLOOP_AUTH" (a secret stays off the command line).
 * OPENLOOP_KEYS_FILE instead names a file of such values, one per line
 * (tests/bench/gen_keys.py --auth-file): each request carries one picked at
 * random, sent without a copy (sendmsg of the request's head, the value and
 * its tail), so that the client costs about the same per request with a
 * million keys as with one, and two runs at the same rate compare the
 * server's work alone.
 *
 * Only 127.0.0.1 is ever contacted. It stops by itself: scheduling ends after
 * SECONDS, answers are awaited for at most 5 s more. The last line printed:
 *   OPENLOOP mode=.. rate=.. sent=.. done=.. non2xx=.. errors=.. late=.. p50_us=.. p90_us=..
 *            p99_us=.. p999_us=.. max_us=.. elapsed_s=..
 * (late: requests due but never answered (not sent, or unanswered 5 s after
 * the end); not in the percentiles, so a run with late > 0 did not keep up.) Exit 0, or 2 on bad arguments or when nothing could connect.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS   1024
#define REQ_MAX     4096
#define RESP_MAX    65536
/* Histogram: 1 us steps below 1 ms, then 1% steps (log buckets) up to 100 s. */
#define LIN_US      1000
#define LOG_BUCKETS 1200

struct conn {
	int fd;
	int busy;                  /* a request is in flight */
	uint64_t due_ns;           /* when that request was due */
	size_t sent, have;
	char in[RESP_MAX];
};

static uint64_t lin[LIN_US], logbk[LOG_BUCKETS], total, max_us;
static uint64_t non2xx, errors;

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void record(uint64_t us)
{
	if (us > max_us)
		max_us = us;
	total++;
	if (us < LIN_US) {
		lin[us]++;
		return;
	}
	/* bucket b holds [1000 * 1.01^b, 1000 * 1.01^(b+1)) */
	double v = (double)us / LIN_US;
	int b = 0;
	while (v >= 1.01 && b < LOG_BUCKETS - 1) {
		v /= 1.01;
		b++;
	}
	logbk[b]++;
}

static uint64_t percentile(double p)
{
	uint64_t want = (uint64_t)(p * (double)total + 0.999999), seen = 0;
	double upper = LIN_US;

	if (total == 0)
		return 0;
	if (want == 0)
		want = 1;
	for (int i = 0; i < LIN_US; i++)
		if ((seen += lin[i]) >= want)
			return (uint64_t)i;
	for (int b = 0; b < LOG_BUCKETS; b++) {
		upper *= 1.01;
		if ((seen += logbk[b]) >= want)
			return (uint64_t)upper < max_us ? (uint64_t)upper : max_us;
	}
	return max_us;
}

static int connect_one(int port, int ep, struct conn *c)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	int one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    fcntl(c->fd, F_SETFL, O_NONBLOCK) != 0 || epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	c->busy = 0;
	c->have = 0;
	return 0;
}

/* Complete response in c->in? 1 yes (status in *st), 0 not yet, -1 malformed. */
static int response_done(struct conn *c, int *st)
{
	char *end = memmem(c->in, c->have, "\r\n\r\n", 4);
	size_t head, clen = 0;
	char *p;

	if (end == NULL)
		return c->have >= sizeof(c->in) ? -1 : 0;
	head = (size_t)(end - c->in) + 4;
	if (c->have < 12 || memcmp(c->in, "HTTP/1.1 ", 9) != 0)
		return -1;
	*st = atoi(c->in + 9);
	*end = '\0';
	p = strcasestr(c->in, "\r\nContent-Length:");
	if (p != NULL)
		clen = strtoul(p + 17, NULL, 10);
	*end = '\r';
	if (head + clen > sizeof(c->in))
		return -1;
	if (c->have < head + clen)
		return 0;
	if (c->have > head + clen)         /* nothing was asked for beyond this answer */
		return -1;
	return 1;
}

/* OPENLOOP_KEYS_FILE: the file's text and where each line starts and ends. */
static char *keys_text;
static size_t *key_off, *key_len, nkeys;

static int load_keys(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	size_t cap = 0, len = 0, kcap = 0;
	for (;;) {
		if (len + 65536 > cap) {
			cap = cap ? cap * 2 : 1 << 20;
			char *t = realloc(keys_text, cap);
			if (t == NULL) {
				/* Not a part of the file taken for all of it. */
				fclose(f);
				return -1;
			}
			keys_text = t;
		}
		size_t got = fread(keys_text + len, 1, cap - len, f);
		if (got == 0)
			break;
		len += got;
	}
	int bad = ferror(f);
	fclose(f);
	if (bad)
		return -1;
	for (size_t i = 0; i < len;) {
		size_t e = i;
		while (e < len && keys_text[e] != '\n')
			e++;
		if (e > i) {
			if (nkeys == kcap) {
				kcap = kcap ? kcap * 2 : 1024;
				size_t *o = realloc(key_off, kcap * sizeof(*o)), *l = o ? realloc(key_len, kcap * sizeof(*l)) : NULL;
				if (o)
					key_off = o;
				if (l == NULL)
					return -1;
				key_len = l;
			}
			key_off[nkeys] = i;
			key_len[nkeys] = e - i;
			nkeys++;
		}
		i = e + 1;
	}
	return nkeys > 0 ? 0 : -1;
}

/* xorshift64*: which key the next request carries. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static size_t pick_key(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (size_t)((rng_state * 0x2545f4914f6cdd1du) % nkeys);
}

/* Requests due from start until stop. */
static uint64_t due_total(uint64_t start, uint64_t stop, double gap_ns)
{
	uint64_t n = 0;
	while (start + (uint64_t)((double)n * gap_ns) < stop)
		n++;
	return n;
}

int main(int argc, char **argv)
{
	static struct conn conns[MAX_CONNS];
	char req[REQ_MAX], headers[REQ_MAX] = "";
	const char *path = "/", *body = "";
	int port = 0, nconn = 64, opt, ep;
	double rate = 0, secs = 0;
	size_t reqlen, hl = 0;
	uint64_t start, stop, next_i = 0, done = 0, late = 0;
	FILE *trace = NULL;
	int closed = 0, spin = 0;

	while ((opt = getopt(argc, argv, "p:r:d:c:P:H:b:T:CS")) != -1) {
		switch (opt) {
		case 'p': port = atoi(optarg); break;
		case 'r': rate = atof(optarg); break;
		case 'C': closed = 1; break;
		case 'S': spin = 1; break;
		case 'd': secs = atof(optarg); break;
		case 'c': nconn = atoi(optarg); break;
		case 'P': path = optarg; break;
		case 'b': body = optarg; break;
		case 'T':
			trace = fopen(optarg, "w");
			if (trace == NULL) {
				fprintf(stderr, "openloop: cannot write %s: %s\n", optarg, strerror(errno));
				return 2;
			}
			break;
		case 'H': {
			int n = snprintf(headers + hl, sizeof(headers) - hl, "%s\r\n", optarg);
			if (n < 0 || (size_t)n >= sizeof(headers) - hl) {
				fprintf(stderr, "openloop: headers too long\n");
				return 2;
			}
			hl += (size_t)n;
			break;
		}
		default:
			fprintf(stderr, "usage: openloop -p PORT (-r RATE | -C) -d SECONDS [-c CONNS] [-P PATH] "
			        "[-H HEADER]... [-b BODY] [-T TRACE] [-S]\n");
			return 2;
		}
	}
	if (closed)
		rate = 1;                          /* unused: every free connection sends at once */
	if (port <= 0 || port > 65535 || rate <= 0 || secs <= 0 || secs > 600 || nconn <= 0 ||
	    nconn > MAX_CONNS) {
		fprintf(stderr, "openloop: need -p 1..65535, -r > 0 or -C, -d 0..600, -c 1..%d\n", MAX_CONNS);
		return 2;
	}
	const char *keys_file = getenv("OPENLOOP_KEYS_FILE");
	if (keys_file != NULL && *keys_file != '\0') {
		if (load_keys(keys_file) != 0) {
			fprintf(stderr, "openloop: cannot read the keys of %s (unreadable, out of memory, or none)\n", keys_file);
			return 2;
		}
		rng_state ^= now_ns();
	}
	const char *auth = getenv("OPENLOOP_AUTH");
	if (nkeys == 0 && auth != NULL && *auth != '\0') {
		int a = snprintf(headers + hl, sizeof(headers) - hl, "Authorization: Basic %s\r\n", auth);
		if (a < 0 || (size_t)a >= sizeof(headers) - hl) {
			fprintf(stderr, "openloop: headers too long\n");
			return 2;
		}
		hl += (size_t)a;
	}
	/* With keys: req is the head up to the Authorization value, tail the rest. */
	char tail[REQ_MAX];
	size_t taillen = 0;
	int n = snprintf(req, sizeof(req),
	                 nkeys ? "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%sAuthorization: Basic "
	                       : "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s",
	                 path, port, headers);
	int m = snprintf(tail, sizeof(tail),
	                 "%sContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n\r\n%s",
	                 nkeys ? "\r\n" : "", strlen(body), body);
	if (n < 0 || m < 0 || (size_t)n + (size_t)m >= sizeof(req)) {
		fprintf(stderr, "openloop: request too long\n");
		return 2;
	}
	if (nkeys == 0) {
		memcpy(req + n, tail, (size_t)m + 1);
		n += m;
		m = 0;
	}
	reqlen = (size_t)n;
	taillen = (size_t)m;
	ep = epoll_create1(EPOLL_CLOEXEC);
	for (int i = 0; i < nconn; i++)
		if (connect_one(port, ep, &conns[i]) != 0) {
			fprintf(stderr, "openloop: cannot connect to 127.0.0.1:%d: %s\n", port, strerror(errno));
			return 2;
		}

	start = now_ns();
	stop = start + (uint64_t)(secs * 1e9);
	const double gap_ns = 1e9 / rate;
	uint64_t deadline = stop + 5000000000u;
	int free_hint = 0;
	for (;;) {
		uint64_t t = now_ns();
		/* Send every request that is due, while a connection is free; the
		 * others wait (their latency already runs). */
		for (;;) {
			uint64_t due = closed ? t : start + (uint64_t)((double)next_i * gap_ns);
			if (due > t || due >= stop)
				break;
			int k = -1;
			for (int j = 0; j < nconn; j++) {
				int i = (free_hint + j) % nconn;
				if (conns[i].fd >= 0 && !conns[i].busy) {
					k = i;
					break;
				}
			}
			if (k < 0)
				break;
			free_hint = k + 1;
			struct conn *c = &conns[k];
			size_t want = reqlen;
			ssize_t w;
			if (nkeys) {
				size_t k2 = pick_key();
				struct iovec iov[3] = { { req, reqlen }, { keys_text + key_off[k2], key_len[k2] },
				                        { tail, taillen } };
				struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 3 };
				want = reqlen + key_len[k2] + taillen;
				w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
			} else {
				w = send(c->fd, req, reqlen, MSG_NOSIGNAL);
			}
			if (w != (ssize_t)want) {        /* a short write on loopback: count it, reconnect */
				errors++;
				close(c->fd);
				connect_one(port, ep, c);
				continue;
			}
			c->busy = 1;
			c->due_ns = due;
			c->have = 0;
			next_i++;
		}
		int inflight = 0;
		for (int i = 0; i < nconn; i++)
			inflight += conns[i].busy;
		uint64_t nd = closed ? t : start + (uint64_t)((double)next_i * gap_ns);
		if (t >= stop && ((inflight == 0 && nd >= stop) || t >= deadline)) {
			late = (closed ? next_i : due_total(start, stop, gap_ns)) - done;
			break;
		}
		/* Wait until the next request is due (or an answer comes), to the
		 * microsecond: a millisecond timer would add its error to every
		 * latency. */
		struct timespec ts = { 0, 0 };
		if (nd > t && inflight < nconn) {
			ts.tv_sec = (time_t)((nd - t) / 1000000000u);
			ts.tv_nsec = (long)((nd - t) % 1000000000u);
		} else if (inflight == nconn || nd >= stop) {
			ts.tv_nsec = 10000000;        /* every connection busy, or none due: answers */
		}
		if (spin) {
			ts.tv_sec = 0;
			ts.tv_nsec = 0;
		}
		struct epoll_event evs[64];
		int ne = epoll_pwait2(ep, evs, 64, &ts, NULL);
		for (int e = 0; e < ne; e++) {
			struct conn *c = evs[e].data.ptr;
			ssize_t r = recv(c->fd, c->in + c->have, sizeof(c->in) - c->have, 0);
			int st = 0, d;
			if (r <= 0) {
				if (r < 0 && (errno == EAGAIN || errno == EINTR))
					continue;
				if (c->busy)
					errors++;
				close(c->fd);
				connect_one(port, ep, c);
				continue;
			}
			c->have += (size_t)r;
			d = response_done(c, &st);
			if (d == 0)
				continue;
			if (d < 0 || !c->busy) {
				errors++;
				close(c->fd);
				connect_one(port, ep, c);
				continue;
			}
			record((now_ns() - c->due_ns) / 1000);
			if (trace != NULL)
				fprintf(trace, "%llu %llu %d\n", (unsigned long long)((c->due_ns - start) / 1000),
				        (unsigned long long)((now_ns() - c->due_ns) / 1000), (int)(c - conns));
			done++;
			if (st < 200 || st > 299)
				non2xx++;
			c->busy = 0;
			c->have = 0;
		}
	}
	if (trace != NULL)
		fclose(trace);
	double elapsed = (double)(now_ns() - start) / 1e9;
	printf("OPENLOOP mode=%s rate=%.0f sent=%llu done=%llu non2xx=%llu errors=%llu late=%llu "
	       "p50_us=%llu p90_us=%llu p99_us=%llu p999_us=%llu max_us=%llu elapsed_s=%.2f\n",
	       closed ? (spin ? "closed-spin" : "closed") : (spin ? "open-spin" : "open"),
	       closed ? 0.0 : rate, (unsigned long long)next_i, (unsigned long long)done,
	       (unsigned long long)non2xx, (unsigned long long)errors, (unsigned long long)late,
	       (unsigned long long)percentile(0.50), (unsigned long long)percentile(0.90),
	       (unsigned long long)percentile(0.99), (unsigned long long)percentile(0.999),
	       (unsigned long long)max_us, elapsed);
	for (int i = 0; i < nconn; i++)
		if (conns[i].fd >= 0)
			close(conns[i].fd);
	close(ep);
	return 0;
}
