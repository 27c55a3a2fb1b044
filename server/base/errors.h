/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * One error scheme for the whole project.
 *
 * Every function that can fail returns an int: 0 (DD_SUCCESS) on success, otherwise either a
 * positive errno value (from a failed system call) or one of the project codes below. The project
 * codes live in a block above the errno range so that the two never overlap, and dd_strerror()
 * names both. Results come back through a trailing pointer argument. Translation to gRPC status,
 * SCSI sense data or NBD errors happens only at the edges of the system.
 */
#ifndef DD_ERRORS_H
#define DD_ERRORS_H

#include <stddef.h>

#define DD_MUST_CHECK __attribute__((warn_unused_result))

enum {
	DD_SUCCESS = 0,
	/* First project code; errno values stay below it. */
	DD_ERROR_BASE = 1024,
	/* Data read from disk or the wire failed validation. */
	DD_CORRUPT_DATA = DD_ERROR_BASE,
	/* A checksum did not match the data it covers. */
	DD_CHECKSUM_MISMATCH,
	/* A structure carries a magic number that is not the expected one. */
	DD_BAD_MAGIC,
	/* A structure carries a format version this build does not read. */
	DD_UNSUPPORTED_VERSION,
	/* A fixed-size structure has no room for what was asked of it. */
	DD_OVERFLOW,
	/* An argument is out of its documented range. */
	DD_INVALID_ARGUMENT,
	/* The object is not in a state that allows the operation. */
	DD_BAD_STATE,
	/* An internal consistency check failed. */
	DD_ASSERTION_FAILED,
	/* The name is already present as a collision entry. */
	DD_DUPLICATE_NAME,
	/* A stream ended before the data that was expected. */
	DD_END_OF_FILE,
	/* A value or position lies outside the allowed range. */
	DD_OUT_OF_RANGE,
	/* The operation did not finish in the time allowed. */
	DD_TIMED_OUT,
	/* The operation was queued and will complete later. */
	DD_QUEUED,
	/* The target is read-only after an unrecoverable error. */
	DD_READ_ONLY,
	/* One past the last project code. */
	DD_ERROR_LIMIT,
};

/**
 * dd_strerror() - Describe an error code.
 * @error: 0, an errno value or a project code.
 *
 * Return: a constant string that names the error; never NULL. Thread-safe.
 */
const char *dd_strerror(int error);

/**
 * dd_error_name() - Give the symbolic name of an error code ("DD_CORRUPT_DATA", "ENOMEM").
 * @error: 0, an errno value or a project code.
 *
 * Return: a constant string; never NULL. Thread-safe.
 */
const char *dd_error_name(int error);

/**
 * dd_is_project_error() - Tell whether a code belongs to the project's block of codes.
 * @error: the code to test.
 */
static inline int dd_is_project_error(int error)
{
	return (error >= DD_ERROR_BASE) && (error < DD_ERROR_LIMIT);
}

#endif /* DD_ERRORS_H */
