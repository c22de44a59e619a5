/*
 * floor.c - the transport floor for tests/bench/run.sh (run 1f): the least an
 * HTTP/1.1 server on this machine's kernel can spend per request.
 *
 * It answers every request with the same bytes, as many as tokend's token
 * response, and does nothing else: no parsing beyond finding the end of the
 * head and the body's Content-Length, no allocation per request. It is shaped
 * like tokend's workers: one thread per worker, each with its own
 * SO_REUSEPORT listening socket and epoll set, keep-alive connections, one
 * recv and one send per request (no TCP_NODELAY: tokend sets none), each
 * worker pinned to its own CPU when there are as many workers as CPUs it may
 * run on (tokend's worker_cpus = auto). Under run 1's load its CPU per
 * request is what the kernel costs any server here (TCP over loopback, system
 * calls, waking the client), before any work of its own.
 *
 *   floor -p PORT -w WORKERS -H HEAD_BYTES -B BODY_BYTES [-D SEND_BATCH] [-U] [-W WORK_US]
 *
 * HEAD_BYTES and BODY_BYTES: the sizes of the answer's head (status line and
 * headers, with the blank line) and body (curl -w '%{size_header}
 * %{size_download}' of a token request). The body is filler, not a token.
 * -D: answers sent together at the end of each pass of the loop, SEND_BATCH
 * at most, as tokend's send_batch does (0 or 1: each at once).
 * -U: such a group of two or more in one io_uring_enter, as tokend's
 * send_uring does (each send MSG_DONTWAIT); without a ring (io_uring refused)
 * one send each, and a note on stderr.
 * -W: WORK_US of CPU spent on each request before its answer (a loop
 * calibrated at start), e.g. one signature's: a server doing that and nothing
 * else, paced as tokend is. The kernel's cost per request depends on the pace:
 * a bare floor answers faster, and its client finds more answers per wake-up.
 *
 * Only 127.0.0.1 is listened on. It runs until SIGTERM or SIGINT, then prints
 *   FLOOR requests=N
 * and exits 0; 2 on bad arguments or when it cannot listen.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#define MAX_WORKERS 64
#define REQ_MAX     8192

struct conn {
	int fd;
	int owed;                   /* answers computed, not yet sent (-D) */
	size_t len;
	char buf[REQ_MAX];
};

static char *answer;
static size_t answer_len;
static int port;
static atomic_long served;
static atomic_int stopping;
static int defer;               /* -D N: answers sent together after the pass, N at most */
static int uring;               /* -U: a group in one io_uring_enter */
static long work_ns;            /* -W: CPU spent per request before its answer */

static long work_iters;         /* work_ns of spin() on this CPU */

/* Work that costs CPU time in proportion to n, and not wall time: a thread
 * preempted meanwhile does not count the wait. */
static void spin(long n)
{
	static volatile unsigned long sink;
	unsigned long x = sink;
	for (long i = 0; i < n; i++)
		x = x * 6364136223846793005UL + 1442695040888963407UL;
	sink = x;
}

static long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);   /* the vDSO: no system call */
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static int send_answers(struct conn *c, int n)
{
	for (; n > 0; n--)
		if (send(c->fd, answer, answer_len, MSG_NOSIGNAL) != (ssize_t)answer_len)
			return -1;
	return 0;
}

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&stopping, 1);
}

/* The length of the first complete request in c->buf, 0 if none yet, -1 if it
 * cannot be one (no end of head within REQ_MAX, or a body that does not fit). */
static long complete(const struct conn *c)
{
	const char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
	if (!end)
		return c->len >= REQ_MAX ? -1 : 0;
	size_t head = (size_t)(end - c->buf) + 4, body = 0;
	for (const char *p = c->buf; p && p < end; p = memchr(p, '\n', (size_t)(end - p))) {
		if (*p == '\n')
			p++;
		if ((size_t)(end - p) > 15 && strncasecmp(p, "Content-Length:", 15) == 0) {
			body = strtoul(p + 15, NULL, 10);
			break;
		}
	}
	if (head + body > REQ_MAX)
		return -1;
	return c->len >= head + body ? (long)(head + body) : 0;
}

