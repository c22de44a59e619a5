/*
 * listener.c - LISTEN/NOTIFY cache invalidation.
 */
#include "listener.h"
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "db.h"
#include "log.h"
#include "thread.h"

struct tk_listener {
	char *url;
	tk_keycache *cache;
	int64_t timeout_ms;
	tk_scopes_changed_cb on_scopes;
	tk_scopes_changed_cb on_keys;
	void *arg;
	_Atomic(const tk_listener_hook *) on_signing_keys;
	pthread_t thread;
	_Atomic int stopping;
	_Atomic int up;
	int wake[2];               /* tk_listener_stop writes wake[1]: the thread's waits end at once
	                            * (-1 when the pipe could not be made: the waits end within 250 ms) */
};

/* Wait up to `ms` for the socket `fd` (-1: none) to be readable or for a stop;
 * poll's result for `fd` (1 readable, 0 not, -1 error); a stop reads as 0. */
static int wait_readable(tk_listener *l, int fd, int ms)
{
	struct pollfd pfd[2] = { { .fd = fd, .events = POLLIN }, { .fd = l->wake[0], .events = POLLIN } };
	int pr = poll(pfd, 2, ms);
	if (pr < 0)
		return errno == EINTR ? 0 : -1;
	return fd >= 0 && (pfd[0].revents & (POLLIN | POLLERR | POLLHUP)) ? 1 : 0;
}

/* Connect and LISTEN; NULL with the reason in `why` (never a password). */
static PGconn *open_listen(tk_listener *l, char *why, size_t whylen)
{
	char ct[24], ut[24];
	int64_t secs = (l->timeout_ms + 999) / 1000;
	snprintf(ct, sizeof(ct), "%lld", (long long)(secs < 2 ? 2 : secs));
	snprintf(ut, sizeof(ut), "%lld", (long long)l->timeout_ms * 2);
	/* Notifications come from the primary's commits, and LISTEN is refused on
	 * a standby: with several hosts, the one that accepts writes (as the
	 * pool's; the URL may say otherwise: it is read last). */
	const char *keys[] = { "connect_timeout", "application_name", "keepalives", "keepalives_idle",
	                       "keepalives_interval", "keepalives_count", "tcp_user_timeout",
	                       "target_session_attrs", "dbname", NULL };
	const char *vals[] = { ct, "tokend-listener", "1", "5", "1", "3", ut, "read-write", l->url, NULL };
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (!c || PQstatus(c) != CONNECTION_OK) {
		tk_db_connect_error(c, why, whylen);
		PQfinish(c);
		return NULL;
	}
	PGresult *r = PQexec(c, "LISTEN tokend_keys; LISTEN tokend_accounts; LISTEN tokend_scopes;"
	                           " LISTEN tokend_signing_keys");
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		snprintf(why, whylen, "LISTEN failed: %s", tk_db_error(c, r));
	PQclear(r);
	if (!ok) {
		PQfinish(c);
		return NULL;
	}
	return c;
}

static void signing_keys_changed(tk_listener *l)
{
	const tk_listener_hook *h = atomic_load(&l->on_signing_keys);
	if (h && h->cb)
		h->cb(h->arg);
}

static void handle_notifies(tk_listener *l, PGconn *c)
{
	PGnotify *n;
	while ((n = PQnotifies(c)) != NULL) {
		if (strcmp(n->relname, "tokend_keys") == 0) {
			tk_keycache_invalidate(l->cache, n->extra);
			if (l->on_keys)
				l->on_keys(l->arg);
		}
		else if (strcmp(n->relname, "tokend_accounts") == 0) {
			tk_keycache_invalidate_account(l->cache, n->extra);
			if (l->on_keys)
				l->on_keys(l->arg);      /* a disabled account lists its keys */
		}
		else if (strcmp(n->relname, "tokend_scopes") == 0 && l->on_scopes)
			l->on_scopes(l->arg);
		else if (strcmp(n->relname, "tokend_signing_keys") == 0)
			signing_keys_changed(l);
		PQfreemem(n);
	}
}

/* Send a liveness query and wait for its result, processing notifications. */
static int ping(tk_listener *l, PGconn *c)
{
	if (!PQsendQuery(c, "SELECT 1"))
		return -1;
	int64_t deadline = tk_mono_ms() + (l->timeout_ms < 1000 ? 1000 : l->timeout_ms) * 2;
	for (;;) {
		if (!PQconsumeInput(c))
			return -1;
		handle_notifies(l, c);
		if (!PQisBusy(c))
			break;
		int64_t left = deadline - tk_mono_ms();
		if (left <= 0)
			return -1;
		struct pollfd pfd = { .fd = PQsocket(c), .events = POLLIN };
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			return -1;
	}
	PGresult *r;
	int ok = 1;
	while ((r = PQgetResult(c)) != NULL) {
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			ok = 0;
		PQclear(r);
	}
	/* A notification that came in the same read as the result is parsed by
	 * PQisBusy/PQgetResult above, after the last handle_notifies: without
	 * this it would wait in libpq's queue for the next readable socket (the
	 * next ping, 2 s on), and a disabled key would be served that long. */
	handle_notifies(l, c);
	return ok && PQstatus(c) == CONNECTION_OK ? 0 : -1;
}

