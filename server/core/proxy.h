/*
 * proxy.h - the client's address behind trusted proxies (SECURITY.md row B6,
 * RFC 9700 §4.13).
 *
 * `trusted_proxies` lists CIDRs (IPv4 and IPv6, separated by commas or
 * spaces; a bare address is a /32 or /128). When the TCP peer is inside one,
 * X-Forwarded-For (all its fields, in order, as one comma-separated list) is
 * walked from the right: entries inside trusted_proxies are skipped and the
 * first one outside is the client (when every entry is trusted, the leftmost
 * is). A list that does not parse - an entry that is not a plain IPv4 or
 * IPv6 address (no port, no brackets), an empty entry, too many entries or
 * bytes - names nobody: the peer is the client. From a peer outside
 * trusted_proxies, X-Forwarded-For is ignored entirely. IPv4-mapped IPv6
 * addresses count as the IPv4 address. Pure functions: no allocation.
 */
#ifndef TOKEND_PROXY_H
#define TOKEND_PROXY_H

#include <stddef.h>

#define TK_PROXIES_MAX   64     /* CIDRs in trusted_proxies */
#define TK_XFF_MAX       2048   /* bytes of X-Forwarded-For looked at (more: malformed) */
#define TK_ADDR_TEXT_MAX 64     /* room for any address as text */

typedef struct tk_cidr {
	int family;                 /* AF_INET or AF_INET6 */
	unsigned char addr[16];     /* network byte order; 4 bytes used for AF_INET */
	int bits;                   /* prefix length */
} tk_cidr;

typedef struct tk_proxies {
	size_t n;
	tk_cidr v[TK_PROXIES_MAX];
} tk_proxies;

/*
 * Parse `text` (NULL or blank: no trusted proxy). 0 with *out filled, or -1
 * with *out empty and a reason naming the offending entry in `why`.
 */
int tk_proxies_parse(const char *text, tk_proxies *out, char *why, size_t wl);

/*
 * The client address of a request from `peer` (text, as the socket gave it)
 * carrying X-Forwarded-For `xff` (NULL when absent), written to out as
 * canonical text (inet_ntop form; the peer as given when it does not parse).
 */
void tk_proxies_client(const tk_proxies *p, const char *peer, const char *xff, char *out, size_t outlen);

#endif
