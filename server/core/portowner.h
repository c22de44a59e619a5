/*
 * portowner.h - who else listens on a TCP port (Linux /proc).
 *
 * tokend's workers share their port with SO_REUSEPORT, so a second tokend
 * (or anything else setting it) can bind the same address and the kernel
 * splits the connections between them. serve.c asks here before binding, to
 * warn (or, with listen_exclusive, to refuse) and to name the other process.
 */
#ifndef TOKEND_PORTOWNER_H
#define TOKEND_PORTOWNER_H

#include <stddef.h>

/*
 * Look for a listening TCP socket on `port` whose address overlaps `addr`
 * (the same address, or either side a wildcard: 0.0.0.0 or ::), held by a
 * process other than this one. Returns 0: none; 1: found, `desc` names it
 * ("pid 1234 (tokend serve --config /etc/tokend.conf)", or "a process this
 * user cannot see" when no readable /proc/PID/fd holds the socket); -1: /proc
 * could not be read (desc says why). `addr` must be an IP address literal.
 */
int tk_port_listener(const char *addr, int port, char *desc, size_t desclen);

#endif
