/*
 * cli_key_print.c - the output of `tokend key ...` (cli_key_print.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tokend/keyfmt.h>

#include "cli.h"
#include "cli_key_print.h"

json_t *cli_key_normalise(json_t *k)
{
	static const char *const fields[] = {
		"client_id", "account", "name", "hint", "masked", "scopes", "audiences", "subject", "state",
		"created_at", "created_by", "expires_at", "last_used_at", "disabled_at", "revoked_at", "revoked_by",
		"revoke_reason", "token_lifetime", "rate_limit", "kind", "role", "member", "member_name", "environment",
		"claims", "secret_rotated_at", "previous_hint", "previous_secret_until",
		"allowed_origins", NULL,
	};
	if (!json_is_object(k) || !json_is_string(json_object_get(k, "client_id")))
		return NULL;
	json_t *o = json_object();
	if (!o)
		return NULL;
	for (int i = 0; fields[i]; i++) {
		json_t *v = json_object_get(k, fields[i]);
		if (json_object_set(o, fields[i], v ? v : json_null()) != 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

static const char *jstr(json_t *o, const char *k, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : dflt;
}

/* A publishable key (sql/010): no secret, allowed origins, shown in full. */
static int is_publishable(json_t *k)
{
	return strcmp(jstr(k, "kind", ""), "publishable") == 0;
}

/* The text view of a key (the object key_json builds, or the admin API's). */
static void print_text(json_t *k)
{
	json_t *scopes = json_object_get(k, "scopes"), *auds = json_object_get(k, "audiences"), *v;
	json_t *lt = json_object_get(k, "token_lifetime");
	size_t j;
	printf("Key:            %s\n", jstr(k, "client_id", ""));
	printf("Account:        %s\n", jstr(k, "account", ""));
	printf("Name:           %s\n", jstr(k, "name", ""));
	json_t *origins = json_object_get(k, "allowed_origins");
	if (is_publishable(k)) {
		printf("Secret:         (none: a publishable key's ID is its whole, public credential)\n");
		printf("Origins:       ");
		json_array_foreach(origins, j, v)
			printf(" %s", json_string_value(v));
		printf("\n");
	} else
		printf("Secret:         %s...%s", TK_SECRET_PREFIX, jstr(k, "hint", ""));
	if (!is_publishable(k) && jstr(k, "secret_rotated_at", NULL))
		printf(" (rotated %s)", jstr(k, "secret_rotated_at", ""));
	if (!is_publishable(k))
		printf("\n");
	if (jstr(k, "previous_secret_until", NULL))
		printf("Old secret:     %s...%s works until %s\n", TK_SECRET_PREFIX, jstr(k, "previous_hint", ""),
		       jstr(k, "previous_secret_until", ""));
	printf("State:          %s\n", jstr(k, "state", ""));
	printf("Kind:           %s\n", jstr(k, "kind", "account"));
	if (jstr(k, "member", NULL))
		printf("Member:         %s (%s)\n", jstr(k, "member", ""), jstr(k, "member_name", ""));
	printf("Environment:    %s\n", jstr(k, "environment", "live"));
	printf("Role:           %s\n", jstr(k, "role", "(none: explicit scopes)"));
	json_t *cl = json_object_get(k, "claims");
	if (json_object_size(cl)) {
		char *t = json_dumps(cl, JSON_COMPACT | JSON_SORT_KEYS);
		char safe[1100];
		snprintf(safe, sizeof(safe), "%s", t ? t : "?");
		free(t);
		for (char *c = safe; *c; c++)   /* one printable line whatever the values hold */
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				*c = '?';
		printf("Claims:         %s\n", safe);
	}
	printf("Scopes:        ");
	json_array_foreach(scopes, j, v)
		printf(" %s", json_string_value(v));
	printf("\nAudiences:     ");
	if (json_array_size(auds) == 0)
		printf(" (server default)");
	json_array_foreach(auds, j, v)
		printf(" %s", json_string_value(v));
	printf("\n");
	printf("Subject:        %s\n", jstr(k, "subject", "(the key ID)"));
	if (json_is_integer(lt))
		printf("Token lifetime: %lld\n", (long long)json_integer_value(lt));
	else
		printf("Token lifetime: (server default)\n");
	json_t *rl = json_object_get(k, "rate_limit");
	if (json_is_integer(rl))
		printf("Rate limit:     %lld tokens per minute\n", (long long)json_integer_value(rl));
	else
		printf("Rate limit:     (none)\n");
	printf("Created:        %s by %s\n", jstr(k, "created_at", ""), jstr(k, "created_by", ""));
	printf("Expires:        %s\n", jstr(k, "expires_at", "never"));
	printf("Last used:      %s\n", jstr(k, "last_used_at", "never"));
	if (jstr(k, "disabled_at", NULL))
		printf("Disabled:       %s\n", jstr(k, "disabled_at", ""));
	if (jstr(k, "revoked_at", NULL))
		printf("Revoked:        %s by %s: %s\n", jstr(k, "revoked_at", ""), jstr(k, "revoked_by", "?"),
		       jstr(k, "revoke_reason", "(no reason given)"));
}

