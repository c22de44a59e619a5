/*
 * hash.h - FNV-1a, for the in-memory tables keyed by strings an attacker
 * cannot choose freely (random key IDs) or that bound their chains
 * themselves. 64-bit; callers mask or reduce it.
 */
#ifndef TOKEND_HASH_H
#define TOKEND_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t tk_hash_bytes(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static inline uint64_t tk_hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

#endif
