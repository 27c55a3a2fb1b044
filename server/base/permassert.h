/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Assertions that return errors.
 *
 * DD_ASSERT() checks a condition the code relies on. When the condition holds it evaluates to
 * DD_SUCCESS at the cost of one predictable branch. When it fails it logs the expression, the
 * place and a printf-style explanation, and evaluates to DD_ASSERTION_FAILED so that the caller
 * can fail the operation instead of crashing the daemon. Setting the environment variable
 * DD_ASSERT_ABORT (tests do) turns failures into abort() for a core dump at the point of failure.
 */
#ifndef DD_PERMASSERT_H
#define DD_PERMASSERT_H

#include "errors.h"

#define dd_likely(x)   __builtin_expect(!!(x), 1)
#define dd_unlikely(x) __builtin_expect(!!(x), 0)

/**
 * dd_assertion_failed() - Report a failed assertion; used by DD_ASSERT().
 *
 * Return: DD_ASSERTION_FAILED (it aborts instead when DD_ASSERT_ABORT is set).
 */
int dd_assertion_failed(const char *expression, const char *file, int line, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

#define DD_ASSERT(condition, ...)          \
	(dd_likely(condition) ? DD_SUCCESS \
	                      : dd_assertion_failed(#condition, __FILE__, __LINE__, __VA_ARGS__))

#endif /* DD_PERMASSERT_H */
