/*
 * admin_int.h - what the admin API's files share (not for other modules:
 * their face is admin.h).
 *
 *   api.c       the request: authentication (stage 0), authorisation, body
 *               and query, dispatch, the database call, answers and errors
 *   route.c     the route table and its matcher (route.h)
 *   fields.c    body members and query parameters, checked
 *   keys.c      key operations
 *   accounts.c  accounts, an account's scope allow-list, the scope
 *               catalogue, the audit log
 *
 * Contract of an operation (tk_admin_op_fn): it either answers (an error,
 * through tk_admin_send_*) or submits one database job (tk_admin_run); the
 * caller frees the request unless a job is out (ar->queued), and op_done
 * (api.c) answers from the job's result.
 */
#ifndef TOKEND_ADMIN_INT_H
#define TOKEND_ADMIN_INT_H

#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <libpq-fe.h>

#include <tokend/crypto.h>
#include <tokend/keyfmt.h>
#include <tokend/scope.h>

#include "keyauth.h"
#include "route.h"
#include "server.h"

#define TK_ADMIN_SCOPE_READ     "tokend:admin:read"
#define TK_ADMIN_SCOPE_WRITE    "tokend:admin:write"
#define TK_ADMIN_SCOPE_OPERATOR "tokend:operator"
#define TK_ADMIN_BODY_MAX       65536
#define TK_ADMIN_PAGE_DEFAULT   50
#define TK_ADMIN_PAGE_MAX       200

typedef struct tk_adminreq {
	tk_worker *w;
	struct evhttp_request *req;
	tk_reqinfo ri;
	tk_admin_op op;
	tk_admin_need need;
	char path[TK_ADMIN_PATH_MAX];     /* the request's path, never its query (logged) */
	char id[TK_ADMIN_ID_MAX];         /* {id} from the path */
	char account[64];                 /* the caller's account */
	char caller_key[TK_KEY_ID_MAX + 1];
	char caller_jti[72];
	char caller_scope[TK_SCOPE_STRING_MAX + 1];   /* the token's scope claim ("" if none) */
	int operator;
	int can_write;
	int can_read;
	char actor[96];
	char address[64];
	json_t *body;                     /* POST/PATCH/PUT body */
	struct evkeyvalq query;           /* decoded query string */
	int have_query;
	char *own[TK_DBJOB_MAX_PARAMS];   /* strings owned for the job's params (wiped, freed) */
	int nown;
	int oom;                          /* tk_admin_own() failed: run answers 500, never queries */
	char secret[TK_SECRET_MAX + 1];   /* key create, rotate-secret: shown once */
	char hash_hex[2 * TK_HASH_LEN + 3];   /* key create, rotate-secret: the secret's hash, "\\x..." (wiped) */
	tk_dbjob job;
	int stage;                        /* 0: checking the caller; 1: the operation */
	int queued;                       /* a job is out: op_done answers and frees */
	int by_key;                       /* authenticated by an API key sent directly */
	tk_authreq auth;                  /* that key's authentication (http/keyauth.h) */
} tk_adminreq;

typedef void (*tk_admin_op_fn)(tk_adminreq *ar);

/* ---- api.c: answers and the database call ---- */

void tk_admin_send_json(tk_adminreq *ar, int status, json_t *o);
void tk_admin_send_error(tk_adminreq *ar, int status, const char *error, const char *description,
                         const char *field);
void tk_admin_send_forbidden(tk_adminreq *ar, const char *scope, const char *description);

/* A copy of `s` owned by the request (wiped and freed with it), for a job
 * parameter. NULL for a NULL `s`. A failed copy (allocation, or more than
 * TK_DBJOB_MAX_PARAMS) also returns NULL and marks the request, so that
 * tk_admin_run refuses with 500: a NULL parameter never stands in for a
 * value that could not be copied. */
const char *tk_admin_own(tk_adminreq *ar, const char *s);

/* Submit the request's one database job (params must outlive it: fields of
 * `ar`, tk_admin_own copies, the body's strings or literals). On refusal
 * (oom, pool full) it answers and leaves ar->queued 0. */
void tk_admin_run(tk_adminreq *ar, const char *sql, int nparams, const char *const *params, int writes);

/* ---- fields.c: body members and query parameters ---- */

/* Each answers 400 (naming the field) and returns -1 on a bad value. */
int tk_admin_only_fields(tk_adminreq *ar, const char *const *allowed);
const char *tk_admin_check_text(const char *s, size_t max);
int tk_admin_get_string(tk_adminreq *ar, const char *field, int required, size_t max, const char **out);
int tk_admin_get_string_array(tk_adminreq *ar, const char *field, int required, size_t maxn, int scopes,
                              char **json_out, size_t *count);
int tk_admin_parse_limit(tk_adminreq *ar, int *limit);
int tk_admin_get_rate_limit(tk_adminreq *ar, char text[16]);

/* ---- keys.c ---- */

void tk_admin_keys_list(tk_adminreq *ar);
void tk_admin_key_create(tk_adminreq *ar);
void tk_admin_key_get(tk_adminreq *ar);
void tk_admin_key_action(tk_adminreq *ar);   /* patch, disable, enable, revoke, delete */
void tk_admin_key_rotate(tk_adminreq *ar);   /* a new secret; the previous one until the overlap ends */

/* Key creation's database answer {key, replayed} -> the response body (the
 * secret added once, or a replay note); *status 201 or 200, Location set.
 * NULL (nothing set) when the answer lacks a key object with a client_id. */
json_t *tk_admin_key_created(tk_adminreq *ar, json_t *answer, int *status);

/* ---- accounts.c ---- */

void tk_admin_account_self(tk_adminreq *ar);
void tk_admin_account_get(tk_adminreq *ar);
void tk_admin_accounts_list(tk_adminreq *ar);
void tk_admin_account_create(tk_adminreq *ar);
void tk_admin_account_patch(tk_adminreq *ar);
void tk_admin_account_scopes(tk_adminreq *ar);
void tk_admin_scopes_list(tk_adminreq *ar);
void tk_admin_scope_add(tk_adminreq *ar);
void tk_admin_audit(tk_adminreq *ar);

/* members.c */
void tk_admin_roles_list(tk_adminreq *ar);
void tk_admin_role_get(tk_adminreq *ar);
void tk_admin_role_put(tk_adminreq *ar);     /* POST /roles, PATCH /roles/{name} */
void tk_admin_members_list(tk_adminreq *ar);
void tk_admin_member_get(tk_adminreq *ar);
void tk_admin_member_add(tk_adminreq *ar);
void tk_admin_member_deactivate(tk_adminreq *ar);

#endif
