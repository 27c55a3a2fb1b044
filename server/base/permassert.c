// SPDX-License-Identifier: GPL-2.0-only
/*
 * The slow path of DD_ASSERT(): log, then return an error or abort.
 */
#include "permassert.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "logger.h"

int dd_assertion_failed(const char *expression, const char *file, int line, const char *format, ...)
{
	char explanation[512];
	va_list args;

	va_start(args, format);
	vsnprintf(explanation, sizeof(explanation), format, args);
	va_end(args);
	dd_log_error("assertion \"%s\" failed at %s:%d: %s", expression, file, line, explanation);
	if (getenv("DD_ASSERT_ABORT") != NULL)
		abort();
	return DD_ASSERTION_FAILED;
}
