/*
 * proxy.c - trusted proxies and X-Forwarded-For (see proxy.h).
 */
#include "proxy.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* An address from s[0..len): IPv4 or IPv6, IPv4-mapped IPv6 folded to IPv4.
 * 0 with family/addr set, or -1. */
static int parse_addr(const char *s, size_t len, int *family, unsigned char addr[16])
{
	char buf[TK_ADDR_TEXT_MAX];
	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, addr) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, buf, addr) != 1)
		return -1;
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	if (memcmp(addr, mapped, sizeof(mapped)) == 0) {
		memmove(addr, addr + 12, 4);
		*family = AF_INET;
	} else {
		*family = AF_INET6;
	}
	return 0;
}

static int in_cidr(const tk_cidr *c, int family, const unsigned char *addr)
{
	if (c->family != family)
		return 0;
	int full = c->bits / 8, rest = c->bits % 8;
	if (memcmp(c->addr, addr, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (c->addr[full] & mask) == (addr[full] & mask);
}

static int trusted(const tk_proxies *p, int family, const unsigned char *addr)
{
	for (size_t i = 0; i < p->n; i++)
		if (in_cidr(&p->v[i], family, addr))
			return 1;
	return 0;
}

/* One CIDR from s[0..len). 0, or -1 with a static reason. */
static int parse_cidr(const char *s, size_t len, tk_cidr *c, const char **reason)
{
	const char *slash = memchr(s, '/', len);
	size_t alen = slash ? (size_t)(slash - s) : len;
	memset(c, 0, sizeof(*c));
	if (parse_addr(s, alen, &c->family, c->addr) != 0) {
		*reason = "not an IPv4 or IPv6 address";
		return -1;
	}
	int max = c->family == AF_INET ? 32 : 128;
	c->bits = max;
	if (slash) {
		const char *d = slash + 1;
		size_t dlen = len - alen - 1;
		int bits = 0;
		if (dlen == 0 || dlen > 3) {
			*reason = "the prefix length must be a number";
			return -1;
		}
		for (size_t i = 0; i < dlen; i++) {
			if (d[i] < '0' || d[i] > '9') {
				*reason = "the prefix length must be a number";
				return -1;
			}
			bits = bits * 10 + (d[i] - '0');
		}
		if (bits > max) {
			*reason = c->family == AF_INET ? "the prefix length must be 0..32 for IPv4"
			                               : "the prefix length must be 0..128 for IPv6";
			return -1;
		}
		c->bits = bits;
	}
	/* Bits set past the prefix are a typo more often than not: say so. */
	for (int b = c->bits; b < max; b++) {
		if (c->addr[b / 8] & (0x80 >> (b % 8))) {
			*reason = "the address has bits set beyond the prefix length";
			return -1;
		}
	}
	return 0;
}

int tk_proxies_parse(const char *text, tk_proxies *out, char *why, size_t wl)
{
	memset(out, 0, sizeof(*out));
	if (!text)
		return 0;
	const char *s = text;
	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		if (!*s)
			return 0;
		size_t len = strcspn(s, " \t,");
		const char *reason = NULL;
		if (out->n == TK_PROXIES_MAX) {
			snprintf(why, wl, "more than %d entries", TK_PROXIES_MAX);
			memset(out, 0, sizeof(*out));
			return -1;
		}
		if (parse_cidr(s, len, &out->v[out->n], &reason) != 0) {
			snprintf(why, wl, "`%.*s`: %s", (int)(len > 60 ? 60 : len), s, reason);
			memset(out, 0, sizeof(*out));
			return -1;
		}
		out->n++;
		s += len;
	}
}

static void addr_text(int family, const unsigned char *addr, char *out, size_t outlen)
{
	char buf[INET6_ADDRSTRLEN];
	if (!inet_ntop(family, addr, buf, sizeof(buf)))
		buf[0] = '\0';
	snprintf(out, outlen, "%s", buf);
}

void tk_proxies_client(const tk_proxies *p, const char *peer, const char *xff, char *out, size_t outlen)
{
	int family;
	unsigned char addr[16];
	if (!peer || parse_addr(peer, strlen(peer), &family, addr) != 0) {
		snprintf(out, outlen, "%s", peer ? peer : "");
		return;
	}
	addr_text(family, addr, out, outlen);   /* the peer, unless X-Forwarded-For names someone */
	if (!p || p->n == 0 || !xff || !trusted(p, family, addr))
		return;
	size_t xlen = strlen(xff);
	if (xlen > TK_XFF_MAX)
		return;
	/* Every entry must parse, or the list names nobody. */
	enum { MAX_HOPS = 64 };
	int fam[MAX_HOPS];
	unsigned char hop[MAX_HOPS][16];
	size_t n = 0;
	const char *s = xff, *end = xff + xlen;
	int blank = 1;
	for (const char *c = xff; c < end; c++)
		if (*c != ' ' && *c != '\t' && *c != ',')
			blank = 0;
	if (blank)
		return;   /* an empty field: nothing forwarded */
	for (;;) {
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *e = comma ? comma : end;
		const char *a = s, *b = e;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (n == MAX_HOPS || parse_addr(a, (size_t)(b - a), &fam[n], hop[n]) != 0)
			return;
		n++;
		if (!comma)
			break;
		s = comma + 1;
	}
	size_t i = n;
	while (i > 1 && trusted(p, fam[i - 1], hop[i - 1]))
		i--;
	addr_text(fam[i - 1], hop[i - 1], out, outlen);
}
