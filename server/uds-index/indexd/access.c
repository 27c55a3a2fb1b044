// SPDX-License-Identifier: GPL-2.0-only
/*
 * The tokens table; see access.h.
 *
 * A table is an array of clients, each with its token, its XXH64 (to find a candidate without
 * comparing every token) and its index patterns. Token comparison runs in constant time, so
 * that how long a refusal takes says nothing of how close a guess was.
 */
#include "access.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <xxhash.h>

#include "errors.h"
#include "logger.h"
#include "memory-alloc.h"

enum {
	TOKEN_MIN = 16,
	TOKEN_MAX = 256,
	CLIENT_NAME_MAX = 64,
	PATTERNS_MAX = 64,
	LINE_MAX_BYTES = 4096,
};

struct access_client {
	char name[CLIENT_NAME_MAX + 1];
	char token[TOKEN_MAX + 1];
	size_t token_length;
	uint64_t token_hash;
	unsigned int rights;
	unsigned int pattern_count;
	char *patterns[PATTERNS_MAX];
	/* The patterns, NUL-separated; patterns[] point into it. */
	char *pattern_text;
};

struct access_table {
	struct access_client *clients;
	size_t count;
};

struct access_control {
	char *path;
	pthread_rwlock_t lock;
	struct access_table *table;
};

static void free_table(struct access_table *table)
{
	if (table == NULL)
		return;
	for (size_t i = 0; i < table->count; i++)
		dd_free(table->clients[i].pattern_text);
	dd_free(table->clients);
	dd_free(table);
}

static int parse_rights(const char *text, unsigned int *rights)
{
	char copy[128];
	char *save = NULL;

	if (strlen(text) >= sizeof(copy))
		return DD_INVALID_ARGUMENT;
	strcpy(copy, text);
	*rights = 0;
	for (char *word = strtok_r(copy, ",", &save); word != NULL;
	     word = strtok_r(NULL, ",", &save)) {
		if (strcmp(word, "advice") == 0)
			*rights |= ACCESS_ADVICE;
		else if (strcmp(word, "stats") == 0)
			*rights |= ACCESS_STATS;
		else if (strcmp(word, "manage") == 0)
			*rights |= ACCESS_MANAGE;
		else
			return DD_INVALID_ARGUMENT;
	}
	return (*rights != 0) ? DD_SUCCESS : DD_INVALID_ARGUMENT;
}

static int parse_patterns(const char *text, struct access_client *client)
{
	size_t length = strlen(text);
	char *save = NULL;
	int result;

	result = dd_allocate(length + 1, "index patterns", &client->pattern_text);
	if (result != DD_SUCCESS)
		return result;
	memcpy(client->pattern_text, text, length + 1);
	for (char *word = strtok_r(client->pattern_text, ",", &save); word != NULL;
	     word = strtok_r(NULL, ",", &save)) {
		if (client->pattern_count == PATTERNS_MAX)
			return DD_INVALID_ARGUMENT;
		client->patterns[client->pattern_count++] = word;
	}
	return (client->pattern_count > 0) ? DD_SUCCESS : DD_INVALID_ARGUMENT;
}

/* Parse one client line (already split into words) into @client; on failure set @why. */
static int parse_client(char **words, int count, struct access_client *client, const char **why)
{
	size_t token_length;

	if ((count < 3) || (count > 4)) {
		*why = "expected <client> <token> <indexes> [<rights>]";
		return DD_INVALID_ARGUMENT;
	}
	if (strlen(words[0]) > CLIENT_NAME_MAX) {
		*why = "client name longer than 64";
		return DD_INVALID_ARGUMENT;
	}
	token_length = strlen(words[1]);
	if ((token_length < TOKEN_MIN) || (token_length > TOKEN_MAX)) {
		*why = "a token has 16 to 256 characters";
		return DD_INVALID_ARGUMENT;
	}
	strcpy(client->name, words[0]);
	memcpy(client->token, words[1], token_length + 1);
	client->token_length = token_length;
	client->token_hash = XXH64(words[1], token_length, 0);
	client->rights = ACCESS_ADVICE | ACCESS_STATS;
	if ((count == 4) && (parse_rights(words[3], &client->rights) != DD_SUCCESS)) {
		*why = "rights are a comma-separated list of advice, stats, manage";
		return DD_INVALID_ARGUMENT;
	}
	if (parse_patterns(words[2], client) != DD_SUCCESS) {
		*why = "bad index list";
		return DD_INVALID_ARGUMENT;
	}
	return DD_SUCCESS;
}

