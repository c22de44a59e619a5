/*
 * cli_verify.c - `tokend verify`: check an access token offline against a
 * JWKS (a file, or fetched once over http/https) with the library's verifier
 * (lib/include/tokend/verify.h), and print its claims.
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
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <tokend/crypto.h>
#include <tokend/scope.h>
#include <tokend/verify.h>

#include "cli.h"

#define JWKS_FETCH_MAX      (64 * 1024)   /* response body cap */
#define JWKS_FETCH_TIMEOUT  5             /* seconds, whole exchange */
#define TOKEN_READ_MAX      (64 * 1024)   /* stdin; longer than 8 KiB is refused anyway */

static const char verify_usage[] =
	"usage: tokend verify (--jwks-url URL | --jwks FILE) --issuer ISSUER\n"
	"                     [--audience AUDIENCE] [--scope SCOPE]... [--leeway SECONDS] TOKEN\n"
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
/* JWKS over http(s) with libevent's client                                 */

struct fetch {
	struct event_base *base;
	char *body;
	size_t len;
	int status;                 /* HTTP status, 0 when none */
	const char *failure;        /* static reason, NULL when fine */
};

static void fetch_error_cb(enum evhttp_request_error e, void *arg)
{
	struct fetch *f = arg;
	switch (e) {
	case EVREQ_HTTP_TIMEOUT:
		f->failure = "timed out";
		break;
	case EVREQ_HTTP_DATA_TOO_LONG:
		f->failure = "response larger than 64 KiB";
		break;
	case EVREQ_HTTP_INVALID_HEADER:
		f->failure = "invalid response header";
		break;
	case EVREQ_HTTP_EOF:
		f->failure = "connection closed early";
		break;
	default:
		f->failure = "connection failed";
		break;
	}
}

static void fetch_done_cb(struct evhttp_request *req, void *arg)
{
	struct fetch *f = arg;

	if (req == NULL || evhttp_request_get_response_code(req) == 0) {
		if (f->failure == NULL)
			f->failure = "connection failed";
	} else {
		struct evbuffer *in = evhttp_request_get_input_buffer(req);
		size_t n = evbuffer_get_length(in);
		f->status = evhttp_request_get_response_code(req);
		if (n > JWKS_FETCH_MAX) {
			f->failure = "response larger than 64 KiB";
		} else if (f->status == 200) {
			f->body = malloc(n + 1);
			if (f->body == NULL) {
				f->failure = "out of memory";
			} else {
				evbuffer_remove(in, f->body, n);
				f->body[n] = '\0';
				f->len = n;
			}
		}
	}
	event_base_loopbreak(f->base);
}

static void fetch_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fetch *f = arg;
	(void)fd;
	(void)what;
	if (f->failure == NULL)
		f->failure = "timed out";
	event_base_loopbreak(f->base);
}

static int is_loopback(const char *host)
{
	return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
	       strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0;
}

/* A TLS client: system CAs, TLS 1.2+, the certificate must match `host`. */
static SSL *tls_for(SSL_CTX **ctx_out, const char *host)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = NULL;

	*ctx_out = ctx;
	if (ctx == NULL || SSL_CTX_set_default_verify_paths(ctx) != 1 ||
	    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
		return NULL;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ssl = SSL_new(ctx);
	if (ssl == NULL)
		return NULL;
	X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
	/* An IP literal is matched against IP SANs, a name against DNS names. */
	if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1) {
		ERR_clear_error();
		char name[256];              /* SSL_set_tlsext_host_name takes a non-const */
		snprintf(name, sizeof(name), "%s", host);
		if (strlen(host) >= sizeof(name) || SSL_set_tlsext_host_name(ssl, name) != 1 ||
		    SSL_set1_host(ssl, host) != 1) {
			SSL_free(ssl);
			return NULL;
		}
	}
	return ssl;
}