static void drop(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

/* Read what has come and answer each complete request; 0, or -1 to close. */
static int serve(struct conn *c)
{
	ssize_t n = recv(c->fd, c->buf + c->len, REQ_MAX - c->len, 0);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		return -1;
	if (n < 0)
		return 0;
	c->len += (size_t)n;
	long req;
	while ((req = complete(c)) > 0) {
		if (work_iters > 0)
			spin(work_iters);
		/* An answer of a few hundred bytes fits the socket buffer of a
		 * client that reads its answers: one send. */
		if (defer > 1)
			c->owed++;
		else if (send_answers(c, 1) != 0)
			return -1;
		atomic_fetch_add_explicit(&served, 1, memory_order_relaxed);
		memmove(c->buf, c->buf + req, c->len - (size_t)req);
		c->len -= (size_t)req;
	}
	return req < 0 ? -1 : 0;
}

static int listen_socket(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 1024) != 0) {
		perror("floor: listen");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Send the answers owed to `n` connections in one io_uring_enter (-U); the
 * connections whose answers did not all go are dropped (as are all of them
 * should the call fail: what went is unknown). 0, or -1 when there are more
 * answers than the ring holds (nothing queued: send_owed sends them one at a
 * time). */
static int ring_owed(struct io_uring *ring, int ep, struct conn **owing, int n)
{
	unsigned q = 0, head, seen = 0;
	struct io_uring_cqe *cqe;
	for (int k = 0; k < n; k++)
		q += (unsigned)owing[k]->owed;
	if (q > io_uring_sq_space_left(ring))
		return -1;
	q = 0;
	for (int k = 0; k < n; k++)
		for (int a = 0; a < owing[k]->owed; a++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
			if (!sqe) {                        /* room was checked above */
				fprintf(stderr, "floor: io_uring: no SQE\n");
				exit(2);
			}
			io_uring_prep_send(sqe, owing[k]->fd, answer, answer_len, MSG_NOSIGNAL | MSG_DONTWAIT);
			io_uring_sqe_set_data64(sqe, (uint64_t)k);
			q++;
		}
	int submitted = io_uring_submit(ring);
	int bad[128] = { 0 };
	io_uring_for_each_cqe(ring, head, cqe) {
		if (cqe->res != (int)answer_len && cqe->user_data < 128)
			bad[cqe->user_data] = 1;
		seen++;
	}
	io_uring_cq_advance(ring, seen);
	for (int k = 0; k < n; k++) {
		owing[k]->owed = 0;
		if (bad[k] || submitted != (int)q || seen != q)
			drop(ep, owing[k]);
	}
	return 0;
}

/* Send the answers owed to `n` connections (-D, as tokend's send_batch); 0. */
static int send_owed(struct io_uring *ring, int ep, struct conn **owing, int n)
{
	if (ring && n > 1 && ring_owed(ring, ep, owing, n) == 0)
		return 0;
	for (int k = 0; k < n; k++) {
		int owed = owing[k]->owed;
		owing[k]->owed = 0;
		if (send_answers(owing[k], owed) != 0)
			drop(ep, owing[k]);
	}
	return 0;
}

struct worker { int lfd; int cpu; pthread_t th; };

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	if (w->cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(w->cpu, &set);
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	}
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL }, evs[128];
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, w->lfd, &ev) != 0) {
		perror("floor: epoll");
		return NULL;
	}
	struct io_uring ring_s, *ring = NULL;
	if (uring) {
		int rc = io_uring_queue_init(256, &ring_s, 0);
		if (rc == 0)
			ring = &ring_s;
		else
			fprintf(stderr, "floor: io_uring_setup: %s (one send each)\n", strerror(-rc));
	}
	while (!atomic_load(&stopping)) {
		int n = epoll_wait(ep, evs, 128, 200);
		struct conn *owing[128];
		int nowing = 0;
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (!c) {
				int fd;
				while ((fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					c = calloc(1, sizeof(*c));
					struct epoll_event cev = { .events = EPOLLIN, .data.ptr = c };
					if (!c || (c->fd = fd, epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) != 0)) {
						close(fd);
						free(c);
					}
				}
				continue;
			}
			if (serve(c) != 0)
				drop(ep, c);
			else if (c->owed)
				owing[nowing++] = c;
			if (nowing >= defer)
				nowing = send_owed(ring, ep, owing, nowing);   /* at the cap */
		}
		nowing = send_owed(ring, ep, owing, nowing);     /* at the end of the pass */
	}
	if (ring)
		io_uring_queue_exit(ring);
	close(ep);
	return NULL;
}

