// SPDX-License-Identifier: GPL-2.0-only
/*
 * Error strings for the project's codes and for errno values.
 *
 * The project codes are described by one table indexed by (code - DD_ERROR_BASE). errno values are
 * described by glibc's strerrordesc_np() and strerrorname_np(), which return constant strings and
 * are therefore safe to call from any thread.
 */
#include "errors.h"

#include <string.h>

struct error_info {
	const char *name;
	const char *message;
};

static const struct error_info project_errors[] = {
	{ "DD_CORRUPT_DATA", "Data failed validation" },
	{ "DD_CHECKSUM_MISMATCH", "Checksum mismatch" },
	{ "DD_BAD_MAGIC", "Bad magic number" },
	{ "DD_UNSUPPORTED_VERSION", "Unsupported format version" },
	{ "DD_OVERFLOW", "Structure overflow" },
	{ "DD_INVALID_ARGUMENT", "Invalid argument" },
	{ "DD_BAD_STATE", "Operation not allowed in this state" },
	{ "DD_ASSERTION_FAILED", "Internal assertion failed" },
	{ "DD_DUPLICATE_NAME", "Duplicate name" },
	{ "DD_END_OF_FILE", "Unexpected end of data" },
	{ "DD_OUT_OF_RANGE", "Value out of range" },
	{ "DD_TIMED_OUT", "Timed out" },
	{ "DD_QUEUED", "Operation queued" },
	{ "DD_READ_ONLY", "Read-only after an unrecoverable error" },
};

_Static_assert(sizeof(project_errors) / sizeof(project_errors[0]) == DD_ERROR_LIMIT - DD_ERROR_BASE,
               "every project error code needs a table entry");

static const struct error_info *lookup_project_error(int error)
{
	if (!dd_is_project_error(error))
		return NULL;
	return &project_errors[error - DD_ERROR_BASE];
}

const char *dd_strerror(int error)
{
	const struct error_info *info = lookup_project_error(error);
	const char *message;

	if (error == DD_SUCCESS)
		return "Success";
	if (info != NULL)
		return info->message;
	message = (error > 0) ? strerrordesc_np(error) : NULL;
	return (message != NULL) ? message : "Unknown error";
}

const char *dd_error_name(int error)
{
	const struct error_info *info = lookup_project_error(error);
	const char *name;

	if (error == DD_SUCCESS)
		return "DD_SUCCESS";
	if (info != NULL)
		return info->name;
	name = (error > 0) ? strerrorname_np(error) : NULL;
	return (name != NULL) ? name : "DD_UNKNOWN_ERROR";
}
