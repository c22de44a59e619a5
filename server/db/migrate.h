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
 * Appends the names applied to `applied` (a JSON array) and sets *current.
 * Returns 0, or -1 with a reason in err (the failing migration is rolled back).
 */
int tk_migrate(PGconn *c, json_t *applied, int *current, char *err, size_t errlen);

/* The schema version recorded in the database (0 if none), or -1 on error. */
int tk_migrate_current(PGconn *c);

/* The newest version embedded in this binary. */
int tk_migrate_latest(void);

#endif