int main(int argc, char **argv)
{
	int workers = 0, opt;
	long head = 0, body = 0;
	while ((opt = getopt(argc, argv, "p:w:H:B:D:UW:")) != -1) {
		switch (opt) {
		case 'p': port = atoi(optarg); break;
		case 'w': workers = atoi(optarg); break;
		case 'H': head = atol(optarg); break;
		case 'B': body = atol(optarg); break;
		case 'D': defer = atoi(optarg); break;
		case 'U': uring = 1; break;
		case 'W': work_ns = atol(optarg) * 1000L; break;
		default: goto usage;
		}
	}
	if (port <= 0 || port > 65535 || workers < 1 || workers > MAX_WORKERS ||
	    head < 64 || head > 4096 || body < 0 || body > 65536 || defer < 0 || defer > 128 || work_ns < 0 ||
	    work_ns > 10000000)
		goto usage;

	/* The head: a status line and headers padded to HEAD_BYTES with one
	 * filler header; the body: filler. */
	char start[160];
	int sl = snprintf(start, sizeof(start), "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	                  "Content-Length: %ld\r\nX-Pad: ", body);
	if (sl < 0 || (long)sl + 4 > head)
		goto usage;
	answer_len = (size_t)(head + body);
	answer = malloc(answer_len);
	if (!answer)
		return 2;
	memcpy(answer, start, (size_t)sl);
	memset(answer + sl, 'p', (size_t)(head - sl - 4));
	memcpy(answer + head - 4, "\r\n\r\n", 4);
	memset(answer + head, 'b', (size_t)body);

	if (work_ns > 0) {
		/* Calibrate: the best of five runs of a million iterations. */
		long best = 0;
		for (int r = 0; r < 5; r++) {
			long t0 = now_ns();
			spin(1000000);
			long t = now_ns() - t0;
			if (best == 0 || t < best)
				best = t;
		}
		work_iters = best > 0 ? (long)((double)work_ns * 1000000.0 / (double)best) : 0;
	}

	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	/* Pinned as tokend's worker_cpus = auto: only with one CPU per worker. */
	cpu_set_t allowed;
	int cpus[CPU_SETSIZE], ncpu = 0;
	if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0)
		for (int i = 0; i < CPU_SETSIZE; i++)
			if (CPU_ISSET(i, &allowed))
				cpus[ncpu++] = i;
	struct worker w[MAX_WORKERS];
	for (int i = 0; i < workers; i++) {
		w[i].lfd = listen_socket();
		w[i].cpu = ncpu == workers ? cpus[i] : -1;
		if (w[i].lfd < 0)
			return 2;
	}
	for (int i = 0; i < workers; i++)
		if (pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0)
			return 2;
	for (int i = 0; i < workers; i++)
		pthread_join(w[i].th, NULL);
	printf("FLOOR requests=%ld\n", atomic_load(&served));
	return 0;
usage:
	fprintf(stderr, "usage: floor -p PORT -w WORKERS -H HEAD_BYTES(64..4096) -B BODY_BYTES(0..65536) "
	        "[-D SEND_BATCH(0..128)] [-U] [-W WORK_US(0..10000)]\n");
	return 2;
}
