/*
 * cli_verify.c - `tokend verify`: check an access token offline against a
 * JWKS (a file, or fetched once over http/https) with the library's verifier
 * (lib/include/tokend/verify.h), and print its claims. With
 * --status-list-url, also against the Token Status List fetched from there
 * (lib/include/tokend/statuslist.h): a token whose key is listed is invalid.
 *
 * Exit status: 0 valid (claims on stdout as JSON); 1 invalid token or JWKS
 * not obtainable (one line on stderr: "tokend: invalid token: <reason>");
 * 2 usage error. The token itself is never printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <tokend/crypto.h>
#include <tokend/scope.h>
#include <tokend/statuslist.h>
#include <tokend/verify.h>

#include "cli.h"
#include "httpclient.h"

#define JWKS_FETCH_MAX      (64 * 1024)   /* response body cap */
#define JWKS_FETCH_TIMEOUT  5             /* seconds, whole exchange */
#define TOKEN_READ_MAX      (64 * 1024)   /* stdin; longer than 8 KiB is refused anyway */

static const char verify_usage[] =
	"usage: tokend verify (--jwks-url URL | --jwks FILE) --issuer ISSUER\n"
	"                     [--audience AUDIENCE] [--scope SCOPE]... [--leeway SECONDS]\n"
	"                     [--status-list-url URL] TOKEN\n"
	"\n"
	"Verify an access token offline, as a resource server would, and print its claims\n"
	"as JSON. TOKEN may be '-' to read it from standard input (keeps it out of the\n"
	"process list).\n"
	"\n"
	"Options:\n"
	"  --jwks-url URL      fetch the JWK Set from URL (http or https; 5 s, 64 KiB at most;\n"
	"                      https verifies the server certificate against the system CAs,\n"
	"                      or $SSL_CERT_FILE)\n"
	"  --jwks FILE         read the JWK Set from FILE\n"
	"  --issuer ISSUER     the token's \"iss\" must be exactly ISSUER (required)\n"
	"  --audience AUD      the token's \"aud\" must contain AUD\n"
	"  --scope SCOPE       the token must hold SCOPE (repeatable; or several, space-separated)\n"
	"  --leeway SECONDS    clock leeway for exp, nbf and iat, 0..60 (default 30)\n"
	"  --status-list-url URL  also check the token against the Token Status List at URL\n"
	"                      (tokend's <issuer>/oauth2/status-list; signed by a key of the\n"
	"                      JWK Set): a token of a disabled, revoked, deleted or expired\n"
	"                      key is invalid; without it a token's \"status\" is not checked\n"
	"\n"
	"The token must be signed (ES256, EdDSA or RS256) by a key of the JWK Set named by\n"
	"its kid, have typ at+jwt, and carry exp, iat, jti, iss, sub and client_id.\n"
	"Exit status: 0 valid, 1 invalid (the reason on stderr), 2 usage error.\n";

/* ------------------------------------------------------------------------ */
/* Input                                                                    */

/* Read at most `max` bytes from fd into a malloc'd, NUL-terminated buffer.
 * Returns NULL with errno set on error; *too_big when there was more. */
static char *read_fd(int fd, size_t max, size_t *len, int *too_big)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);

	*too_big = 0;
	if (buf == NULL)
		return NULL;
	for (;;) {
		if (n == cap) {
			if (cap > max) {
				*too_big = 1;
				break;
			}
			cap *= 2;
			char *nb = realloc(buf, cap + 1);
			if (nb == NULL) {
				free(buf);
				return NULL;
			}
			buf = nb;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			free(buf);
			errno = e;
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > max)
		*too_big = 1;
	buf[n] = '\0';
	*len = n;
	return buf;
}

static char *read_file(const char *path, size_t max, size_t *len)
{
	int too_big = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf;

	if (fd < 0)
		cli_fail(CLI_REFUSED, "cannot open JWKS file %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		cli_fail(CLI_REFUSED, "JWKS file %s is not a regular file", path);
	}
	buf = read_fd(fd, max, len, &too_big);
	int e = errno;
	close(fd);
	if (buf == NULL)
		cli_fail(CLI_REFUSED, "cannot read JWKS file %s: %s", path, strerror(e));
	if (too_big) {
		free(buf);
		cli_fail(CLI_REFUSED, "JWKS file %s is larger than %zu bytes", path, max);
	}
	return buf;
}

