/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Logging with levels, to stderr.
 *
 * Each message is formatted into one buffer and written with a single write(2), so lines from
 * different threads never interleave. A line carries a wall-clock timestamp, the level, the name
 * of the thread (set with dd_log_set_thread_name()) and the message. The level is chosen by
 * dd_log_set_level() or, before the first call to it, by the DD_LOG_LEVEL environment variable
 * ("error", "warning", "info", "debug"); the default is "info".
 */
#ifndef DD_LOGGER_H
#define DD_LOGGER_H

#include "errors.h"

enum dd_log_level {
	DD_LOG_ERROR = 0,
	DD_LOG_WARNING = 1,
	DD_LOG_INFO = 2,
	DD_LOG_DEBUG = 3,
};

/** dd_log_set_level() - Log messages at @level and more severe ones; drop the rest. */
void dd_log_set_level(enum dd_log_level level);

/** dd_log_get_level() - The current level. */
enum dd_log_level dd_log_get_level(void);

/**
 * dd_log_parse_level() - Turn "error", "warning", "info" or "debug" into a level.
 * @name: the level's name (case-insensitive).
 * @level_ptr: receives the level.
 *
 * Return: DD_SUCCESS or DD_INVALID_ARGUMENT for an unknown name.
 */
int DD_MUST_CHECK dd_log_parse_level(const char *name, enum dd_log_level *level_ptr);

/** dd_log_set_thread_name() - Name the calling thread in its log lines (copied, truncated). */
void dd_log_set_thread_name(const char *name);

/** dd_log_is_enabled() - Tell whether a message at @level would be written. */
int dd_log_is_enabled(enum dd_log_level level);

/** dd_log_message() - Log a printf-style message at @level. */
void dd_log_message(enum dd_log_level level, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/**
 * dd_log_strerror() - Log a message followed by the description of @error.
 *
 * Return: @error, so that the caller can write "return dd_log_strerror(...)".
 */
int dd_log_strerror(enum dd_log_level level, int error, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

#define dd_log_error(...)                   dd_log_message(DD_LOG_ERROR, __VA_ARGS__)
#define dd_log_warning(...)                 dd_log_message(DD_LOG_WARNING, __VA_ARGS__)
#define dd_log_info(...)                    dd_log_message(DD_LOG_INFO, __VA_ARGS__)
#define dd_log_debug(...)                   dd_log_message(DD_LOG_DEBUG, __VA_ARGS__)
#define dd_log_error_strerror(error, ...)   dd_log_strerror(DD_LOG_ERROR, error, __VA_ARGS__)
#define dd_log_warning_strerror(error, ...) dd_log_strerror(DD_LOG_WARNING, error, __VA_ARGS__)

#endif /* DD_LOGGER_H */