/* Fetch `url` into a malloc'd body; exits 1 (or 2 for a bad URL) on failure. */
static char *fetch_jwks(const char *url, size_t *len)
{
	struct evhttp_uri *uri = evhttp_uri_parse(url);
	const char *scheme, *host, *path, *query;
	struct fetch f = { 0 };
	struct evdns_base *dns = NULL;
	struct evhttp_connection *conn = NULL;
	struct evhttp_request *req = NULL;
	struct bufferevent *bev = NULL;
	struct event *deadline = NULL;
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	char target[4096], tls_why[300];
	int port, https;

	if (uri == NULL)
		cli_fail(CLI_USAGE, "--jwks-url: not a valid URL");
	scheme = evhttp_uri_get_scheme(uri);
	host = evhttp_uri_get_host(uri);
	if (scheme == NULL || host == NULL || *host == '\0' ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
		evhttp_uri_free(uri);
		cli_fail(CLI_USAGE, "--jwks-url: must be an http:// or https:// URL with a host");
	}
	if (evhttp_uri_get_userinfo(uri) != NULL) {
		evhttp_uri_free(uri);
		cli_fail(CLI_USAGE, "--jwks-url: credentials in the URL are not supported");
	}
	https = strcmp(scheme, "https") == 0;
	port = evhttp_uri_get_port(uri);
	if (port < 0)
		port = https ? 443 : 80;
	path = evhttp_uri_get_path(uri);
	query = evhttp_uri_get_query(uri);
	snprintf(target, sizeof(target), "%s%s%s", path && *path ? path : "/", query ? "?" : "",
	         query ? query : "");
	if (!https && !is_loopback(host))
		fprintf(stderr, "tokend: warning: fetching the JWKS over plain http; use https\n");

	f.base = event_base_new();
	if (f.base == NULL)
		cli_fail(CLI_REFUSED, "cannot create an event loop");
	dns = evdns_base_new(f.base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (https) {
		ssl = tls_for(&ctx, host);
		if (ssl != NULL)
			bev = bufferevent_openssl_socket_new(f.base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
			                                     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (bev == NULL) {
			f.failure = "cannot set up TLS";
			SSL_free(ssl);      /* not owned by a bufferevent */
			goto done;
		}
		/* The bufferevent owns ssl now; the connection owns the bufferevent. */
		conn = evhttp_connection_base_bufferevent_new(f.base, dns, bev, host,
		                                              (unsigned short)port);
	} else {
		conn = evhttp_connection_base_new(f.base, dns, host, (unsigned short)port);
	}
	if (conn == NULL) {
		f.failure = "cannot create an HTTP connection";
		if (bev != NULL)
			bufferevent_free(bev);
		goto done;
	}
	evhttp_connection_set_timeout(conn, JWKS_FETCH_TIMEOUT);
	evhttp_connection_set_retries(conn, 0);
	evhttp_connection_set_max_body_size(conn, JWKS_FETCH_MAX);
	evhttp_connection_set_max_headers_size(conn, 16 * 1024);

	req = evhttp_request_new(fetch_done_cb, &f);
	if (req == NULL) {
		f.failure = "out of memory";
		goto done;
	}
	evhttp_request_set_error_cb(req, fetch_error_cb);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char hosthdr[300];
	if (evhttp_uri_get_port(uri) >= 0)
		snprintf(hosthdr, sizeof(hosthdr), "%s:%d", host, port);
	else
		snprintf(hosthdr, sizeof(hosthdr), "%s", host);
	evhttp_add_header(h, "Host", hosthdr);
	evhttp_add_header(h, "Accept", "application/jwk-set+json, application/json");
	evhttp_add_header(h, "Connection", "close");
	evhttp_add_header(h, "User-Agent", "tokend-verify");
	if (evhttp_make_request(conn, req, EVHTTP_REQ_GET, target) != 0) {
		req = NULL;              /* freed by libevent on failure */
		f.failure = "cannot send the request";
		goto done;
	}
	deadline = evtimer_new(f.base, fetch_deadline_cb, &f);
	struct timeval tv = { JWKS_FETCH_TIMEOUT, 0 };
	if (deadline == NULL || evtimer_add(deadline, &tv) != 0) {
		f.failure = "cannot arm the timeout";
		goto done;
	}
	event_base_dispatch(f.base);
	if (f.body == NULL && f.failure == NULL)
		f.failure = f.status ? NULL : "no response";
	if (f.body == NULL && ssl != NULL && f.status == 0) {
		/* Say why TLS failed rather than "connection closed". */
		long vr = SSL_get_verify_result(ssl);
		unsigned long e = bufferevent_get_openssl_error(bev);
		if (vr != X509_V_OK) {
			snprintf(tls_why, sizeof(tls_why), "TLS: server certificate not accepted (%s)",
			         X509_verify_cert_error_string(vr));
			f.failure = tls_why;
		} else if (e != 0) {
			const char *r = ERR_reason_error_string(e);
			snprintf(tls_why, sizeof(tls_why), "TLS handshake failed (%s)", r ? r : "?");
			f.failure = tls_why;
		}
	}
done:
	if (deadline != NULL)
		event_free(deadline);
	if (conn != NULL)
		evhttp_connection_free(conn);   /* also frees a pending request and bev */
	if (dns != NULL)
		evdns_base_free(dns, 0);
	event_base_free(f.base);
	SSL_CTX_free(ctx);
	evhttp_uri_free(uri);
	ERR_clear_error();
	if (f.body == NULL) {
		if (f.failure)
			cli_fail(CLI_REFUSED, "cannot fetch the JWKS: %s", f.failure);
		cli_fail(CLI_REFUSED, "cannot fetch the JWKS: HTTP status %d", f.status);
	}
	*len = f.len;
	return f.body;
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
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *url = NULL, *file = NULL, *issuer = NULL, *audience = NULL;
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