/* ------------------------------------------------------------------------ */
/* JWKS over http(s) (httpclient.c)                                         */

/* Fetch `url` (the `what` of option `opt`) into a malloc'd body; exits 1 (or
 * 2 for a bad URL) on failure. */
static char *fetch_doc(const char *url, const char *opt, const char *what, const char *accept,
                       size_t max, size_t *len)
{
	tk_httpc_url info;
	const char *why;
	if (tk_httpc_url_check(url, &info, &why) != 0)
		cli_fail(CLI_USAGE, "%s: %s", opt, why);
	if (!info.https && !info.loopback)
		fprintf(stderr, "tokend: warning: fetching the %s over plain http; use https\n", what);

	const char *const headers[] = { "Accept", accept, NULL };
	tk_httpc_request rq = {
		.method = "GET", .url = url, .headers = headers, .timeout = JWKS_FETCH_TIMEOUT,
		.max_body = max, .user_agent = "tokend-verify",
	};
	tk_httpc_response resp;
	if (tk_httpc_send(&rq, &resp) != 0) {
		char msg[sizeof(resp.error)];
		snprintf(msg, sizeof(msg), "%s", resp.error);
		tk_httpc_response_free(&resp);
		cli_fail(CLI_REFUSED, "cannot fetch the %s: %s", what, msg);
	}
	if (resp.status != 200) {
		int status = resp.status;
		tk_httpc_response_free(&resp);
		cli_fail(CLI_REFUSED, "cannot fetch the %s: HTTP status %d", what, status);
	}
	char *body = resp.body;
	*len = resp.len;
	resp.body = NULL;          /* ours now */
	resp.len = 0;
	tk_httpc_response_free(&resp);
	return body;
}

static char *fetch_jwks(const char *url, size_t *len)
{
	return fetch_doc(url, "--jwks-url", "JWKS", "application/jwk-set+json, application/json",
	                 JWKS_FETCH_MAX, len);
}

/* Judge verified `claims` against the status list at `url` (verified with
 * `v`). TK_VERIFY_OK, or the refusal with err set; exits 1 when the list
 * cannot be fetched or is refused (fail closed). */
static int check_status(const tk_verifier *v, const char *url, const tk_claims *claims, char *err,
                        size_t errlen)
{
	char why[512];
	tk_status_cache *c = tk_status_cache_new(url, TK_STATUS_REFRESH_FLOOR, TK_STATUS_REFRESH_CEIL,
	                                         why, sizeof(why));
	if (c == NULL)
		cli_fail(CLI_USAGE, "--status-list-url: %s", why);
	size_t len = 0;
	char *body = fetch_doc(url, "--status-list-url", "status list", TK_STATUS_MEDIA_TYPE,
	                       TK_STATUS_TOKEN_MAX, &len);
	int64_t now = (int64_t)time(NULL);
	int rc = tk_status_cache_install(c, v, body, len, now, why, sizeof(why));
	free(body);
	if (rc != TK_VERIFY_OK) {
		tk_status_cache_free(c);
		cli_fail(CLI_REFUSED, "cannot use the status list: %s", why);
	}
	rc = tk_status_check(c, claims, now, err, errlen);
	tk_status_cache_free(c);
	return rc;
}

/* ------------------------------------------------------------------------ */

static char *read_token(const char *arg, size_t *len)
{
	char *tok;
	int too_big = 0;

	if (strcmp(arg, "-") != 0) {
		*len = strlen(arg);
		tok = malloc(*len + 1);
		if (tok == NULL)
			cli_fail(CLI_REFUSED, "out of memory");
		memcpy(tok, arg, *len + 1);
		return tok;
	}
	tok = read_fd(STDIN_FILENO, TOKEN_READ_MAX, len, &too_big);
	if (tok == NULL)
		cli_fail(CLI_REFUSED, "cannot read the token from stdin: %s", strerror(errno));
	if (too_big) {
		free(tok);
		cli_fail(CLI_REFUSED, "invalid token: %s", tk_verify_strerror(TK_VERIFY_TOO_LONG));
	}
	/* Ignore the line end of `echo "$TOKEN" |` and surrounding blanks. */
	while (*len > 0 && (tok[*len - 1] == '\n' || tok[*len - 1] == '\r' ||
	                    tok[*len - 1] == ' ' || tok[*len - 1] == '\t'))
		tok[--(*len)] = '\0';
	return tok;
}

