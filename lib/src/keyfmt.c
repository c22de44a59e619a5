/*
 * keyfmt.c - generation and checking of API key IDs and secrets.
 *
 * Layout (see keyfmt.h):  prefix | random base62 body | 6-char base62 CRC32
 *
 * The body is drawn from the CSPRNG by rejection sampling: a random byte b is
 * used only if b < 248 (= 4 * 62) and then maps to ALPHABET[b % 62], so every
 * base62 character is exactly equally likely. The checksum is CRC-32 of the
 * prefix and body, written as exactly six base62 digits, most significant
 * first, zero-padded (62^6 > 2^32, so every CRC has exactly one encoding).
 *
 * The checkers look at the length first, then the prefix, then the charset,
 * then the checksum, and never read outside s[0..len).
 */
#include "tokend/keyfmt.h"
#include "tokend/crypto.h"
#include "internal.h"

#include <string.h>

static const char ALPHABET[62] =
	"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* Largest multiple of 62 that fits in a byte: bytes >= this are rejected. */
#define REJECT_AT 248

/*
 * CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), byte-at-a-time.
 * table[i] is the CRC register after shifting the byte i through eight
 * rounds of: c = (c & 1) ? (c >> 1) ^ 0xEDB88320 : c >> 1.
 */
static const uint32_t CRC_TABLE[256] = {
	0x00000000U, 0x77073096U, 0xee0e612cU, 0x990951baU, 0x076dc419U, 0x706af48fU,
	0xe963a535U, 0x9e6495a3U, 0x0edb8832U, 0x79dcb8a4U, 0xe0d5e91eU, 0x97d2d988U,
	0x09b64c2bU, 0x7eb17cbdU, 0xe7b82d07U, 0x90bf1d91U, 0x1db71064U, 0x6ab020f2U,
	0xf3b97148U, 0x84be41deU, 0x1adad47dU, 0x6ddde4ebU, 0xf4d4b551U, 0x83d385c7U,
	0x136c9856U, 0x646ba8c0U, 0xfd62f97aU, 0x8a65c9ecU, 0x14015c4fU, 0x63066cd9U,
	0xfa0f3d63U, 0x8d080df5U, 0x3b6e20c8U, 0x4c69105eU, 0xd56041e4U, 0xa2677172U,
	0x3c03e4d1U, 0x4b04d447U, 0xd20d85fdU, 0xa50ab56bU, 0x35b5a8faU, 0x42b2986cU,
	0xdbbbc9d6U, 0xacbcf940U, 0x32d86ce3U, 0x45df5c75U, 0xdcd60dcfU, 0xabd13d59U,
	0x26d930acU, 0x51de003aU, 0xc8d75180U, 0xbfd06116U, 0x21b4f4b5U, 0x56b3c423U,
	0xcfba9599U, 0xb8bda50fU, 0x2802b89eU, 0x5f058808U, 0xc60cd9b2U, 0xb10be924U,
	0x2f6f7c87U, 0x58684c11U, 0xc1611dabU, 0xb6662d3dU, 0x76dc4190U, 0x01db7106U,
	0x98d220bcU, 0xefd5102aU, 0x71b18589U, 0x06b6b51fU, 0x9fbfe4a5U, 0xe8b8d433U,
	0x7807c9a2U, 0x0f00f934U, 0x9609a88eU, 0xe10e9818U, 0x7f6a0dbbU, 0x086d3d2dU,
	0x91646c97U, 0xe6635c01U, 0x6b6b51f4U, 0x1c6c6162U, 0x856530d8U, 0xf262004eU,
	0x6c0695edU, 0x1b01a57bU, 0x8208f4c1U, 0xf50fc457U, 0x65b0d9c6U, 0x12b7e950U,
	0x8bbeb8eaU, 0xfcb9887cU, 0x62dd1ddfU, 0x15da2d49U, 0x8cd37cf3U, 0xfbd44c65U,
	0x4db26158U, 0x3ab551ceU, 0xa3bc0074U, 0xd4bb30e2U, 0x4adfa541U, 0x3dd895d7U,
	0xa4d1c46dU, 0xd3d6f4fbU, 0x4369e96aU, 0x346ed9fcU, 0xad678846U, 0xda60b8d0U,
	0x44042d73U, 0x33031de5U, 0xaa0a4c5fU, 0xdd0d7cc9U, 0x5005713cU, 0x270241aaU,
	0xbe0b1010U, 0xc90c2086U, 0x5768b525U, 0x206f85b3U, 0xb966d409U, 0xce61e49fU,
	0x5edef90eU, 0x29d9c998U, 0xb0d09822U, 0xc7d7a8b4U, 0x59b33d17U, 0x2eb40d81U,
	0xb7bd5c3bU, 0xc0ba6cadU, 0xedb88320U, 0x9abfb3b6U, 0x03b6e20cU, 0x74b1d29aU,
	0xead54739U, 0x9dd277afU, 0x04db2615U, 0x73dc1683U, 0xe3630b12U, 0x94643b84U,
	0x0d6d6a3eU, 0x7a6a5aa8U, 0xe40ecf0bU, 0x9309ff9dU, 0x0a00ae27U, 0x7d079eb1U,
	0xf00f9344U, 0x8708a3d2U, 0x1e01f268U, 0x6906c2feU, 0xf762575dU, 0x806567cbU,
	0x196c3671U, 0x6e6b06e7U, 0xfed41b76U, 0x89d32be0U, 0x10da7a5aU, 0x67dd4accU,
	0xf9b9df6fU, 0x8ebeeff9U, 0x17b7be43U, 0x60b08ed5U, 0xd6d6a3e8U, 0xa1d1937eU,
	0x38d8c2c4U, 0x4fdff252U, 0xd1bb67f1U, 0xa6bc5767U, 0x3fb506ddU, 0x48b2364bU,
	0xd80d2bdaU, 0xaf0a1b4cU, 0x36034af6U, 0x41047a60U, 0xdf60efc3U, 0xa867df55U,
	0x316e8eefU, 0x4669be79U, 0xcb61b38cU, 0xbc66831aU, 0x256fd2a0U, 0x5268e236U,
	0xcc0c7795U, 0xbb0b4703U, 0x220216b9U, 0x5505262fU, 0xc5ba3bbeU, 0xb2bd0b28U,
	0x2bb45a92U, 0x5cb36a04U, 0xc2d7ffa7U, 0xb5d0cf31U, 0x2cd99e8bU, 0x5bdeae1dU,
	0x9b64c2b0U, 0xec63f226U, 0x756aa39cU, 0x026d930aU, 0x9c0906a9U, 0xeb0e363fU,
	0x72076785U, 0x05005713U, 0x95bf4a82U, 0xe2b87a14U, 0x7bb12baeU, 0x0cb61b38U,
	0x92d28e9bU, 0xe5d5be0dU, 0x7cdcefb7U, 0x0bdbdf21U, 0x86d3d2d4U, 0xf1d4e242U,
	0x68ddb3f8U, 0x1fda836eU, 0x81be16cdU, 0xf6b9265bU, 0x6fb077e1U, 0x18b74777U,
	0x88085ae6U, 0xff0f6a70U, 0x66063bcaU, 0x11010b5cU, 0x8f659effU, 0xf862ae69U,
	0x616bffd3U, 0x166ccf45U, 0xa00ae278U, 0xd70dd2eeU, 0x4e048354U, 0x3903b3c2U,
	0xa7672661U, 0xd06016f7U, 0x4969474dU, 0x3e6e77dbU, 0xaed16a4aU, 0xd9d65adcU,
	0x40df0b66U, 0x37d83bf0U, 0xa9bcae53U, 0xdebb9ec5U, 0x47b2cf7fU, 0x30b5ffe9U,
	0xbdbdf21cU, 0xcabac28aU, 0x53b39330U, 0x24b4a3a6U, 0xbad03605U, 0xcdd70693U,
	0x54de5729U, 0x23d967bfU, 0xb3667a2eU, 0xc4614ab8U, 0x5d681b02U, 0x2a6f2b94U,
	0xb40bbe37U, 0xc30c8ea1U, 0x5a05df1bU, 0x2d02ef8dU,
};

