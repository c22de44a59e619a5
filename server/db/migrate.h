/* migrate.h - apply the embedded SQL migrations. */
#ifndef TOKEND_MIGRATE_H
#define TOKEND_MIGRATE_H

#include <stddef.h>
#include <jansson.h>
#include <libpq-fe.h>

/*
 * Apply every embedded migration not yet recorded in tokend_migrations, in
 * order, each in its own transaction, under a session advisory lock so that
 * concurrent runs (several instances starting at once) serialise. Refuses if
 * an applied migration's checksum differs from the embedded one, or if the
 * database is at a version newer than this binary knows.
 * Then rewrites the privileges of the application role tokend_app (schema
 * version 6 on; see sql/006_roles.sql), on every run.
 * Appends the names applied to `applied` (a JSON array) and sets *current.
 * Returns 0, or -1 with a reason in err (the failing migration is rolled back).
 */
int tk_migrate(PGconn *c, json_t *applied, int *current, char *err, size_t errlen);

/* The schema version recorded in the database (0 if none), or -1 on error. */
int tk_migrate_current(PGconn *c);

/* The newest version embedded in this binary. */
int tk_migrate_latest(void);

/*
 * Whether the role of connection `c` may switch off what the schema enforces:
 * a superuser, or a member of the role owning tokend's tables or schema (it
 * could disable triggers or drop objects). Returns 0 (a plain role), 1 (a
 * privileged one: err says why), or -1 when the check could not run (err).
 */
int tk_migrate_role_check(PGconn *c, char *err, size_t errlen);

#endif
