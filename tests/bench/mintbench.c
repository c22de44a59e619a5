/*
 * mintbench - CPU per access token minted by libtokend, by algorithm, without
 * HTTP or a database: what tests/bench/run.sh's token-endpoint figures cost
 * at their core. A benchmark, not a test: it prints figures and exits 0
 * unless a key cannot be made or a mint fails.
 *
 *   mintbench [-s SECONDS] [ALG...]     (ALG: ES256 EdDSA RS256; default all three)
 *
 * Each key is made fresh (tk_signing_key_generate), loaded into a signer and
 * minted with for SECONDS (default 2) on this thread; the figure is this
 * thread's CPU time divided by the tokens minted. The claims are those of a
 * typical token of the token endpoint (one audience, three scopes, env).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tokend/crypto.h>
#include <tokend/signer.h>

static double thread_cpu_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double wall_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int bench(const char *alg, double seconds)
{
	char kid[TK_THUMBPRINT_LEN + 1], err[256];
	char *pub = NULL, *jwk = tk_signing_key_generate(alg, kid, &pub, err, sizeof(err));
	tk_signer *s = NULL;
	tk_minter *m = NULL;
	int rc = 1;

	if (jwk == NULL) {
		fprintf(stderr, "mintbench: %s: %s\n", alg, err);
		return 1;
	}
	s = tk_signer_new();
	if (s == NULL || tk_signer_add_key(s, jwk, strlen(jwk), kid, "bench key", err, sizeof(err)) != 0 ||
	    (m = tk_minter_new(s, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mintbench: %s: %s\n", alg, s ? err : "out of memory");
		goto out;
	}
	const char *aud[] = { "https://api.example.com" };
	tk_token_claims c = { .iss = "https://tokend.example.com", .sub = "tk_live_bench",
	                      .aud = aud, .aud_count = 1, .client_id = "tk_live_bench",
	                      .scope = "orders:read orders:write invoices:read", .acct = "acct_bench",
	                      .env = "live" };
	unsigned long n = 0;
	double w0 = wall_s(), c0 = thread_cpu_s();
	while (wall_s() - w0 < seconds) {
		for (int i = 0; i < 100; i++, n++) {
			c.iat = 1767225600 + (int64_t)(n % 1000);
			c.exp = c.iat + 300;
			if (tk_minter_mint_ref(m, &c, NULL, NULL, err, sizeof(err)) == NULL) {
				fprintf(stderr, "mintbench: %s: %s\n", alg, err);
				goto out;
			}
		}
	}
	double cpu = thread_cpu_s() - c0;
	printf("MINT alg=%s tokens=%lu cpu_s=%.3f us_per_token=%.2f\n", alg, n, cpu, cpu * 1e6 / (double)n);
	rc = 0;
out:
	tk_minter_free(m);
	tk_signer_free(s);
	tk_wipe(jwk, strlen(jwk));
	free(jwk);
	free(pub);
	return rc;
}

int main(int argc, char **argv)
{
	double seconds = 2;
	int i = 1, rc = 0;

	if (argc > 2 && strcmp(argv[1], "-s") == 0) {
		char *end;
		seconds = strtod(argv[2], &end);
		if (*end != '\0' || !(seconds > 0 && seconds <= 600)) {
			fprintf(stderr, "mintbench: -s wants seconds in (0, 600]\n");
			return 2;
		}
		i = 3;
	}
	if (i == argc) {
		static const char *all[] = { "ES256", "EdDSA", "RS256" };
		for (int k = 0; k < 3; k++)
			rc |= bench(all[k], seconds);
		return rc;
	}
	for (; i < argc; i++)
		rc |= bench(argv[i], seconds);
	return rc;
}
