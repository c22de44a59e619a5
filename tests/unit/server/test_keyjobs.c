/*
 * test_keyjobs.c - batched key lookups (server/db/dbjobs.c): the one
 * statement's parameter for many KEY jobs (only key-ID characters go into the
 * array literal: nothing can be smuggled into it), and the answer of each job
 * from the batch result, built here with libpq's own result constructors (no
 * connection): its own row, a negative record for an unknown key, one shared
 * record for the same key asked twice, every job failed when the statement
 * failed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "dbjobs.h"
#include "unit.h"

#define NCOLS 19

static const char HASH_A[] = "\\x1111111111111111111111111111111111111111111111111111111111111111";
static const char HASH_B[] = "\\x2222222222222222222222222222222222222222222222222222222222222222";
static const char PREV_B[] = "\\x3333333333333333333333333333333333333333333333333333333333333333";

static PGresult *result_of(int nrows, const char *const rows[][NCOLS])
{
	PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	PGresAttDesc attrs[NCOLS];
	char names[NCOLS][8];
	memset(attrs, 0, sizeof(attrs));
	for (int c = 0; c < NCOLS; c++) {
		snprintf(names[c], sizeof(names[c]), "c%d", c);
		attrs[c].name = names[c];
		attrs[c].typid = 25;     /* text */
		attrs[c].typlen = -1;
		attrs[c].atttypmod = -1;
	}
	if (!r || !PQsetResultAttrs(r, NCOLS, attrs))
		abort();
	for (int i = 0; i < nrows; i++)
		for (int c = 0; c < NCOLS; c++)
			if (!PQsetvalue(r, i, c, (char *)(uintptr_t)rows[i][c], rows[i][c] ? (int)strlen(rows[i][c]) : -1))
				abort();
	return r;
}

static tk_dbjob *job(const char *id)
{
	tk_dbjob *j = calloc(1, sizeof(*j));
	j->kind = TK_DBJOB_KEY;
	snprintf(j->key_id, sizeof(j->key_id), "%s", id);
	return j;
}

static void free_jobs(tk_dbjob **jobs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		tk_apikey_release(jobs[i]->key);
		free(jobs[i]);
	}
}

static void test_param(void)
{
	tk_dbjob *jobs[3] = { job("tk_a"), job("tk_B9_x"), job("tk_a") };
	tk_dbcall call;
	TEST_ASSERT(tk_dbcall_make_keys(jobs, 3, &call) == 0);
	TEST_ASSERT_STR(call.stmt, "keys");
	TEST_ASSERT(call.nparams == 1);
	TEST_ASSERT_STR(call.params[0], "{tk_a,tk_B9_x,tk_a}");
	tk_dbcall_release(&call);
	/* An ID with an array literal's syntax in it is never sent. */
	const char *bad[] = { "tk_a,tk_b", "tk_a}", "tk_\"x\"", "tk_a b", "tk_\\", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(jobs[1]->key_id, sizeof(jobs[1]->key_id), "%s", bad[i]);
		TEST_ASSERT(tk_dbcall_make_keys(jobs, 3, &call) == -1);
	}
	TEST_ASSERT(tk_dbcall_make_keys(jobs, 0, &call) == -1);
	free_jobs(jobs, 3);
}

/* The last-used batch's two array literals: IDs in byte order (the rows are
 * locked in that order), each time beside its ID, in decimal including 0,
 * negatives and the extremes. */
static void test_last_used_param(void)
{
	tk_dbjob j;
	tk_dbcall call;
	char ids[4][TK_KEY_ID_MAX + 1];
	int64_t times[4] = { 1700000000, 0, -5, INT64_MAX };
	char longest[TK_KEY_ID_MAX + 1];

	memset(longest, 'z', TK_KEY_ID_MAX);
	longest[TK_KEY_ID_MAX] = '\0';
	snprintf(ids[0], sizeof(ids[0]), "tk_a");
	snprintf(ids[1], sizeof(ids[1]), "tk_B9_x");
	snprintf(ids[2], sizeof(ids[2]), "%s", longest);
	snprintf(ids[3], sizeof(ids[3]), "tk_c");
	memset(&j, 0, sizeof(j));
	j.kind = TK_DBJOB_LAST_USED;
	j.ids = ids;
	j.times = times;
	j.n = 4;
	TEST_ASSERT(tk_dbcall_make(&j, &call) == 0);
	TEST_ASSERT_STR(call.stmt, "last_used");
	TEST_ASSERT(call.nparams == 2);
	char want[256];
	/* In ID order (byte order: 'B' < 'a' < 'c' < 'z'), each time beside its ID. */
	snprintf(want, sizeof(want), "{tk_B9_x,tk_a,tk_c,%s}", longest);
	TEST_ASSERT_STR(call.params[0], want);
	TEST_ASSERT_STR(call.params[1], "{0,1700000000,9223372036854775807,-5}");
	tk_dbcall_release(&call);
	times[0] = INT64_MIN;
	j.n = 1;
	TEST_ASSERT(tk_dbcall_make(&j, &call) == 0);
	TEST_ASSERT_STR(call.params[0], "{tk_a}");
	TEST_ASSERT_STR(call.params[1], "{-9223372036854775808}");
	tk_dbcall_release(&call);
}

