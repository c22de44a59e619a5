/*
 * fuzz_config.c - the configuration file parser, through
 * tk_config_load_text (the code tk_config_load runs on a file).
 *
 * Oracles: a refusal carries a message naming the file (or the defaults or
 * an environment variable); an accepted configuration has every string set,
 * every number within its bounds, consistent lifetimes and a known log
 * level and format; the dump masks the pepper.
 */
#include "fuzz.h"

#include "config.h"

#define NAME "/fuzz/tokend.conf"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* The environment overrides (TOKEND_<KEY>) apply to files too; keep them out. */
	extern char **environ;
	for (size_t i = 0; environ[i];) {
		char name[128];
		size_t n = strcspn(environ[i], "=");
		if (strncmp(environ[i], "TOKEND_", 7) == 0 && n < sizeof(name)) {
			memcpy(name, environ[i], n);
			name[n] = '\0';
			unsetenv(name);
			continue;          /* environ shifted: look at slot i again */
		}
		i++;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tk_config cfg;
	char err[512];
	char *text = malloc(size ? size : 1);   /* exact size, for ASan */
	if (!text)
		abort();
	if (size)
		memcpy(text, data, size);
	memset(err, 'x', sizeof(err));

	int rc = tk_config_load_text(&cfg, NAME, text, size, err, sizeof err);
	FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc != 0) {
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		FUZZ_CHECK(strncmp(err, NAME, strlen(NAME)) == 0 || strncmp(err, "(defaults)", 10) == 0);
		FUZZ_CHECK(cfg.path == NULL && cfg.pepper == NULL && cfg.database_url == NULL);
		free(text);
		return 0;
	}

	FUZZ_CHECK(cfg.path && strcmp(cfg.path, NAME) == 0);
	FUZZ_CHECK(cfg.database_url && cfg.pepper && cfg.pepper_file && cfg.listen_address &&
	           cfg.admin_listen_address && cfg.issuer && cfg.signing_keys &&
	           cfg.signing_key_active && cfg.default_audience && cfg.log_level && cfg.log_format);
	FUZZ_CHECK(cfg.listen_port >= 0 && cfg.listen_port <= 65535);
	FUZZ_CHECK(cfg.admin_listen_port >= 0 && cfg.admin_listen_port <= 65535);
	FUZZ_CHECK(cfg.workers >= 1 && cfg.workers <= 64);
	FUZZ_CHECK(cfg.token_lifetime >= 1 && cfg.token_lifetime <= cfg.token_lifetime_max &&
	           cfg.token_lifetime_max <= 86400);
	FUZZ_CHECK(cfg.max_body_size >= 256 && cfg.max_header_size >= 1024);
	FUZZ_CHECK(cfg.db_timeout >= 1 && cfg.db_timeout <= 60);
	FUZZ_CHECK(strncmp(cfg.issuer, "http://", 7) == 0 || strncmp(cfg.issuer, "https://", 8) == 0);
	FUZZ_CHECK(strcmp(cfg.log_format, "text") == 0 || strcmp(cfg.log_format, "json") == 0);

	/* The dump never shows the pepper. */
	char *dump = NULL;
	size_t dlen = 0;
	FILE *f = open_memstream(&dump, &dlen);
	FUZZ_CHECK(f != NULL);
	FUZZ_CHECK(tk_config_dump(&cfg, f, 0) == 0);
	fclose(f);
	const char *line = strstr(dump, "\npepper = ");
	FUZZ_CHECK(line != NULL);
	line += strlen("\npepper = ");
	FUZZ_CHECK(strncmp(line, cfg.pepper[0] ? "********\n" : "\n", cfg.pepper[0] ? 9 : 1) == 0);
	free(dump);
	/* The JSON form is made from the same masked texts. */
	dump = NULL;
	f = open_memstream(&dump, &dlen);
	FUZZ_CHECK(f != NULL);
	FUZZ_CHECK(tk_config_dump(&cfg, f, 1) == 0);
	fclose(f);
	FUZZ_CHECK(cfg.pepper[0] == '\0' || strstr(dump, "\"pepper\": {\n      \"value\": \"********\"") != NULL);
	free(dump);

	/* Relative paths resolve against the file's directory. */
	char *r = tk_config_resolve(&cfg, "key.pem");
	FUZZ_CHECK(r && strcmp(r, "/fuzz/key.pem") == 0);
	free(r);

	tk_config_free(&cfg);
	free(text);
	return 0;
}