int cli_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "jwks-url", required_argument, NULL, 'u' },
		{ "jwks", required_argument, NULL, 'f' },
		{ "issuer", required_argument, NULL, 'i' },
		{ "audience", required_argument, NULL, 'a' },
		{ "scope", required_argument, NULL, 's' },
		{ "leeway", required_argument, NULL, 'l' },
		{ "status-list-url", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *url = NULL, *file = NULL, *issuer = NULL, *audience = NULL, *sl_url = NULL;
	char scopes[TK_SCOPE_STRING_MAX + 1] = "";
	long leeway = TK_VERIFY_LEEWAY_DEFAULT;
	char err[512];
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'u':
			url = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'i':
			issuer = optarg;
			break;
		case 'S':
			sl_url = optarg;
			break;
		case 'a':
			audience = optarg;
			break;
		case 's': {
			size_t have = strlen(scopes), add = strlen(optarg);
			if (add == 0 || have + add + 1 > TK_SCOPE_STRING_MAX)
				cli_fail(CLI_USAGE, "--scope: empty, or too many scopes");
			snprintf(scopes + have, sizeof(scopes) - have, "%s%s", have ? " " : "", optarg);
			break;
		}
		case 'l': {
			char *end = NULL;
			errno = 0;
			leeway = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end != '\0' || leeway < 0 ||
			    leeway > TK_VERIFY_LEEWAY_MAX)
				cli_fail(CLI_USAGE, "--leeway: expected seconds, 0..%d", TK_VERIFY_LEEWAY_MAX);
			break;
		}
		case 'h':
			fputs(verify_usage, stdout);
			return CLI_OK;
		default:
			cli_fail(CLI_USAGE, "verify: see tokend verify --help");
		}
	}
	if ((url == NULL) == (file == NULL))
		cli_fail(CLI_USAGE, "verify: give exactly one of --jwks-url URL and --jwks FILE");
	if (issuer == NULL)
		cli_fail(CLI_USAGE, "verify: --issuer is required");
	if (argc - optind != 1)
		cli_fail(CLI_USAGE, "verify: expected exactly one TOKEN (or '-' for stdin)");

	tk_verifier *v = tk_verifier_new();
	if (v == NULL)
		cli_fail(CLI_REFUSED, "out of memory");
	if (tk_verifier_set_issuer(v, issuer, err, sizeof(err)) != 0 ||
	    tk_verifier_set_audience(v, audience, err, sizeof(err)) != 0 ||
	    tk_verifier_set_scopes(v, scopes, err, sizeof(err)) != 0 ||
	    tk_verifier_set_leeway(v, leeway, err, sizeof(err)) != 0) {
		tk_verifier_free(v);
		cli_fail(CLI_USAGE, "verify: %s", err);
	}

	size_t tlen = 0, jlen = 0;
	char *token = read_token(argv[optind], &tlen);
	char *jwks = url ? fetch_jwks(url, &jlen) : read_file(file, TK_VERIFY_JWKS_MAX, &jlen);
	if (tk_verifier_load_jwks(v, jwks, jlen, err, sizeof(err)) != 0) {
		free(jwks);
		tk_wipe(token, tlen);
		free(token);
		tk_verifier_free(v);
		cli_fail(CLI_REFUSED, "%s", err);
	}
	free(jwks);

	tk_claims claims;
	int rc = tk_verify(v, token, tlen, &claims, err, sizeof(err));
	tk_wipe(token, tlen);
	free(token);
	if (rc == TK_VERIFY_OK && sl_url != NULL) {
		rc = check_status(v, sl_url, &claims, err, sizeof(err));
		if (rc != TK_VERIFY_OK)
			tk_claims_release(&claims);
	} else if (rc == TK_VERIFY_OK && json_object_get(claims.json, "status") != NULL) {
		fprintf(stderr, "tokend: note: the token's status list was not checked "
		        "(give --status-list-url)\n");
	}
	tk_verifier_free(v);
	if (rc != TK_VERIFY_OK)
		cli_fail(CLI_REFUSED, "invalid token: %s", err[0] ? err : tk_verify_strerror(rc));
	json_t *out = json_incref(claims.json);
	tk_claims_release(&claims);
	json_dumpf(out, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	fputc('\n', stdout);
	json_decref(out);
	return CLI_OK;
}