uint32_t tk_crc32(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint32_t c = 0xffffffffU;

	for (size_t i = 0; i < len; i++)
		c = CRC_TABLE[(c ^ p[i]) & 0xffU] ^ (c >> 8);
	return c ^ 0xffffffffU;
}

/* Each byte's base62 value plus one; 0: not a base62 digit. */
static const uint8_t B62[256] = {
	TK_R8('0', 1), TK_R2('8', 9),
	TK_R16('A', 11), TK_R8('Q', 27), TK_R2('Y', 35),
	TK_R16('a', 37), TK_R8('q', 53), TK_R2('y', 61),
};

/* Value of a base62 digit, or -1 for any other byte: a table read, no
 * branch on the byte (key IDs and secrets differ at every request). */
static int b62_value(unsigned char c)
{
	return (int)B62[c] - 1;
}

/* Write `crc` as exactly TK_CHECKSUM_LEN base62 digits, most significant first. */
static void checksum_encode(uint32_t crc, char out[TK_CHECKSUM_LEN])
{
	uint32_t v = crc;

	for (int i = TK_CHECKSUM_LEN - 1; i >= 0; i--) {
		out[i] = ALPHABET[v % 62U];
		v /= 62U;
	}
}

/*
 * Fill out[0..n) with uniformly random base62 characters.
 * 0 on success, -1 if the CSPRNG failed (out[0..n) is then wiped).
 */
