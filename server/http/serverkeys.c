/*
 * serverkeys.c - the server's signing keys (a refcounted tk_keyset: signer,
 * JWKS, ETag, own-token verifiers): loaded at start, replaced on SIGHUP;
 * each worker moves to the newest set at its next request (or its 100 ms
 * timer) and keeps a minter of its own for it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "server.h"

int tk_server_keys_load(tk_server *srv, char *err, size_t errlen)
{
	tk_keyset *ks = tk_keyset_load(srv->cfg, err, errlen);
	if (!ks)
		return -1;
	tk_server_keys_start(srv, ks);
	return 0;
}

void tk_server_keys_start(tk_server *srv, tk_keyset *ks)
{
	pthread_mutex_init(&srv->keys_mu, NULL);
	srv->keys = ks;
	atomic_store(&srv->keys_gen, 1);
	snprintf(srv->jwks_cache_control, sizeof(srv->jwks_cache_control), "public, max-age=%lld",
	         (long long)srv->cfg->jwks_max_age);
	pthread_mutex_init(&srv->meta_mu, NULL);
	atomic_store(&srv->meta_stale, 1);
	pthread_mutex_init(&srv->sl_mu, NULL);
	atomic_store(&srv->sl_stale, 1);
}

void tk_server_keys_free(tk_server *srv)
{
	free(srv->meta_body);
	srv->meta_body = NULL;
	tk_keyset_release(srv->keys);
	srv->keys = NULL;
	pthread_mutex_destroy(&srv->keys_mu);
	pthread_mutex_destroy(&srv->meta_mu);
	free(srv->sl_body);
	srv->sl_body = NULL;
	free(srv->status_uri);
	srv->status_uri = NULL;
	pthread_mutex_destroy(&srv->sl_mu);
}

void tk_server_set_keys(tk_server *srv, tk_keyset *ks)
{
	pthread_mutex_lock(&srv->keys_mu);
	tk_keyset *old = srv->keys;
	srv->keys = ks;
	atomic_fetch_add(&srv->keys_gen, 1);
	pthread_mutex_unlock(&srv->keys_mu);
	tk_keyset_release(old);
	atomic_store(&srv->meta_stale, 1);     /* the metadata lists the signing algorithms */
	atomic_store(&srv->sl_stale, 1);       /* the status list is signed by the active key */
}

void tk_worker_keys_refresh(tk_worker *w)
{
	tk_server *srv = w->srv;
	uint64_t gen = atomic_load_explicit(&srv->keys_gen, memory_order_acquire);
	if (gen == w->keys_gen)
		return;
	pthread_mutex_lock(&srv->keys_mu);
	tk_keyset *ks = tk_keyset_ref(srv->keys);
	gen = atomic_load(&srv->keys_gen);
	pthread_mutex_unlock(&srv->keys_mu);
	char err[256];
	tk_minter *m = tk_minter_new(ks->signer, err, sizeof(err));
	if (!m) {
		tk_log(TK_LOG_ERROR, "server.keys_refresh_failed", "detail", err, NULL);
		tk_keyset_release(ks);
		w->keys_gen = gen;   /* keep signing with the set we have; do not retry per request */
		return;
	}
	tk_minter_free(w->minter);            /* before its signer can go */
	tk_keyset_release(w->keys);
	w->minter = m;
	w->keys = ks;
	w->keys_gen = gen;
}
