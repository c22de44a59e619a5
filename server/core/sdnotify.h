/*
 * sdnotify.h - the systemd service notification protocol (sd_notify(3)),
 * written here: one datagram to the unix socket named by $NOTIFY_SOCKET. No
 * libsystemd needed; without $NOTIFY_SOCKET (not run by systemd with
 * Type=notify) nothing is sent.
 *
 * Called from the main thread only (startup, SIGHUP, stop).
 */
#ifndef TOKEND_SDNOTIFY_H
#define TOKEND_SDNOTIFY_H

/*
 * Send `state` (newline-separated VAR=value lines, e.g. "READY=1\nSTATUS=...")
 * to $NOTIFY_SOCKET: a path starting with '/', or '@' for an abstract socket.
 * Returns 1 when sent, 0 when there is no socket to tell, -1 on failure
 * (a bad address or a send error; errno set).
 */
int tk_sd_notify(const char *state);

#endif
