/*
 * acctcount.h - tokens issued per account, for the optional
 * tokend_account_tokens_issued_total{account=...} series (metrics_per_account).
 *
 * One label value per account: a cardinality risk on a server with many
 * accounts, hence off by default and bounded: past `max_accounts` distinct
 * accounts, the rest are counted together under TK_ACCTCOUNT_OTHER.
 * Thread-safe (one mutex: taken only when the setting is on, once per token).
 */
#ifndef TOKEND_ACCTCOUNT_H
#define TOKEND_ACCTCOUNT_H

#include <stddef.h>
#include <stdint.h>

/* The bound the server uses (metrics_per_account = yes). */
#define TK_METRICS_ACCOUNTS_MAX 10000

/* The label value for the accounts past the bound ("" is no account id). */
#define TK_ACCTCOUNT_OTHER ""

typedef struct tk_acctcount tk_acctcount;

/* NULL when out of memory or max_accounts is 0. */
tk_acctcount *tk_acctcount_new(size_t max_accounts);
void tk_acctcount_free(tk_acctcount *t);

/* Count one token for `account` (NULL or "" counts as TK_ACCTCOUNT_OTHER). */
void tk_acctcount_add(tk_acctcount *t, const char *account);

/* Call fn(account, count, arg) for each account counted, under the lock (fn
 * must not call back into `t`); the overflow last, when it is not zero. */
void tk_acctcount_foreach(tk_acctcount *t, void (*fn)(const char *account, uint64_t n, void *arg),
                          void *arg);

#endif
