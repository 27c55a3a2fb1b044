/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Futex wait and wake on a 32-bit atomic word, private to the process.
 *
 * dd_futex_wait() sleeps only while the word still holds @expected; it may also return early
 * (the word changed, a signal, a spurious wake-up), so callers re-check their condition.
 */
#ifndef DD_FUTEX_H
#define DD_FUTEX_H

#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

/** dd_futex_wait() - Sleep while *@word == @expected (or until woken). */
static inline void dd_futex_wait(atomic_uint *word, unsigned int expected)
{
	syscall(SYS_futex, (unsigned int *) word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

/** dd_futex_wake() - Wake one thread sleeping on @word. */
static inline void dd_futex_wake(atomic_uint *word)
{
	syscall(SYS_futex, (unsigned int *) word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

#endif /* DD_FUTEX_H */
