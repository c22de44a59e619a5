/*
 * listener.h - the LISTEN/NOTIFY thread that keeps the key cache honest.
 *
 * One connection LISTENs on tokend_keys (payload: a key ID), tokend_accounts
 * (payload: an account ID), tokend_scopes and tokend_signing_keys. Each notification invalidates
 * what it names. While the connection is down the cache is bypassed; on every
 * (re)connection the cache is flushed before it is used again. A liveness
 * query every 2 s detects a silent loss.
 */
#ifndef TOKEND_LISTENER_H
#define TOKEND_LISTENER_H

#include <stdint.h>

#include "keycache.h"

typedef struct tk_listener tk_listener;

/* Called on the listener thread when the scope catalogue may have changed
 * (at connection and on tokend_scopes). */
typedef void (*tk_scopes_changed_cb)(void *arg);

/* on_keys (may be NULL): called on the listener thread when any key may have
 * changed (at connection and on every tokend_keys and tokend_accounts
 * notification). */
tk_listener *tk_listener_start(const char *url, tk_keycache *cache, int64_t timeout_ms,
                               tk_scopes_changed_cb on_scopes, tk_scopes_changed_cb on_keys,
                               void *arg);
void tk_listener_stop(tk_listener *l);

/* Also call hook->cb(hook->arg) on the listener thread on NOTIFY
 * tokend_signing_keys and at every (re)connection (one may have been missed).
 * `hook` must outlive the listener; NULL stops it. */
typedef struct tk_listener_hook {
	void (*cb)(void *arg);
	void *arg;
} tk_listener_hook;
void tk_listener_watch_signing_keys(tk_listener *l, const tk_listener_hook *hook);
/* 1 while LISTEN is active. */
int tk_listener_up(tk_listener *l);

#endif