/* Whether two clients of one table clash: same name or same token. */
static const char *clash(const struct access_table *table, const struct access_client *client)
{
	for (size_t i = 0; i < table->count; i++) {
		if (strcmp(table->clients[i].name, client->name) == 0)
			return "client named twice";
		if ((table->clients[i].token_hash == client->token_hash) &&
		    (strcmp(table->clients[i].token, client->token) == 0))
			return "token given to two clients";
	}
	return NULL;
}

static int add_line(struct access_table *table, size_t *capacity, char *line, const char **why)
{
	char *words[5];
	char *save = NULL;
	int count = 0;
	int result;

	for (char *word = strtok_r(line, " \t\r\n", &save); (word != NULL) && (count < 5);
	     word = strtok_r(NULL, " \t\r\n", &save))
		words[count++] = word;
	if ((count == 0) || (words[0][0] == '#'))
		return DD_SUCCESS;
	if (table->count == *capacity) {
		struct access_client *grown;
		size_t new_capacity = 2 * *capacity + 8;

		result = DD_ALLOCATE(new_capacity, struct access_client, "access clients", &grown);
		if (result != DD_SUCCESS)
			return result;
		if (table->count > 0)
			memcpy(grown, table->clients, table->count * sizeof(*grown));
		dd_free(table->clients);
		table->clients = grown;
		*capacity = new_capacity;
	}
	result = parse_client(words, count, &table->clients[table->count], why);
	if (result == DD_SUCCESS) {
		*why = clash(table, &table->clients[table->count]);
		if (*why != NULL)
			result = DD_INVALID_ARGUMENT;
	}
	if (result != DD_SUCCESS) {
		dd_free(table->clients[table->count].pattern_text);
		memset(&table->clients[table->count], 0, sizeof(struct access_client));
		return result;
	}
	table->count++;
	return DD_SUCCESS;
}

static int read_table(const char *path, struct access_table **table_ptr)
{
	struct access_table *table;
	char line[LINE_MAX_BYTES];
	size_t capacity = 0;
	unsigned int number = 0;
	struct stat status;
	int result = DD_SUCCESS;
	FILE *file;

	file = fopen(path, "re");
	if (file == NULL)
		return dd_log_error_strerror(errno, "cannot open tokens file %s", path);
	if ((fstat(fileno(file), &status) == 0) && ((status.st_mode & 0077) != 0))
		dd_log_warning("tokens file %s can be read by others than its owner", path);
	result = DD_ALLOCATE(1, struct access_table, "access table", &table);
	if (result != DD_SUCCESS) {
		fclose(file);
		return result;
	}
	while (fgets(line, sizeof(line), file) != NULL) {
		const char *why = "out of memory";

		number++;
		if (strchr(line, '\n') == NULL && !feof(file)) {
			result = dd_log_error_strerror(DD_INVALID_ARGUMENT, "%s:%u: line too long",
			                               path, number);
			break;
		}
		result = add_line(table, &capacity, line, &why);
		if (result != DD_SUCCESS) {
			dd_log_error("%s:%u: %s", path, number, why);
			break;
		}
	}
	if ((result == DD_SUCCESS) && ferror(file))
		result = dd_log_error_strerror(EIO, "cannot read tokens file %s", path);
	fclose(file);
	if (result != DD_SUCCESS) {
		free_table(table);
		return result;
	}
	*table_ptr = table;
	return DD_SUCCESS;
}