static void *listener_main(void *arg)
{
	tk_listener *l = arg;
	PGconn *c = NULL;
	int logged_down = 0;
	while (!atomic_load(&l->stopping)) {
		if (!c) {
			char why[600];
			c = open_listen(l, why, sizeof(why));
			if (!c) {
				if (!logged_down) {
					tk_log(TK_LOG_WARNING, "listener.down",
					       "detail", "cannot LISTEN: key cache bypassed until the database returns",
					       "reason", why, NULL);
					logged_down = 1;
				}
				wait_readable(l, -1, 250);
				continue;
			}
			/* Anything may have changed while we were not listening. */
			tk_keycache_set_bypass(l->cache, 0);
			atomic_store(&l->up, 1);
			if (l->on_scopes)
				l->on_scopes(l->arg);
			signing_keys_changed(l);
			if (l->on_keys)
				l->on_keys(l->arg);
			tk_log(TK_LOG_INFO, "listener.up", NULL);
			logged_down = 0;
		}
		int64_t next_ping = tk_mono_ms() + 2000;
		int broken = 0;
		while (!atomic_load(&l->stopping) && !broken) {
			int64_t left = next_ping - tk_mono_ms();
			int pr = wait_readable(l, PQsocket(c), left < 0 ? 0 : (left > 250 ? 250 : (int)left));
			if (pr < 0)
				broken = 1;
			else if (pr > 0) {
				if (!PQconsumeInput(c))
					broken = 1;
				else
					handle_notifies(l, c);
			}
			if (!broken && tk_mono_ms() >= next_ping) {
				if (ping(l, c) != 0)
					broken = 1;
				next_ping = tk_mono_ms() + 2000;
			}
		}
		if (broken) {
			atomic_store(&l->up, 0);
			tk_keycache_set_bypass(l->cache, 1);
			tk_log(TK_LOG_WARNING, "listener.lost", "detail",
			       "notification connection lost: key cache bypassed", NULL);
			logged_down = 1;
		}
		PQfinish(c);
		c = NULL;
	}
	if (c)
		PQfinish(c);
	return NULL;
}

static void close_wake(tk_listener *l)
{
	for (int i = 0; i < 2; i++)
		if (l->wake[i] >= 0)
			close(l->wake[i]);
}

tk_listener *tk_listener_start(const char *url, tk_keycache *cache, int64_t timeout_ms,
                               tk_scopes_changed_cb on_scopes, tk_scopes_changed_cb on_keys,
                               void *arg)
{
	tk_listener *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->url = strdup(url);
	if (!l->url) {
		free(l);
		return NULL;
	}
	l->cache = cache;
	l->timeout_ms = timeout_ms;
	l->on_scopes = on_scopes;
	l->on_keys = on_keys;
	l->arg = arg;
	if (pipe2(l->wake, O_CLOEXEC | O_NONBLOCK) != 0)
		l->wake[0] = l->wake[1] = -1;
	/* Until LISTEN is active, nothing may be served from the cache. */
	tk_keycache_set_bypass(cache, 1);
	int rc = pthread_create(&l->thread, NULL, listener_main, l);
	if (rc != 0) {
		tk_log(TK_LOG_ERROR, "listener.thread_failed", "detail", strerror(rc), NULL);
		close_wake(l);
		free(l->url);
		free(l);
		return NULL;   /* the cache stays bypassed: correctness over speed */
	}
	tk_thread_name(l->thread, "tokend-listen", -1);
	return l;
}

void tk_listener_stop(tk_listener *l)
{
	if (!l)
		return;
	atomic_store(&l->stopping, 1);
	if (l->wake[1] >= 0) {
		char b = 1;
		ssize_t n = write(l->wake[1], &b, 1);   /* full pipe: a wake-up is already there */
		(void)n;
	}
	pthread_join(l->thread, NULL);
	close_wake(l);
	free(l->url);
	free(l);
}

void tk_listener_watch_signing_keys(tk_listener *l, const tk_listener_hook *hook)
{
	if (l)
		atomic_store(&l->on_signing_keys, hook);
}

int tk_listener_up(tk_listener *l)
{
	return atomic_load(&l->up);
}
