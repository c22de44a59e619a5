/* migrations.h - the SQL migrations embedded in the binary (from sql/). */
#ifndef TOKEND_MIGRATIONS_H
#define TOKEND_MIGRATIONS_H

#include <stddef.h>

typedef struct tk_migration {
	int version;          /* NNN of sql/NNN_name.sql */
	const char *name;     /* file name without .sql */
	const char *sql;
	size_t len;
} tk_migration;

extern const tk_migration tk_migrations[];
extern const int tk_migrations_count;

#endif
