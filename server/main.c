/*
 * main.c - the tokend binary: wires the command line to the server and the
 * operator commands. Nothing else lives here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "serve.h"

#ifndef TOKEND_VERSION
#define TOKEND_VERSION "0.1.0"
#endif

static const char usage[] =
	"usage: tokend [--config FILE] [--json] COMMAND [ARGS]\n"
	"\n"
	"An OAuth 2.0 client-credentials token server.\n"
	"\n"
	"Commands:\n"
	"  serve                 Run the server (token endpoint, JWKS, metadata, health).\n"
	"  migrate               Apply the database migrations (idempotent).\n"
	"  account ...           Accounts: create, list, show, set-limit, disable, enable.\n"
	"  scope ...             The scope catalogue: add, list.\n"
	"  role ...              The role catalogue (named scope sets): add, update, list, show.\n"
	"  signing-key ...       Signing keys kept in PostgreSQL: generate, list, retire, rewrap.\n"
	"  member ...            An account's members (member keys): add, list, show, deactivate.\n"
	"  key ...               API keys: create, list, show, rename, disable, enable,\n"
	"                        revoke, delete.\n"
	"  config                Print the effective configuration (secrets masked).\n"
	"  verify ...            Verify an access token against a JWKS and print its claims.\n"
	"\n"
	"Remote mode: with --url URL (or $TOKEND_URL) key, account list|show, scope list,\n"
	"role list|show and member commands run over a server's admin API (credentials:\n"
	"$TOKEND_CLIENT_ID, $TOKEND_CLIENT_SECRET; see `tokend key --help`).\n"
	"\n"
	"Global options (accepted before or after the command):\n"
	"  --config FILE         configuration file (default: $TOKEND_CONFIG, else none)\n"
	"  --json                machine-readable output\n"
	"  --help, -h            help; `tokend COMMAND --help` for a command\n"
	"  --version             print the version\n"
	"\n"
	"Environment: every setting can be given as TOKEND_<KEY> (e.g. TOKEND_LISTEN_PORT,\n"
	"TOKEND_DATABASE_URL, TOKEND_PEPPER_FILE); the environment overrides the file.\n"
	"Exit status: 0 done, 1 refused (with a one-line reason), 2 usage error.\n";

/* Remove the global options (--config FILE, --config=FILE, --json) from argv,
 * wherever they stand before a "--". Returns the new argc. */
static int take_global_options(int argc, char **argv)
{
	int out = 1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < argc)
				argv[out++] = argv[i++];
			break;
		}
		if (strcmp(argv[i], "--config") == 0) {
			if (i + 1 >= argc)
				cli_fail(CLI_USAGE, "--config needs a file name");
			cli.config_path = argv[++i];
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			cli.config_path = argv[i] + 9;
		} else if (strcmp(argv[i], "--json") == 0) {
			cli.json = 1;
		} else {
			argv[out++] = argv[i];
		}
	}
	argv[out] = NULL;
	return out;
}

int main(int argc, char **argv)
{
	json_object_seed(0);
	argc = take_global_options(argc, argv);
	if (!cli.config_path) {
		const char *env = getenv("TOKEND_CONFIG");
		if (env && *env)
			cli.config_path = env;
	}
	if (argc < 2) {
		fputs(usage, stderr);
		return CLI_USAGE;
	}
	const char *cmd = argv[1];
	int rc;
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		fputs(usage, stdout);
		return CLI_OK;
	}
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
		printf("tokend %s\n", TOKEND_VERSION);
		return CLI_OK;
	}
	if (strcmp(cmd, "serve") == 0)
		rc = tk_serve_main(argc - 1, argv + 1);
	else if (strcmp(cmd, "migrate") == 0)
		rc = cli_migrate(argc - 1, argv + 1);
	else if (strcmp(cmd, "account") == 0)
		rc = cli_account(argc - 1, argv + 1);
	else if (strcmp(cmd, "scope") == 0)
		rc = cli_scope(argc - 1, argv + 1);
	else if (strcmp(cmd, "role") == 0)
		rc = cli_role(argc - 1, argv + 1);
	else if (strcmp(cmd, "member") == 0)
		rc = cli_member(argc - 1, argv + 1);
	else if (strcmp(cmd, "key") == 0)
		rc = cli_key(argc - 1, argv + 1);
	else if (strcmp(cmd, "verify") == 0)
		rc = cli_verify(argc - 1, argv + 1);
	else if (strcmp(cmd, "signing-key") == 0)
		rc = cli_signkey(argc - 1, argv + 1);
	else if (strcmp(cmd, "config") == 0) {
		if (cli_wants_help(argc - 1, argv + 1)) {
			printf("usage: tokend [--json] config\n\nPrint the effective configuration, secrets and "
			       "database passwords masked,\nand where each value came from (the environment "
			       "TOKEND_<KEY> overrides the\nfile, which overrides the defaults). --json: one "
			       "JSON object.\n");
			return CLI_OK;
		}
		if (tk_config_dump(cli_config(), stdout, cli.json) != 0)
			cli_fail(CLI_REFUSED, "out of memory while printing the configuration");
		rc = CLI_OK;
	} else {
		fprintf(stderr, "tokend: unknown command '%.40s'\n\n%s", cmd, usage);
		return CLI_USAGE;
	}
	fflush(stdout);
	if (cli.db)
		PQfinish(cli.db);
	if (cli.cfg_loaded)
		tk_config_free(&cli.cfg);
	return rc;
}