static void test_answers(void)
{
	const char *rows[][NCOLS] = {
		/* account, hash, pepper, scopes, audiences, subject, lifetime, expires, why_not,
		 * rate, last_used, env, claims, prev_hash, prev_until, publishable, origins, status_idx, id */
		{ "acme", HASH_B, "1", "read", "", NULL, "0", "0", "key_disabled", "0", "0", "live", NULL,
		  PREV_B, "1900000000", "f", NULL, "7", "tk_b" },
		{ "acme", HASH_A, "1", "read write", "https://api", "jane", "600", "0", "", "5", "1700000000",
		  "test", "{\"plan\":\"pro\"}", NULL, "0", "f", NULL, "8", "tk_a" },
	};
	tk_dbjob *jobs[4] = { job("tk_a"), job("tk_unknown"), job("tk_b"), job("tk_a") };
	size_t base = tk_intern_count();
	tk_dbjob_finish_keys(jobs, 4, result_of(2, rows));
	for (int i = 0; i < 4; i++)
		TEST_ASSERT(jobs[i]->status == TK_DBJOB_OK && jobs[i]->key != NULL);
	tk_apikey *a = jobs[0]->key, *u = jobs[1]->key, *b = jobs[2]->key;
	/* Each job its own key's row, whatever the row order. */
	TEST_ASSERT_STR(a->id, "tk_a");
	TEST_ASSERT(a->found && a->usable && tk_apikey_unusable_reason(a) == NULL);
	TEST_ASSERT(a->hash[0] == 0x11 && a->hash[31] == 0x11 && tk_apikey_prev_hash(a) == NULL && tk_apikey_prev_until(a) == 0);
	TEST_ASSERT_STR(a->account, "acme");
	TEST_ASSERT_STR(tk_apikey_subject(a), "jane");
	TEST_ASSERT_STR(tk_apikey_claims(a), "{\"plan\":\"pro\"}");
	TEST_ASSERT_STR(tk_apikey_environment(a), "test");
	TEST_ASSERT(a->scopes->n == 2 && a->naud == 1 && a->lifetime == 600 && a->rate_limit == 5);
	TEST_ASSERT_STR(a->aud[0], "https://api");
	TEST_ASSERT(atomic_load(&a->last_used_at) == 1700000000);
	TEST_ASSERT(a->status_idx == 8 && !a->publishable && tk_apikey_origins(a) == NULL);
	/* The same key asked twice in the batch: one record (single flight). */
	TEST_ASSERT(jobs[3]->key == a && atomic_load(&a->refs) == 2);
	/* Unknown: a negative record, as a single lookup gives. */
	TEST_ASSERT_STR(u->id, "tk_unknown");
	TEST_ASSERT(!u->found && !u->usable && u->account == NULL);
	/* Disabled, with a previous secret. */
	TEST_ASSERT_STR(b->id, "tk_b");
	TEST_ASSERT(b->found && !b->usable);
	TEST_ASSERT_STR(tk_apikey_unusable_reason(b), "key_disabled");
	TEST_ASSERT(tk_apikey_prev_hash(b) && tk_apikey_prev_hash(b)[0] == 0x33 && tk_apikey_prev_until(b) == 1900000000);
	TEST_ASSERT(a->account == b->account);             /* interned: one copy of "acme" */
	free_jobs(jobs, 4);
	TEST_ASSERT(tk_intern_count() == base);
}

static void test_corrupt_row(void)
{
	/* A row the record cannot be built from (an unknown environment, a short
	 * hash): the key is never usable. */
	const char *rows[][NCOLS] = {
		{ "acme", HASH_A, "1", "read", "", NULL, "0", "0", "", "0", "0", "prod", NULL, NULL, "0", "f", NULL, "9", "tk_a" },
		{ "acme", "\\x1111", "1", "read", "", NULL, "0", "0", "", "0", "0", "live", NULL, NULL, "0", "f", NULL, "10", "tk_b" },
		{ "acme", HASH_A, "1", "a  b", "", NULL, "0", "0", "", "0", "0", "live", NULL, NULL, "0", "f", NULL, "11", "tk_c" },
		/* no status index: never a token without its status claim */
		{ "acme", HASH_A, "1", "read", "", NULL, "0", "0", "", "0", "0", "live", NULL, NULL, "0", "f", NULL, NULL, "tk_d" },
		/* a publishable key without allowed origins */
		{ "acme", NULL, "1", "read", "", NULL, "0", "0", "", "0", "0", "live", NULL, NULL, "0", "t", NULL, "12", "tk_e" },
	};
	tk_dbjob *jobs[5] = { job("tk_a"), job("tk_b"), job("tk_c"), job("tk_d"), job("tk_e") };
	tk_dbjob_finish_keys(jobs, 5, result_of(5, rows));
	for (int i = 0; i < 5; i++) {
		TEST_ASSERT(jobs[i]->status == TK_DBJOB_OK && jobs[i]->key->found && !jobs[i]->key->usable);
		TEST_ASSERT_STR(tk_apikey_unusable_reason(jobs[i]->key), "key_corrupt");
	}
	TEST_ASSERT(jobs[2]->key->scopes->n == 0);           /* an invalid scope string grants nothing */

	TEST_ASSERT(jobs[4]->key->publishable);
	free_jobs(jobs, 5);
}

static void test_failed_statement(void)
{
	tk_dbjob *jobs[2] = { job("tk_a"), job("tk_b") };
	PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_FATAL_ERROR);
	tk_dbjob_finish_keys(jobs, 2, r);
	TEST_ASSERT(jobs[0]->status == TK_DBJOB_FAILED && jobs[0]->key == NULL);
	TEST_ASSERT(jobs[1]->status == TK_DBJOB_FAILED && jobs[1]->key == NULL);
	free_jobs(jobs, 2);
}

int main(void)
{
	TEST_RUN(test_param);
	TEST_RUN(test_last_used_param);
	TEST_RUN(test_answers);
	TEST_RUN(test_corrupt_row);
	TEST_RUN(test_failed_statement);
	TEST_DONE();
}
