/*
 * peppercheck.h - the pepper's check value in the database (sql/009).
 *
 * A valid but different pepper would start, say ready, and refuse every client
 * (401 invalid_client). The database keeps HMAC-SHA256(pepper, TK_PEPPER_LABEL)
 * (never the pepper); tokend compares its own pepper's value with it at start.
 */
#ifndef TOKEND_PEPPERCHECK_H
#define TOKEND_PEPPERCHECK_H

#include <stddef.h>
#include <libpq-fe.h>

#include <tokend/crypto.h>

#define TK_PEPPER_LABEL "tokend pepper check v1"

typedef enum {
	TK_PEPPER_MATCH = 0,      /* the stored value is this pepper's */
	TK_PEPPER_WRITTEN = 1,    /* none was stored: this pepper's is now */
	TK_PEPPER_MISMATCH = 2,   /* another pepper's value is stored */
	TK_PEPPER_ERROR = -1      /* the check could not run (err says why) */
} tk_pepper_result;

/*
 * The check value of a pepper: HMAC-SHA256(pepper, TK_PEPPER_LABEL). 0, or -1
 * (out zeroed) when the pepper is refused by tk_hasher_new or OpenSSL fails.
 */
int tk_pepper_check_value(const unsigned char *pepper, size_t len, unsigned char out[TK_HASH_LEN]);

/*
 * Compare `value` (from tk_pepper_check_value) with the one stored through
 * `c`; store it when none is (the first start on a database). Never writes
 * over a stored value. On TK_PEPPER_MISMATCH and TK_PEPPER_ERROR, err holds a
 * one-line reason without any secret. A schema without the table (older than
 * version 9) is an error naming `tokend migrate`.
 */
tk_pepper_result tk_pepper_check(PGconn *c, const unsigned char value[TK_HASH_LEN], char *err, size_t errlen);

#endif