int access_open(const char *path, struct access_control **access_ptr)
{
	struct access_control *access;
	int result;

	result = DD_ALLOCATE(1, struct access_control, "access control", &access);
	if (result != DD_SUCCESS)
		return result;
	pthread_rwlock_init(&access->lock, NULL);
	if (path != NULL) {
		result = dd_duplicate(path, strlen(path) + 1, "tokens path", &access->path);
		if (result == DD_SUCCESS)
			result = read_table(path, &access->table);
		if (result != DD_SUCCESS) {
			access_close(access);
			return result;
		}
		dd_log_info("tokens for %zu clients loaded from %s", access->table->count, path);
	}
	*access_ptr = access;
	return DD_SUCCESS;
}

int access_reload(struct access_control *access)
{
	struct access_table *table;
	struct access_table *old;
	int result;

	if (access->path == NULL)
		return DD_SUCCESS;
	result = read_table(access->path, &table);
	if (result != DD_SUCCESS) {
		dd_log_warning("tokens not reloaded; the previous ones stay in force");
		return result;
	}
	pthread_rwlock_wrlock(&access->lock);
	old = access->table;
	access->table = table;
	pthread_rwlock_unlock(&access->lock);
	free_table(old);
	dd_log_info("tokens for %zu clients reloaded from %s", table->count, access->path);
	return DD_SUCCESS;
}

void access_close(struct access_control *access)
{
	if (access == NULL)
		return;
	free_table(access->table);
	dd_free(access->path);
	pthread_rwlock_destroy(&access->lock);
	dd_free(access);
}

bool access_enabled(const struct access_control *access)
{
	return access->path != NULL;
}

/* Compare without an early exit. */
static bool same_token(const char *a, const char *b, size_t length)
{
	unsigned char difference = 0;

	for (size_t i = 0; i < length; i++)
		difference |= (unsigned char) (a[i] ^ b[i]);
	return difference == 0;
}

static bool covers(const struct access_client *client, const char *index)
{
	for (unsigned int p = 0; p < client->pattern_count; p++) {
		const char *pattern = client->patterns[p];
		size_t length = strlen(pattern);

		if (strcmp(pattern, "*") == 0)
			return true;
		if (index == NULL)
			continue;
		if ((pattern[length - 1] == '*') ? (strncmp(pattern, index, length - 1) == 0)
		                                 : (strcmp(pattern, index) == 0))
			return true;
	}
	return false;
}

static const struct access_client *find_client(const struct access_table *table, const char *token,
                                               size_t length)
{
	uint64_t hash = XXH64(token, length, 0);

	for (size_t i = 0; i < table->count; i++) {
		const struct access_client *client = &table->clients[i];

		if ((client->token_hash == hash) && (client->token_length == length) &&
		    same_token(client->token, token, length))
			return client;
	}
	return NULL;
}

enum access_verdict access_check(struct access_control *access, const char *authorization,
                                 size_t length, const char *index, unsigned int rights)
{
	static const char bearer[] = "Bearer ";
	const struct access_client *client;
	enum access_verdict verdict;

	if (access->path == NULL)
		return ACCESS_GRANTED;
	if ((authorization == NULL) || (length <= sizeof(bearer) - 1) ||
	    (strncasecmp(authorization, bearer, sizeof(bearer) - 1) != 0))
		return ACCESS_UNAUTHENTICATED;
	authorization += sizeof(bearer) - 1;
	length -= sizeof(bearer) - 1;
	pthread_rwlock_rdlock(&access->lock);
	client = find_client(access->table, authorization, length);
	if (client == NULL)
		verdict = ACCESS_UNAUTHENTICATED;
	else if ((rights != 0) && (((client->rights & rights) != rights) || !covers(client, index)))
		verdict = ACCESS_DENIED;
	else
		verdict = ACCESS_GRANTED;
	pthread_rwlock_unlock(&access->lock);
	return verdict;
}
