/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Access tokens: which client may do what to which index.
 *
 * A client sends its token as call metadata, "authorization: Bearer <token>". The tokens file
 * names each client, its token, the indexes it may use and what it may do with them:
 *
 *   # <client> <token> <indexes> [<rights>]
 *   storage-a  5c1e0d9a7f3b42e8a1d6  vol-a,scratch-*   advice,stats
 *   operator   0b8f2e6c4d1a9f7e3c5b  *                 advice,stats,manage
 *
 * <indexes> is a comma-separated list of names; a name ending in '*' covers every name with
 * that prefix, and '*' alone every index (and the server-wide operations: saving every index).
 * <rights> is a comma-separated list of advice (the Advice service), stats (GetStats and
 * seeing the index in ListIndexes) and manage (CreateIndex, DropIndex, SaveIndex); the default
 * is advice,stats. Tokens are at least 16 characters; blank lines and '#' comments are ignored.
 *
 * A call without a token, or with one the file does not hold, is UNAUTHENTICATED; a known
 * token without the right for the index is PERMISSION_DENIED. Without a tokens file every
 * client may do everything (for loopback set-ups and tests). The table is swapped whole on
 * reload (SIGHUP), under a reader-writer lock that checks take shared.
 */
#ifndef UDS_INDEXD_ACCESS_H
#define UDS_INDEXD_ACCESS_H

#include <stdbool.h>
#include <stddef.h>

enum access_right {
	ACCESS_ADVICE = 1,
	ACCESS_STATS = 2,
	ACCESS_MANAGE = 4,
};

enum access_verdict {
	ACCESS_GRANTED,
	/* No token, or an unknown one. */
	ACCESS_UNAUTHENTICATED,
	/* A known client without the right. */
	ACCESS_DENIED,
};

struct access_control;

/**
 * access_open() - Load the tokens file at @path, or allow everything if @path is NULL.
 *
 * Return: DD_SUCCESS, or an error (logged with the file's line) if the file is unreadable or
 *         malformed.
 */
int access_open(const char *path, struct access_control **access_ptr);

/**
 * access_reload() - Read the tokens file again. A file that cannot be read or parsed leaves the
 *                   current table in force.
 *
 * Return: DD_SUCCESS or the error (logged).
 */
int access_reload(struct access_control *access);

/** access_close() - Free the table. */
void access_close(struct access_control *access);

/** access_enabled() - Whether tokens are checked at all. */
bool access_enabled(const struct access_control *access);

/**
 * access_check() - May the caller who sent @authorization (the metadata value, @length bytes,
 *                  not NUL-terminated; NULL if absent) use @rights on @index (NULL: on every
 *                  index)? With no @rights, only whether the token is known.
 */
enum access_verdict access_check(struct access_control *access, const char *authorization,
                                 size_t length, const char *index, unsigned int rights);

#endif /* UDS_INDEXD_ACCESS_H */
