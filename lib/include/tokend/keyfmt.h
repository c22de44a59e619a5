/*
 * keyfmt.h - the format of API key IDs and secrets.
 *
 * A key ID is public (the OAuth client_id); a secret is shown once. Both are
 * a fixed prefix, a random body of base62 characters drawn from the CSPRNG,
 * and a 6-character base62 CRC32 checksum of everything before it:
 *
 *   key ID:  "tk_"  + 22 random base62 chars (~131 bits) + 6 checksum chars  = 31 chars
 *   secret:  "tks_" + 43 random base62 chars (~256 bits) + 6 checksum chars  = 53 chars
 *
 * The checksum lets secret scanners recognise a leaked secret and lets the
 * server reject a mistyped value before any hashing or database work.
 * Checking functions never read past `len` and need no NUL terminator.
 *
 * Prefixes are the operator's (tokend.conf: key_id_prefix_live,
 * key_id_prefix_test, secret_prefix; "tk_" and "tks_" by default): 2 to
 * TK_PREFIX_MAX characters [a-z0-9_], starting with a letter and ending with
 * '_' (tk_prefix_valid). The body never holds '_', so the prefix of a value is
 * everything before its last 28 (ID) or 49 (secret) characters, and the
 * checkers accept any valid prefix: the checksum covers it, so a key made
 * under an earlier prefix keeps working after the prefix changes, and a typo
 * in the prefix is still caught.
 */
#ifndef TOKEND_KEYFMT_H
#define TOKEND_KEYFMT_H

#include "tokend/export.h"

#include <stddef.h>
#include <stdint.h>

#define TK_KEY_ID_PREFIX   "tk_"
#define TK_SECRET_PREFIX   "tks_"
#define TK_KEY_ID_RANDOM   22
#define TK_SECRET_RANDOM   43
#define TK_CHECKSUM_LEN    6
#define TK_KEY_ID_LEN      (3 + TK_KEY_ID_RANDOM + TK_CHECKSUM_LEN)   /* 31 */
#define TK_SECRET_LEN      (4 + TK_SECRET_RANDOM + TK_CHECKSUM_LEN)   /* 53 */
#define TK_HINT_LEN        4
#define TK_PREFIX_MAX      16
/* The longest key ID and secret any prefix makes (buffers: + 1 for the NUL). */
#define TK_KEY_ID_MAX      (TK_PREFIX_MAX + TK_KEY_ID_RANDOM + TK_CHECKSUM_LEN)   /* 44 */
#define TK_SECRET_MAX      (TK_PREFIX_MAX + TK_SECRET_RANDOM + TK_CHECKSUM_LEN)   /* 65 */
/* A secret rotation keeps the previous secret working at most this long
 * (seconds: 30 days; the database enforces it, sql/008_secret_rotation.sql). */
#define TK_ROTATE_OVERLAP_MAX 2592000

/* Result of generating or checking a key ID or secret. */
typedef enum tk_keyfmt_status {
	TK_KEYFMT_OK = 0,    /* well formed, checksum matches */
	TK_KEYFMT_LENGTH,    /* wrong length */
	TK_KEYFMT_PREFIX,    /* wrong prefix */
	TK_KEYFMT_CHARSET,   /* a character outside [0-9A-Za-z] in body or checksum */
	TK_KEYFMT_CHECKSUM,  /* checksum does not match: a typo or a forgery */
	TK_KEYFMT_RANDOM,    /* the CSPRNG failed: nothing was generated */
} tk_keyfmt_status;

/* Generate a new key ID / secret with the default prefix into `out`
 * (NUL-terminated). On failure `out` is wiped to an empty string. */
TK_API tk_keyfmt_status tk_key_id_generate(char out[TK_KEY_ID_LEN + 1]);
TK_API tk_keyfmt_status tk_secret_generate(char out[TK_SECRET_LEN + 1]);

/* The same with `prefix` (NULL: the default); TK_KEYFMT_PREFIX (out "") when
 * it is not a valid prefix. */
TK_API tk_keyfmt_status tk_key_id_generate_prefixed(const char *prefix, char out[TK_KEY_ID_MAX + 1]);
TK_API tk_keyfmt_status tk_secret_generate_prefixed(const char *prefix, char out[TK_SECRET_MAX + 1]);

/* 1 if `p` is a valid prefix (see above), else 0 (NULL: 0). */
TK_API int tk_prefix_valid(const char *p);

/* Check the format of a candidate key ID / secret of `len` bytes, whatever
 * its (valid) prefix. */
TK_API tk_keyfmt_status tk_key_id_check(const char *s, size_t len);
TK_API tk_keyfmt_status tk_secret_check(const char *s, size_t len);

/* The masked-display hint: the last TK_HINT_LEN characters of a well-formed
 * secret of any prefix (they lie in the checksum, which reveals nothing of the
 * random body); "" for anything else. */
TK_API void tk_secret_hint(const char *secret, char out[TK_HINT_LEN + 1]);

/* A static, human-readable reason for a status. */
TK_API const char *tk_keyfmt_strerror(tk_keyfmt_status st);

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32()). */
TK_API uint32_t tk_crc32(const void *data, size_t len);

#endif