static int random_base62(char *out, size_t n)
{
	unsigned char pool[64];
	size_t have = 0, used = 0, filled = 0;
	int rc = 0;

	while (filled < n) {
		if (used == have) {
			/* Ask for what is still missing plus a margin for rejects. */
			size_t want = (n - filled) + 8;
			if (want > sizeof(pool))
				want = sizeof(pool);
			if (tk_random_bytes(pool, want) != 0) {
				rc = -1;
				break;
			}
			have = want;
			used = 0;
		}
		unsigned char b = pool[used++];
		if (b >= REJECT_AT)
			continue;
		out[filled++] = ALPHABET[b % 62U];
	}
	tk_wipe(pool, sizeof(pool));
	if (rc != 0)
		tk_wipe(out, n);
	return rc;
}

static tk_keyfmt_status generate(char *out, size_t total, const char *prefix,
                                 size_t prefix_len, size_t body_len)
{
	memcpy(out, prefix, prefix_len);
	if (random_base62(out + prefix_len, body_len) != 0) {
		tk_wipe(out, total + 1);
		out[0] = '\0';
		return TK_KEYFMT_RANDOM;
	}
	checksum_encode(tk_crc32(out, prefix_len + body_len), out + prefix_len + body_len);
	out[total] = '\0';
	return TK_KEYFMT_OK;
}

/* A prefix of n bytes: [a-z][a-z0-9_]*_ with 2 <= n <= TK_PREFIX_MAX. */
static int prefix_ok(const char *p, size_t n)
{
	if (n < 2 || n > TK_PREFIX_MAX || p[0] < 'a' || p[0] > 'z' || p[n - 1] != '_')
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
			return 0;
	return 1;
}

int tk_prefix_valid(const char *p)
{
	return p != NULL && prefix_ok(p, strnlen(p, TK_PREFIX_MAX + 1));
}

tk_keyfmt_status tk_key_id_generate(char out[TK_KEY_ID_LEN + 1])
{
	return generate(out, TK_KEY_ID_LEN, TK_KEY_ID_PREFIX, sizeof(TK_KEY_ID_PREFIX) - 1,
	                TK_KEY_ID_RANDOM);
}

tk_keyfmt_status tk_secret_generate(char out[TK_SECRET_LEN + 1])
{
	return generate(out, TK_SECRET_LEN, TK_SECRET_PREFIX, sizeof(TK_SECRET_PREFIX) - 1,
	                TK_SECRET_RANDOM);
}