/* The table of `key list` (a JSON array of key objects). */
static void print_table(json_t *keys)
{
	json_t *k;
	size_t i;
	int w = 3;                      /* the KEY column fits the longest ID (prefixes vary) */
	json_array_foreach(keys, i, k) {
		size_t n = strlen(jstr(k, "client_id", ""));
		if (n > (size_t)w && n < 200)
			w = (int)n;
	}
	printf("%-*s %-16s %-20s %-12s %-9s %-7s %-16s %-12s %-4s %-20s %-20s %s\n", w, "KEY", "ACCOUNT", "NAME",
	       "SECRET", "STATE", "KIND", "MEMBER", "ROLE", "ENV", "CREATED", "LAST USED", "SCOPES");
	json_array_foreach(keys, i, k) {
		json_t *v;
		size_t j;
		char masked[16];
		snprintf(masked, sizeof(masked), "%s%s", is_publishable(k) ? "-" : "tks_...",
		         is_publishable(k) ? "" : jstr(k, "hint", ""));
		printf("%-*s %-16.16s %-20.20s %-12s %-9s %-7s %-16.16s %-12.12s %-4s %-20s %-20s", w, jstr(k, "client_id", ""),
		       jstr(k, "account", ""), jstr(k, "name", ""), masked, jstr(k, "state", ""),
		       jstr(k, "kind", "account"), jstr(k, "member", "-"), jstr(k, "role", "-"),
		       jstr(k, "environment", "live"), jstr(k, "created_at", ""), jstr(k, "last_used_at", "never"));
		json_array_foreach(json_object_get(k, "scopes"), j, v)
			printf(" %s", json_string_value(v));
		printf("\n");
	}
}

/* A new key with its secret, shown once (JSON: the key object plus client_secret). */
void cli_key_print_created(json_t *k, const char *secret)
{
	if (cli.json) {
		json_t *o = json_deep_copy(k);
		json_object_set_new(o, "client_secret", secret && secret[0] ? json_string(secret) : json_null());
		cli_print_json(o);
	} else if (is_publishable(k)) {
		printf("Created publishable key %s for account %s.\n\n", jstr(k, "client_id", ""), jstr(k, "account", ""));
		printf("  client_id:     %s\n\n", jstr(k, "client_id", ""));
		printf("It has no secret: pages of its allowed origins obtain tokens with this ID\n"
		       "alone (see the README's embed example). It stays visible in listings.\n\n");
		print_text(k);
	} else {
		printf("Created key %s for account %s.\n\n", jstr(k, "client_id", ""), jstr(k, "account", ""));
		printf("  client_id:     %s\n", jstr(k, "client_id", ""));
		printf("  client_secret: %s\n\n", secret);
		printf("The secret is shown only this once: store it now. It cannot be recovered;\n"
		       "if it is lost, create a new key and delete this one.\n\n");
		print_text(k);
	}
	fflush(stdout);
}

void cli_key_print_rotated(json_t *k, const char *secret)
{
	if (cli.json) {
		json_t *o = json_deep_copy(k);
		json_object_set_new(o, "client_secret", json_string(secret));
		cli_print_json(o);
	} else {
		printf("Rotated the secret of key %s.\n\n", jstr(k, "client_id", ""));
		printf("  client_id:     %s\n", jstr(k, "client_id", ""));
		printf("  client_secret: %s\n\n", secret);
		printf("The new secret is shown only this once: store it now.\n");
		if (jstr(k, "previous_secret_until", NULL))
			printf("The previous secret keeps working until %s, then stops.\n\n",
			       jstr(k, "previous_secret_until", ""));
		else
			printf("The previous secret has stopped working.\n\n");
		print_text(k);
	}
	fflush(stdout);
}

/* A key after a change ("Renamed", ...; NULL for `show`). */
void cli_key_print_changed(json_t *k, const char *verb)
{
	if (cli.json) {
		cli_print_json(json_incref(k));
		return;
	}
	if (verb)
		printf("%s key %s.\n", verb, jstr(k, "client_id", ""));
	print_text(k);
}

void cli_key_print_deleted(const char *id)
{
	if (cli.json) {
		json_t *o = json_object();
		json_object_set_new(o, "client_id", json_string(id));
		json_object_set_new(o, "state", json_string("deleted"));
		cli_print_json(o);
	} else
		printf("Deleted key %s. It no longer appears in listings; the audit log keeps its history.\n", id);
}


void cli_key_print_list(json_t *keys)
{
	if (cli.json)
		cli_print_json(json_incref(keys));
	else
		print_table(keys);
}
