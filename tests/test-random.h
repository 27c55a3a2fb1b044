/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Deterministic random numbers and record names for the unit tests (splitmix64). Each test file
 * gets its own state; a test sets random_state to choose its sequence.
 */
#ifndef DD_TEST_RANDOM_H
#define DD_TEST_RANDOM_H

#include <stdint.h>
#include <string.h>

#include "record-name.h"

static uint64_t random_state;

/* The next 64 random bits. */
static inline uint64_t next_random(void)
{
	uint64_t z = (random_state += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* A random number in [0, limit). */
static inline uint32_t random_below(uint64_t limit)
{
	return (uint32_t) (next_random() % limit);
}

/* A random record name. */
static inline void random_name(struct dd_record_name *name)
{
	uint64_t a = next_random();
	uint64_t b = next_random();

	memcpy(name->name, &a, sizeof(a));
	memcpy(name->name + 8, &b, sizeof(b));
}

#endif /* DD_TEST_RANDOM_H */
