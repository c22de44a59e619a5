/*
 * signkeys.h - signing keys held in PostgreSQL (signing_key_source =
 * database; sql/011_signing_keys.sql): reading the rows, decrypting them into
 * a key set, choosing the key that signs, generating and encrypting new keys,
 * and the rotation steps.
 *
 * Encryption: AES-256-GCM under the key-encryption key (KEK, 32 bytes, from
 * the configuration, never in the database), a random 96-bit nonce per
 * encryption, associated data "kid\0alg" (a ciphertext moved to another row
 * fails to open); the decrypted key must also have the row's kid as its RFC
 * 7638 thumbprint. A row names its KEK by kek_id (tk_signkeys_kek_id).
 *
 * The key that signs (tk_signkeys_choose) is decided here, in code, whatever
 * the rows say: never a key published for less than jwks_max_age (the
 * initial key of an empty table excepted).
 *
 * Blocking libpq: serve's main thread and the CLI only, never an event loop.
 * Times are milliseconds since the epoch; 0 stands for SQL NULL.
 */
#ifndef TOKEND_SIGNKEYS_H
#define TOKEND_SIGNKEYS_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <tokend/crypto.h>
#include <tokend/signer.h>

#include "config.h"
#include "keyset.h"

#define TK_KEK_ID_LEN 22

/* One unretired row. */
typedef struct tk_signkey_row {
	char kid[TK_THUMBPRINT_LEN + 1];
	char alg[8];
	char kek_id[TK_KEK_ID_LEN + 1];
	unsigned char *ct;                 /* ciphertext (ctlen bytes), malloc'd */
	size_t ctlen;
	unsigned char nonce[TK_AEAD_NONCE_LEN];
	unsigned char tag[TK_AEAD_TAG_LEN];
	int initial;                       /* the first key of an empty table: signs at once */
	int64_t publish_at, sign_from, signing_until, retire_after;
} tk_signkey_row;

typedef struct tk_signkey_rows {
	tk_signkey_row *row;
	size_t n;
	unsigned char digest[32];          /* of every field: tells a change */
} tk_signkey_rows;

/* The KEK's identifier: base64url of the first 16 bytes of
 * HMAC-SHA256(kek, "tokend signing key KEK id v1"). */
void tk_signkeys_kek_id(const unsigned char kek[TK_KEK_LEN], char out[TK_KEK_ID_LEN + 1]);

/* Read every unretired row. 0, or -1 with err (rows empty). */
int tk_signkeys_fetch(PGconn *c, tk_signkey_rows *rows, char *err, size_t errlen);
void tk_signkeys_rows_free(tk_signkey_rows *rows);

/* Whether row `r` is in the JWKS at `now`, and whether it may sign then
 * (published, inside [sign_from, signing_until), and published for at least
 * `max_age_ms` unless initial). */
int tk_signkeys_published(const tk_signkey_row *r, int64_t now);
int tk_signkeys_may_sign(const tk_signkey_row *r, int64_t now, int64_t max_age_ms);

/* The index of the key that signs at `now` (the latest sign_from among those
 * that may sign), or -1 for none. *next (may be NULL): the next time after
 * `now` at which the published set or this choice can change (INT64_MAX:
 * never). */
int tk_signkeys_choose(const tk_signkey_rows *rows, int64_t now, int64_t max_age_ms, int64_t *next);

/* A key set of the rows published at `now`, decrypted under `kek`, signing
 * with tk_signkeys_choose's key (or none). NULL with err (a wrong KEK, an
 * altered row, no key to publish). */
tk_keyset *tk_signkeys_keyset(const tk_config *cfg, const unsigned char kek[TK_KEK_LEN],
                              const tk_signkey_rows *rows, int64_t now, char *err, size_t errlen);

/*
 * Generate a key of `alg` and add it (tokend_signing_key_add): the initial key
 * of an empty table, else the next key, published now, signing after
 * jwks_max_age + signing_key_margin (and, when `scheduled`, not before the
 * current key's sign_from + signing_key_rotation). The caller holds any
 * transaction. On success 0 and the new key's JSON (tokend_signing_key_json)
 * in *json_out (malloc'd, may be NULL); -1 with err.
 */
int tk_signkeys_generate(PGconn *c, const tk_config *cfg, const unsigned char kek[TK_KEK_LEN],
                         const char *alg, int scheduled, char **json_out, char *err, size_t errlen);

/* The advisory lock every rotation step and rewrap takes (xact-scoped). */
#define TK_SIGNKEYS_LOCK "7415926535897932"

/* When the next rotation step is due after `now` given `rows` (INT64_MAX: none). */
int64_t tk_signkeys_next_step(const tk_config *cfg, const tk_signkey_rows *rows, int64_t now);

/*
 * One pass of the rotation steps, in one transaction under the advisory lock
 * (pg_try_advisory_xact_lock: another instance holding it means it is doing
 * the step): retire the keys whose last token has expired; with
 * signing_key_rotation set, generate the next key when the current one's
 * rotation time is within jwks_max_age + margin. `empty_ok`: also generate
 * the initial key of an empty table (start), waiting for the lock.
 * `delay_ms` > 0 (tests only) sleeps inside the lock after a change.
 * Returns 1 when it changed something (what in `did`), 0 when nothing was due
 * or the lock was taken, -1 with err (rolled back).
 */
int tk_signkeys_rotate(PGconn *c, const tk_config *cfg, const unsigned char kek[TK_KEK_LEN],
                       int empty_ok, int64_t delay_ms, char *did, size_t didlen,
                       char *err, size_t errlen);

/* Re-encrypt every unretired key from `kek` to `new_kek`, in one transaction
 * under the rotation lock; each key is decrypted, checked to be the key its
 * kid names and encrypted with a fresh nonce. How many, or -1 with err
 * (nothing changed). */
int tk_signkeys_rewrap(PGconn *c, const unsigned char kek[TK_KEK_LEN],
                       const unsigned char new_kek[TK_KEK_LEN], char *err, size_t errlen);

/* Milliseconds since the epoch (CLOCK_REALTIME). */
int64_t tk_signkeys_now(void);

#endif
