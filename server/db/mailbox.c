/*
 * mailbox.c - finished database jobs back to their worker (see mailbox.h).
 */
#include "mailbox.h"
#include "dbpool.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct tk_mailbox {
	pthread_mutex_t mu;
	tk_dbjob *head, *tail;
	int efd;
	struct event *ev;
};

static void mailbox_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof(v));

	(void)what;
	(void)r;
	tk_mailbox_drain(arg);
}

int tk_mailbox_drain(tk_mailbox *m)
{
	int n = 0;

	pthread_mutex_lock(&m->mu);
	tk_dbjob *j = m->head;
	m->head = m->tail = NULL;
	pthread_mutex_unlock(&m->mu);
	while (j) {
		tk_dbjob *next = j->next;
		j->next = NULL;
		j->done(j);
		j = next;
		n++;
	}
	return n;
}

tk_mailbox *tk_mailbox_new(struct event_base *base)
{
	tk_mailbox *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (m->efd < 0) {
		free(m);
		return NULL;
	}
	m->ev = event_new(base, m->efd, EV_READ | EV_PERSIST, mailbox_cb, m);
	if (!m->ev || event_add(m->ev, NULL) != 0) {
		if (m->ev)
			event_free(m->ev);
		close(m->efd);
		free(m);
		return NULL;
	}
	pthread_mutex_init(&m->mu, NULL);
	return m;
}

void tk_mailbox_free(tk_mailbox *m)
{
	if (!m)
		return;
	event_free(m->ev);
	close(m->efd);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

void tk_mailbox_post_chain(tk_mailbox *m, tk_dbjob *first, tk_dbjob *last)
{
	uint64_t one = 1;

	last->next = NULL;
	pthread_mutex_lock(&m->mu);
	if (m->tail)
		m->tail->next = first;
	else
		m->head = first;
	m->tail = last;
	pthread_mutex_unlock(&m->mu);
	ssize_t r = write(m->efd, &one, sizeof(one));
	(void)r;
}

void tk_mailbox_post(tk_mailbox *m, tk_dbjob *j)
{
	tk_mailbox_post_chain(m, j, j);
}