/* A key ID or secret under `prefix` (NULL: `fallback`), `nrandom` random characters. */
static tk_keyfmt_status generate_prefixed(const char *prefix, const char *fallback, size_t nrandom, char *out)
{
	if (prefix == NULL)
		prefix = fallback;
	out[0] = '\0';
	if (!tk_prefix_valid(prefix))
		return TK_KEYFMT_PREFIX;
	size_t n = strlen(prefix);
	return generate(out, n + nrandom + TK_CHECKSUM_LEN, prefix, n, nrandom);
}

tk_keyfmt_status tk_key_id_generate_prefixed(const char *prefix, char out[TK_KEY_ID_MAX + 1])
{
	return generate_prefixed(prefix, TK_KEY_ID_PREFIX, TK_KEY_ID_RANDOM, out);
}

tk_keyfmt_status tk_secret_generate_prefixed(const char *prefix, char out[TK_SECRET_MAX + 1])
{
	return generate_prefixed(prefix, TK_SECRET_PREFIX, TK_SECRET_RANDOM, out);
}

/* A value: a valid prefix, then `tail` base62 characters of which the last
 * TK_CHECKSUM_LEN are the CRC of everything before them. */
static tk_keyfmt_status check(const char *s, size_t len, size_t tail)
{
	if (s == NULL || len < tail + 2 || len > tail + TK_PREFIX_MAX)
		return TK_KEYFMT_LENGTH;
	size_t prefix_len = len - tail;
	if (!prefix_ok(s, prefix_len))
		return TK_KEYFMT_PREFIX;
	int bad = 0;                      /* negative once a byte is not base62 */
	for (size_t i = prefix_len; i < len; i++)
		bad |= b62_value((unsigned char)s[i]);
	if (bad < 0)
		return TK_KEYFMT_CHARSET;

	/* Decode the written checksum; six base62 digits fit easily in 64 bits. */
	size_t body_end = len - TK_CHECKSUM_LEN;
	uint64_t written = 0;
	for (size_t i = body_end; i < len; i++)
		written = written * 62U + (uint64_t)b62_value((unsigned char)s[i]);
	if (written != (uint64_t)tk_crc32(s, body_end))
		return TK_KEYFMT_CHECKSUM;
	return TK_KEYFMT_OK;
}

tk_keyfmt_status tk_key_id_check(const char *s, size_t len)
{
	return check(s, len, TK_KEY_ID_RANDOM + TK_CHECKSUM_LEN);
}

tk_keyfmt_status tk_secret_check(const char *s, size_t len)
{
	return check(s, len, TK_SECRET_RANDOM + TK_CHECKSUM_LEN);
}

void tk_secret_hint(const char *secret, char out[TK_HINT_LEN + 1])
{
	/* Only a NUL-terminated well-formed secret gets a hint; anything else
	 * gets "" rather than some other 4 characters of it. */
	size_t n = secret ? strnlen(secret, TK_SECRET_MAX + 1) : 0;
	if (secret == NULL || n > TK_SECRET_MAX || tk_secret_check(secret, n) != TK_KEYFMT_OK) {
		out[0] = '\0';
		return;
	}
	memcpy(out, secret + n - TK_HINT_LEN, TK_HINT_LEN);
	out[TK_HINT_LEN] = '\0';
}

const char *tk_keyfmt_strerror(tk_keyfmt_status st)
{
	switch (st) {
	case TK_KEYFMT_OK:
		return "ok";
	case TK_KEYFMT_LENGTH:
		return "wrong length";
	case TK_KEYFMT_PREFIX:
		return "wrong prefix";
	case TK_KEYFMT_CHARSET:
		return "invalid character";
	case TK_KEYFMT_CHECKSUM:
		return "checksum mismatch";
	case TK_KEYFMT_RANDOM:
		return "random number generator failed";
	}
	return "unknown key format status";
}
