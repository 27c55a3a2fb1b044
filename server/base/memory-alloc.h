/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The one allocation wrapper of the project.
 *
 * All long-lived memory goes through these calls. The allocator behind them is chosen at build
 * time: jemalloc when USE_JEMALLOC is on (Debian's jemalloc replaces malloc when linked), libc
 * under the sanitizers so that they can watch every allocation. The wrapper zeroes new memory,
 * checks size arithmetic for overflow, logs what failed to allocate, and keeps a count of the
 * bytes it has handed out so that benchmarks and stats can report memory per record. Hot paths
 * do not allocate: they use pools built at start-up.
 */
#ifndef DD_MEMORY_ALLOC_H
#define DD_MEMORY_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"

/**
 * dd_allocate() - Allocate zeroed memory.
 * @size: bytes wanted (0 gives a valid, freeable pointer).
 * @what: what the memory is for, named in the log if the allocation fails.
 * @ptr: a pointer to the pointer that receives the memory (void ** in disguise).
 *
 * Return: DD_SUCCESS or ENOMEM.
 */
int DD_MUST_CHECK dd_allocate(size_t size, const char *what, void *ptr);

/**
 * dd_allocate_uninitialized() - Allocate memory whose contents are undefined, for large buffers
 *                               the caller fills at once (zeroing them can cost the allocator
 *                               a purge and a page fault per page).
 *
 * Return: DD_SUCCESS or ENOMEM.
 */
int DD_MUST_CHECK dd_allocate_uninitialized(size_t size, const char *what, void *ptr);

/**
 * dd_allocate_array() - Allocate a zeroed array of @count elements of @size bytes.
 *
 * Return: DD_SUCCESS, or ENOMEM when the allocation fails or count * size overflows.
 */
int DD_MUST_CHECK dd_allocate_array(size_t count, size_t size, const char *what, void *ptr);

/**
 * dd_allocate_aligned() - Allocate zeroed memory aligned to @alignment (a power of two).
 *
 * Return: DD_SUCCESS, DD_INVALID_ARGUMENT for a bad alignment, or ENOMEM.
 */
int DD_MUST_CHECK dd_allocate_aligned(size_t size, size_t alignment, const char *what, void *ptr);

/**
 * dd_duplicate() - Allocate a copy of @size bytes at @source.
 *
 * Return: DD_SUCCESS or ENOMEM.
 */
int DD_MUST_CHECK dd_duplicate(const void *source, size_t size, const char *what, void *ptr);

/** dd_free() - Free memory from this wrapper; NULL is accepted and ignored. */
void dd_free(void *pointer);

/** dd_memory_in_use() - Bytes currently allocated through this wrapper (usable sizes). */
size_t dd_memory_in_use(void);

/**
 * dd_thread_memory_balance() - Bytes the calling thread has allocated through this wrapper less
 *                              the bytes it has freed. The change across a piece of work is what
 *                              that work kept allocated, whatever other threads did meanwhile.
 */
int64_t dd_thread_memory_balance(void);

/** dd_memory_peak() - The largest value dd_memory_in_use() has had. */
size_t dd_memory_peak(void);

/** dd_allocator_name() - "jemalloc" or "libc". */
const char *dd_allocator_name(void);

/* Allocate an array of @count objects of @type: DD_ALLOCATE(n, struct foo, "foos", &foos). */
#define DD_ALLOCATE(count, type, what, ptr) dd_allocate_array((count), sizeof(type), (what), (ptr))

/* Free a pointer and set it to NULL. */
#define DD_FREE_AND_NULL(pointer) \
	do {                      \
		dd_free(pointer); \
		(pointer) = NULL; \
	} while (0)

#endif /* DD_MEMORY_ALLOC_H */
