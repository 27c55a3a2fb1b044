// SPDX-License-Identifier: GPL-2.0-only
/*
 * Allocation through jemalloc or libc; see memory-alloc.h.
 *
 * The usable size of every block is added to a counter when it is allocated and subtracted when
 * it is freed, using malloc_usable_size(), which both allocators (and the sanitizers) provide.
 * The counters are relaxed atomics: they are statistics, not synchronization.
 */
#include "memory-alloc.h"

#include <errno.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "logger.h"

static _Atomic size_t bytes_in_use;
static _Atomic size_t peak_bytes_in_use;
/* What this thread allocated less what it freed (it may free what others allocated). */
static _Thread_local int64_t thread_balance;

static void account_allocation(void *pointer)
{
	size_t size = malloc_usable_size(pointer);
	size_t now;

	thread_balance += (int64_t) size;
	now = atomic_fetch_add_explicit(&bytes_in_use, size, memory_order_relaxed) + size;
	size_t peak = atomic_load_explicit(&peak_bytes_in_use, memory_order_relaxed);

	while ((now > peak) &&
	       !atomic_compare_exchange_weak_explicit(&peak_bytes_in_use, &peak, now,
	                                              memory_order_relaxed, memory_order_relaxed))
		;
}

static int finish_allocation(void *memory, size_t size, const char *what, void *ptr)
{
	if (memory == NULL)
		return dd_log_error_strerror(ENOMEM, "cannot allocate %zu bytes for %s", size,
		                             what);
	account_allocation(memory);
	*(void **) ptr = memory;
	return DD_SUCCESS;
}

int dd_allocate(size_t size, const char *what, void *ptr)
{
	return finish_allocation(calloc(1, (size > 0) ? size : 1), size, what, ptr);
}

int dd_allocate_uninitialized(size_t size, const char *what, void *ptr)
{
	return finish_allocation(malloc((size > 0) ? size : 1), size, what, ptr);
}

int dd_allocate_array(size_t count, size_t size, const char *what, void *ptr)
{
	if ((size != 0) && (count > SIZE_MAX / size))
		return dd_log_error_strerror(ENOMEM, "%zu x %zu bytes for %s overflows", count,
		                             size, what);
	return dd_allocate(count * size, what, ptr);
}

int dd_allocate_aligned(size_t size, size_t alignment, const char *what, void *ptr)
{
	void *memory = NULL;

	if ((alignment == 0) || ((alignment & (alignment - 1)) != 0) ||
	    (alignment < sizeof(void *)))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "bad alignment %zu for %s",
		                             alignment, what);
	if (size == 0)
		size = 1;
	if (posix_memalign(&memory, alignment, size) != 0)
		memory = NULL;
	if (memory != NULL)
		memset(memory, 0, size);
	return finish_allocation(memory, size, what, ptr);
}

int dd_duplicate(const void *source, size_t size, const char *what, void *ptr)
{
	void *copy = NULL;
	int result = dd_allocate(size, what, &copy);

	if (result != DD_SUCCESS)
		return result;
	if (size > 0)
		memcpy(copy, source, size);
	*(void **) ptr = copy;
	return DD_SUCCESS;
}

void dd_free(void *pointer)
{
	size_t size;

	if (pointer == NULL)
		return;
	size = malloc_usable_size(pointer);
	thread_balance -= (int64_t) size;
	atomic_fetch_sub_explicit(&bytes_in_use, size, memory_order_relaxed);
	free(pointer);
}

size_t dd_memory_in_use(void)
{
	return atomic_load_explicit(&bytes_in_use, memory_order_relaxed);
}

int64_t dd_thread_memory_balance(void)
{
	return thread_balance;
}

size_t dd_memory_peak(void)
{
	return atomic_load_explicit(&peak_bytes_in_use, memory_order_relaxed);
}

const char *dd_allocator_name(void)
{
#ifdef DD_USE_JEMALLOC
	return "jemalloc";
#else
	return "libc";
#endif
}
