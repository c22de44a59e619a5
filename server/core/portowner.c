/*
 * portowner.c - who else listens on a TCP port, from /proc/net/tcp{,6} and
 * /proc/PID/fd.
 */
#include "portowner.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_INODES 16

/* The words of an address as /proc/net/tcp{,6} prints them (%08X of each
 * 32-bit word in memory order): 1 word for IPv4, 4 for IPv6. */
typedef struct {
	uint32_t w[4];
	int n;
} proc_addr;

static int parse_addr(const char *addr, proc_addr *out)
{
	struct in_addr a4;
	struct in6_addr a6;
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, addr, &a4) == 1) {
		memcpy(&out->w[0], &a4, 4);
		out->n = 1;
		return 0;
	}
	if (inet_pton(AF_INET6, addr, &a6) == 1) {
		memcpy(out->w, &a6, 16);
		out->n = 4;
		return 0;
	}
	return -1;
}

static int is_wildcard(const proc_addr *a)
{
	for (int i = 0; i < a->n; i++)
		if (a->w[i])
			return 0;
	return 1;
}

/* The inodes of LISTEN sockets of `file` on `port` overlapping `want`
 * (same family only; an IPv6 wildcard also overlaps IPv4). */
static int scan_table(const char *file, int words, const proc_addr *want, int port,
                      unsigned long *inodes, int *ninodes)
{
	FILE *f = fopen(file, "r");
	if (!f)
		return errno == ENOENT ? 0 : -1;
	char line[512];
	if (!fgets(line, sizeof(line), f)) {      /* the header */
		fclose(f);
		return 0;
	}
	while (fgets(line, sizeof(line), f) && *ninodes < MAX_INODES) {
		char local[64];
		unsigned int lport = 0, state = 0;
		unsigned long inode = 0;
		/* sl local rem st tx:rx tr:when retr uid timeout inode */
		if (sscanf(line, " %*d: %63[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %*s %*s %lu",
		           local, &lport, &state, &inode) != 4)
			continue;
		if (state != 0x0A || (int)lport != port || strlen(local) != (size_t)words * 8)
			continue;
		proc_addr have = { .n = words };
		for (int i = 0; i < words; i++) {
			char word[9];
			memcpy(word, local + 8 * i, 8);
			word[8] = '\0';
			have.w[i] = (uint32_t)strtoul(word, NULL, 16);
		}
		int overlap = is_wildcard(&have) || (want->n == words && is_wildcard(want)) ||
		              (want->n == words && memcmp(have.w, want->w, sizeof(uint32_t) * (size_t)words) == 0);
		if (overlap && inode)
			inodes[(*ninodes)++] = inode;
	}
	fclose(f);
	return 0;
}

/* "pid N (cmdline)" of the first other process holding one of the inodes. */
static int find_holder(const unsigned long *inodes, int n, char *desc, size_t desclen)
{
	DIR *proc = opendir("/proc");
	if (!proc)
		return -1;
	pid_t self = getpid();
	struct dirent *de;
	int found = 0;
	while (!found && (de = readdir(proc))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		long pid = strtol(de->d_name, NULL, 10);
		if (pid == (long)self)
			continue;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
		DIR *fds = opendir(path);
		if (!fds)
			continue;
		struct dirent *fe;
		while (!found && (fe = readdir(fds))) {
			char link[96], target[64];
			snprintf(link, sizeof(link), "/proc/%ld/fd/%.20s", pid, fe->d_name);
			ssize_t len = readlink(link, target, sizeof(target) - 1);
			if (len <= 0)
				continue;
			target[len] = '\0';
			unsigned long ino = 0;
			if (sscanf(target, "socket:[%lu]", &ino) != 1)
				continue;
			for (int i = 0; i < n; i++)
				if (inodes[i] == ino)
					found = 1;
		}
		closedir(fds);
		if (!found)
			continue;
		/* The command line, NULs as spaces, cut short. */
		char cmd[160] = "";
		snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
		FILE *f = fopen(path, "r");
		if (f) {
			size_t len = fread(cmd, 1, sizeof(cmd) - 1, f);
			fclose(f);
			cmd[len] = '\0';
			for (size_t i = 0; i + 1 < len; i++)
				if (cmd[i] == '\0')
					cmd[i] = ' ';
			for (size_t i = 0; cmd[i]; i++)
				if ((unsigned char)cmd[i] < 0x20 || cmd[i] == '"')
					cmd[i] = '?';
		}
		snprintf(desc, desclen, "pid %ld (%s)", pid, cmd[0] ? cmd : "?");
	}
	closedir(proc);
	return found;
}

int tk_port_listener(const char *addr, int port, char *desc, size_t desclen)
{
	proc_addr want;
	unsigned long inodes[MAX_INODES];
	int n = 0;
	if (desclen)
		desc[0] = '\0';
	if (parse_addr(addr, &want) != 0) {
		snprintf(desc, desclen, "not an IP address");
		return -1;
	}
	if (scan_table("/proc/net/tcp", 1, &want, port, inodes, &n) != 0 ||
	    scan_table("/proc/net/tcp6", 4, &want, port, inodes, &n) != 0) {
		snprintf(desc, desclen, "cannot read /proc/net/tcp: %s", strerror(errno));
		return -1;
	}
	if (n == 0)
		return 0;
	int found = find_holder(inodes, n, desc, desclen);
	if (found <= 0)
		snprintf(desc, desclen, "a process this user cannot see");
	return 1;
}
