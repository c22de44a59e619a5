/*
 * cli_remote.h - the remote mode of the command line: one session with a
 * running tokend's admin REST API (--url URL or $TOKEND_URL), shared by every
 * command that has a remote mode (`key ...` in cli_key_remote.c, `account
 * list|show`, `scope list`; the role and member commands of the admin API
 * plug in the same way: parse, cli_remote_call, print).
 *
 * The credentials are an API key of tokend, from the environment only
 * ($TOKEND_CLIENT_ID, $TOKEND_CLIENT_SECRET; never options, so they stay out
 * of the process list and shell history). One run: POST URL/oauth2/token
 * (client_credentials, HTTP Basic with RFC 6749 section 2.3.1 form-encoding)
 * for an access token, then the admin API with Authorization: Bearer.
 * Neither the secret nor the token is ever printed; both are wiped at exit.
 */
#ifndef TOKEND_CLI_REMOTE_H
#define TOKEND_CLI_REMOTE_H

#include <jansson.h>

/* 1 if the command runs remotely: --url (or --url=...) before any "--" in
 * argv[1..argc), or a non-empty $TOKEND_URL. */
int cli_wants_remote(int argc, char **argv);

/*
 * Take --url URL / --url=URL and --token-url URL / --token-url=URL out of
 * argv (argc shrinks; the others keep their order) into *url and *token_url
 * (left unchanged when absent). Exits 2 on an option without its value.
 */
void cli_remote_take_options(int *argc, char **argv, const char **url, const char **token_url);

/* Check the URLs (url NULL: $TOKEND_URL; token_url NULL: $TOKEND_TOKEN_URL,
 * else URL/oauth2/token) and get the access token. Exits on failure: 2 for a
 * usage error (no or bad URL, missing credentials), 1 otherwise. */
void cli_remote_open(const char *url, const char *token_url);

/* Wipe the token (also done at exit). */
void cli_remote_close(void);

/* The token holds tokend:operator. */
int cli_remote_operator(void);

/* The server's base URL (no trailing slash). */
const char *cli_remote_base(void);

typedef struct cli_api_result {
	int status;
	json_t *json;          /* the parsed body, a JSON object (the caller releases it) */
	char why[400];         /* for a refusal: the API's description, one printable line */
} cli_api_result;

/*
 * One admin API call. `path` starts after /admin/v1/. A request that is safe
 * to repeat is retried once after a dropped connection or a 502/503/504.
 * Exits 1 when no response came or it was no JSON object; otherwise returns
 * the status and body.
 */
cli_api_result cli_remote_call(const char *method, const char *path, json_t *body, const char *idem, int retry_safe);

/*
 * For an answer of status >= 300: exits 1 for what is no refusal of the
 * request (no admin API at that URL, a server failure); returns otherwise
 * (the caller reports the refusal: r->why, and the API's "error" in r->json).
 */
void cli_remote_check_refusal(const cli_api_result *r);

/* A path segment or query value, percent-encoded (malloc'd; exits 1 on OOM). */
char *cli_remote_enc(const char *s);

#endif
