/*
 * cli_key_print.h - the output of `tokend key ...`, human and --json, shared
 * by both backends: printed once, after the backend answers.
 *
 * A key object is the admin API's (tokend_key_json: client_id, account, name,
 * hint, masked, scopes, ...); nothing is taken over unless said.
 */
#ifndef TOKEND_CLI_KEY_PRINT_H
#define TOKEND_CLI_KEY_PRINT_H

#include <jansson.h>

/* A new object with the key fields in the order --json prints them (missing
 * ones null), or NULL if `k` is not a key object (no string client_id). */
json_t *cli_key_normalise(json_t *k);

/* A new key with its secret, shown once (JSON: the key object plus client_secret). */
void cli_key_print_created(json_t *k, const char *secret);
/* A key after rotate-secret with its new secret, shown once, and when the
 * previous secret stops (JSON: the key object plus client_secret). */
void cli_key_print_rotated(json_t *k, const char *secret);
/* A key after a change: "<verb> key ID." then the key; verb NULL for `show`. */
void cli_key_print_changed(json_t *k, const char *verb);
/* `key list`: a JSON array of key objects. */
void cli_key_print_list(json_t *keys);
void cli_key_print_deleted(const char *id);

#endif
