// SPDX-License-Identifier: GPL-2.0-only
/*
 * Logging to stderr; see logger.h for the format.
 *
 * The level is a relaxed atomic read on every call, so that a disabled message costs one load and
 * a compare. The environment variable is consulted once, lazily, by whichever thread logs first.
 */
#include "logger.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

enum {
	LOG_LINE_MAX = 1024,
	THREAD_NAME_MAX = 24,
	LEVEL_UNSET = -1,
};

static _Atomic int current_level = LEVEL_UNSET;
static _Thread_local char thread_name[THREAD_NAME_MAX];

static const char *const level_names[] = { "error", "warning", "info", "debug" };

int dd_log_parse_level(const char *name, enum dd_log_level *level_ptr)
{
	for (int level = DD_LOG_ERROR; level <= DD_LOG_DEBUG; level++) {
		if (strcasecmp(name, level_names[level]) == 0) {
			*level_ptr = (enum dd_log_level) level;
			return DD_SUCCESS;
		}
	}
	return DD_INVALID_ARGUMENT;
}

static int level_from_environment(void)
{
	const char *setting = getenv("DD_LOG_LEVEL");
	enum dd_log_level level = DD_LOG_INFO;

	if ((setting != NULL) && (dd_log_parse_level(setting, &level) != DD_SUCCESS))
		level = DD_LOG_INFO;
	return level;
}

static int load_level(void)
{
	int level = atomic_load_explicit(&current_level, memory_order_relaxed);
	int unset = LEVEL_UNSET;

	if (level != LEVEL_UNSET)
		return level;
	level = level_from_environment();
	if (!atomic_compare_exchange_strong(&current_level, &unset, level))
		level = unset;
	return level;
}

void dd_log_set_level(enum dd_log_level level)
{
	atomic_store_explicit(&current_level, (int) level, memory_order_relaxed);
}

enum dd_log_level dd_log_get_level(void)
{
	return (enum dd_log_level) load_level();
}

int dd_log_is_enabled(enum dd_log_level level)
{
	return (int) level <= load_level();
}

void dd_log_set_thread_name(const char *name)
{
	snprintf(thread_name, sizeof(thread_name), "%s", name);
}

static size_t format_prefix(char *line, size_t size, enum dd_log_level level)
{
	struct timespec now;
	struct tm local;
	int written;

	clock_gettime(CLOCK_REALTIME, &now);
	localtime_r(&now.tv_sec, &local);
	written = snprintf(line, size, "%04d-%02d-%02d %02d:%02d:%02d.%06ld %-7s [%s] ",
	                   local.tm_year + 1900, local.tm_mon + 1, local.tm_mday, local.tm_hour,
	                   local.tm_min, local.tm_sec, now.tv_nsec / 1000, level_names[level],
	                   (thread_name[0] != '\0') ? thread_name : "main");
	return (written < 0) ? 0 : (size_t) written;
}

__attribute__((format(printf, 3, 0))) static void write_line(enum dd_log_level level, int error,
                                                             const char *format, va_list args)
{
	char line[LOG_LINE_MAX];
	size_t length = format_prefix(line, sizeof(line) - 1, level);
	int written;

	if (length < sizeof(line) - 1) {
		written = vsnprintf(line + length, sizeof(line) - 1 - length, format, args);
		length += (written < 0) ? 0 : (size_t) written;
	}
	if ((error != DD_SUCCESS) && (length < sizeof(line) - 1)) {
		written = snprintf(line + length, sizeof(line) - 1 - length, ": %s (%s)",
		                   dd_strerror(error), dd_error_name(error));
		length += (written < 0) ? 0 : (size_t) written;
	}
	if (length > sizeof(line) - 2)
		length = sizeof(line) - 2;
	line[length++] = '\n';
	/* A failed write to stderr has nowhere to be reported. */
	if (write(STDERR_FILENO, line, length) < 0)
		return;
}

void dd_log_message(enum dd_log_level level, const char *format, ...)
{
	va_list args;

	if (!dd_log_is_enabled(level))
		return;
	va_start(args, format);
	write_line(level, DD_SUCCESS, format, args);
	va_end(args);
}

int dd_log_strerror(enum dd_log_level level, int error, const char *format, ...)
{
	va_list args;

	if (!dd_log_is_enabled(level))
		return error;
	va_start(args, format);
	write_line(level, error, format, args);
	va_end(args);
	return error;
}
