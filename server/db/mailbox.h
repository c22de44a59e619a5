/*
 * mailbox.h - how finished database jobs come back to the worker that sent
 * them: a locked list plus an eventfd that the worker's event loop watches.
 * The database threads post; the owner's loop runs each job's `done`
 * callback on the owner's thread.
 */
#ifndef TOKEND_MAILBOX_H
#define TOKEND_MAILBOX_H

#include <event2/event.h>

typedef struct tk_mailbox tk_mailbox;
struct tk_dbjob;

/* A mailbox watched by `base`'s loop. NULL on failure (nothing to free). */
tk_mailbox *tk_mailbox_new(struct event_base *base);
/* Free an empty mailbox (after tk_mailbox_drain at shutdown). */
void tk_mailbox_free(tk_mailbox *m);
/* Hand a finished job to the owner (any thread). */
void tk_mailbox_post(tk_mailbox *m, struct tk_dbjob *job);
/* Hand a chain of finished jobs (first ... last, linked by `next`, last->next
 * NULL) to the owner at once: one lock and one wake-up for all of them (a
 * batch of key lookups answered by one statement). Any thread. The jobs
 * belong to the owner from then on: the caller touches none of them again. */
void tk_mailbox_post_chain(tk_mailbox *m, struct tk_dbjob *first, struct tk_dbjob *last);
/* Run the callbacks of the finished jobs now (also used at shutdown, when the
 * loop no longer runs). Returns how many ran. Owner's thread only. */
int tk_mailbox_drain(tk_mailbox *m);

#endif
