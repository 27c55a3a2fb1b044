// SPDX-License-Identifier: GPL-2.0-only
/*
 * udsctl: the command line of uds-indexd, on libudsclient.
 *
 *   udsctl [OPTIONS] health [SERVICE]
 *   udsctl [OPTIONS] list
 *   udsctl [OPTIONS] create NAME [--memory=MB] [--sparse] [--zones=N] [--path=PATH]
 *   udsctl [OPTIONS] drop NAME [--delete-storage]
 *   udsctl [OPTIONS] stats NAME
 *   udsctl [OPTIONS] save [NAME]
 *   udsctl [OPTIONS] post|query INDEX (NAME[:DATA] ... | --file=FILE ...)
 *   udsctl [OPTIONS] shard-map [INDEX [NAME ...]]
 *
 * OPTIONS: --server=ADDRESS (default $UDS_SERVER or 127.0.0.1:7400), --shard-map=FILE (post,
 * query and shard-map route through it), --token=TOKEN (default $UDS_TOKEN), --tls-ca=FILE,
 * --tls-cert=FILE, --tls-key=FILE, --tls-server-name=NAME, --timeout=MS, --json, --verbose.
 *
 * Names and data are 32 hex digits. A file is cut into 4 KiB blocks, each named by the XXH3-128
 * of its bytes (as the store names blocks); a POSTed block's data is its file's number on the
 * command line and its block number. post and query print each request for names given in hex,
 * and a summary for files (each block too with --verbose). Output is for people unless --json.
 * The exit status is 0 on success, 1 if the server refused or failed, 2 for bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "udsclient.h"

enum {
	BLOCK_SIZE = 4096,
	MAX_IN_FLIGHT = 4096,
};

struct settings {
	const char *server;
	const char *shard_map;
	struct udsc_security security;
	unsigned int timeout_ms;
	bool json;
	bool verbose;
	/* create / drop */
	unsigned int memory_mb;
	bool sparse;
	unsigned int zones;
	const char *path;
	bool delete_storage;
	/* post / query */
	const char *files[256];
	unsigned int file_count;
};

static void __attribute__((noreturn)) usage(void)
{
	fprintf(stderr,
	        "usage: udsctl [OPTIONS] COMMAND [ARGS]\n"
	        "  health [SERVICE]          is the server serving?\n"
	        "  list                      the indexes you may see\n"
	        "  create NAME [--memory=MB] [--sparse] [--zones=N] [--path=PATH]\n"
	        "  drop NAME [--delete-storage]\n"
	        "  stats NAME                an index's counters\n"
	        "  save [NAME]               save one index, or all\n"
	        "  post INDEX NAME[:DATA]... | --file=FILE...   add names (or file blocks)\n"
	        "  query INDEX NAME... | --file=FILE...         look names up\n"
	        "  shard-map [INDEX [NAME...]]                  show the map, route names\n"
	        "OPTIONS: --server=HOST:PORT|unix:PATH --shard-map=FILE --token=TOKEN\n"
	        "         --tls-ca=FILE --tls-cert=FILE --tls-key=FILE --tls-server-name=NAME\n"
	        "         --timeout=MS --json --verbose\n");
	exit(2);
}

/* Print "udsctl: <message>" and exit with @status. */
static void __attribute__((noreturn)) quit(int status, const char *format, va_list args)
{
	fputs("udsctl: ", stderr);
	vfprintf(stderr, format, args);
	fputc('\n', stderr);
	exit(status);
}

/* A failure of the server or the system: exit 1. */
static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *format, ...)
{
	va_list args;

	va_start(args, format);
	quit(1, format, args);
}

/* A bad command line: exit 2. */
static void __attribute__((noreturn, format(printf, 1, 2))) bad_usage(const char *format, ...)
{
	va_list args;

	va_start(args, format);
	quit(2, format, args);
}

static unsigned int parse_number(const char *what, const char *text)
{
	char *end;
	unsigned long value = strtoul(text, &end, 10);

	if ((*text == '\0') || (*end != '\0') || (value > 1000000000UL))
		bad_usage("%s must be a number, not \"%s\"", what, text);
	return (unsigned int) value;
}

/* Parse options; @in_order stops at the first non-option (the command). */
static void parse_options(int argc, char **argv, struct settings *settings, bool in_order)
{
	static const struct option options[] = {
		{ "server", required_argument, NULL, 's' },
		{ "shard-map", required_argument, NULL, 'm' },
		{ "token", required_argument, NULL, 't' },
		{ "tls-ca", required_argument, NULL, 'a' },
		{ "tls-cert", required_argument, NULL, 'c' },
		{ "tls-key", required_argument, NULL, 'k' },
		{ "tls-server-name", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "memory", required_argument, NULL, 'M' },
		{ "sparse", no_argument, NULL, 'S' },
		{ "zones", required_argument, NULL, 'z' },
		{ "path", required_argument, NULL, 'p' },
		{ "delete-storage", no_argument, NULL, 'D' },
		{ "file", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int option;

	while ((option = getopt_long(argc, argv, in_order ? "+" : "", options, NULL)) != -1) {
		switch (option) {
		case 's':
			settings->server = optarg;
			break;
		case 'm':
			settings->shard_map = optarg;
			break;
		case 't':
			settings->security.token = optarg;
			break;
		case 'a':
			settings->security.tls_ca = optarg;
			break;
		case 'c':
			settings->security.tls_cert = optarg;
			break;
		case 'k':
			settings->security.tls_key = optarg;
			break;
		case 'n':
			settings->security.tls_server_name = optarg;
			break;
		case 'T':
			settings->timeout_ms = parse_number("--timeout", optarg);
			break;
		case 'j':
			settings->json = true;
			break;
		case 'v':
			settings->verbose = true;
			break;
		case 'M':
			settings->memory_mb = parse_number("--memory", optarg);
			break;
		case 'S':
			settings->sparse = true;
			break;
		case 'z':
			settings->zones = parse_number("--zones", optarg);
			break;
		case 'p':
			settings->path = optarg;
			break;
		case 'D':
			settings->delete_storage = true;
			break;
		case 'f':
			if (settings->file_count == sizeof(settings->files) / sizeof(char *))
				bad_usage("too many files");
			settings->files[settings->file_count++] = optarg;
			break;
		default:
			usage();
		}
	}
}

/* ------------------------------------------------------------------------------------------ */
/* Output                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void hex(const uint8_t *bytes, size_t size, char *text)
{
	for (size_t i = 0; i < size; i++)
		sprintf(text + 2 * i, "%02x", bytes[i]);
}

static bool parse_hex(const char *text, size_t length, uint8_t *bytes)
{
	if (length != 2 * UDSC_NAME_BYTES)
		return false;
	for (size_t i = 0; i < UDSC_NAME_BYTES; i++) {
		unsigned int value;

		if (sscanf(text + 2 * i, "%2x", &value) != 1)
			return false;
		bytes[i] = (uint8_t) value;
	}
	return strspn(text, "0123456789abcdefABCDEF") >= length;
}

/* A JSON string (index names and messages hold no control characters but may hold quotes). */
static void json_string(const char *text)
{
	putchar('"');
	for (; *text != '\0'; text++) {
		if ((*text == '"') || (*text == '\\'))
			putchar('\\');
		if ((unsigned char) *text >= 0x20)
			putchar(*text);
	}
	putchar('"');
}

static void __attribute__((noreturn))
fail_call(const struct settings *settings, const char *what, const struct udsc_error *error)
{
	if (settings->json) {
		printf("{\"error\": {\"code\": %d, \"message\": ", error->code);
		json_string(error->message);
		printf("}}\n");
	}
	die("%s: %s (gRPC status %d)", what, error->message, error->code);
}

static const char *const location_names[] = { "unavailable", "open-chapter", "dense", "sparse" };

/* ------------------------------------------------------------------------------------------ */
/* Administrative commands                                                                     */
/* ------------------------------------------------------------------------------------------ */

static struct udsc_admin *connect_admin(const struct settings *settings)
{
	struct udsc_admin *admin;
	struct udsc_error error = { 0 };

	if (udsc_admin_open(settings->server, &settings->security, settings->timeout_ms, &admin,
	                    &error) != UDSC_OK)
		die("cannot connect to %s: %s", settings->server, error.message);
	return admin;
}

/* Print what the server says of an index: one line, or a JSON object (then ", " unless @last). */
static void print_info(const struct settings *settings, const struct udsc_index_info *info,
                       bool last)
{
	if (settings->json) {
		printf("{\"name\": ");
		json_string(info->name);
		printf(", \"memory_mb\": %u, \"sparse\": %s, \"zones\": %u, \"path\": ",
		       info->memory_mb, info->sparse ? "true" : "false", info->zones);
		json_string(info->path);
		printf(", \"storage_bytes\": %llu, \"records\": %llu, \"nonce\": %llu}%s",
		       (unsigned long long) info->storage_bytes,
		       (unsigned long long) info->records_per_volume,
		       (unsigned long long) info->nonce, last ? "" : ", ");
		return;
	}
	printf("%-24s %6u MB %-6s %2u zones %12llu records  nonce %-20llu  %s\n", info->name,
	       info->memory_mb, info->sparse ? "sparse" : "dense", info->zones,
	       (unsigned long long) info->records_per_volume, (unsigned long long) info->nonce,
	       info->path);
}

static int command_list(const struct settings *settings)
{
	struct udsc_admin *admin = connect_admin(settings);
	struct udsc_error error = { 0 };
	struct udsc_index_info *infos;
	size_t count;

	if (udsc_admin_list(admin, &infos, &count, &error) != UDSC_OK)
		fail_call(settings, "list", &error);
	if (settings->json)
		printf("{\"indexes\": [");
	else if (count == 0)
		printf("no indexes\n");
	for (size_t i = 0; i < count; i++)
		print_info(settings, &infos[i], i + 1 == count);
	if (settings->json)
		printf("]}\n");
	free(infos);
	udsc_admin_close(admin);
	return 0;
}

static int command_create(const struct settings *settings, const char *name)
{
	struct udsc_admin *admin = connect_admin(settings);
	struct udsc_error error = { 0 };
	struct udsc_index_info info;

	if (udsc_admin_create(admin, name, settings->memory_mb, settings->sparse, settings->zones,
	                      settings->path, &info, &error) != UDSC_OK)
		fail_call(settings, "create", &error);
	if (settings->json) {
		printf("{\"created\": ");
		print_info(settings, &info, true);
		printf("}\n");
	} else {
		printf("created ");
		print_info(settings, &info, true);
	}
	udsc_admin_close(admin);
	return 0;
}

static int command_drop(const struct settings *settings, const char *name)
{
	struct udsc_admin *admin = connect_admin(settings);
	struct udsc_error error = { 0 };

	if (udsc_admin_drop(admin, name, settings->delete_storage, &error) != UDSC_OK)
		fail_call(settings, "drop", &error);
	if (settings->json) {
		printf("{\"dropped\": ");
		json_string(name);
		printf("}\n");
	} else {
		printf("dropped %s\n", name);
	}
	udsc_admin_close(admin);
	return 0;
}

static int command_save(const struct settings *settings, const char *name)
{
	struct udsc_admin *admin = connect_admin(settings);
	struct udsc_error error = { 0 };

	if (udsc_admin_save(admin, name, &error) != UDSC_OK)
		fail_call(settings, "save", &error);
	if (settings->json)
		printf("{\"saved\": %s%s%s}\n", name ? "\"" : "", name ? name : "\"*\"",
		       name ? "\"" : "");
	else
		printf("saved %s\n", (name != NULL) ? name : "every index");
	udsc_admin_close(admin);
	return 0;
}

static int command_health(const struct settings *settings, const char *service)
{
	struct udsc_admin *admin = connect_admin(settings);
	struct udsc_error error = { 0 };
	bool serving;

	if (udsc_admin_health(admin, service, &serving, &error) != UDSC_OK)
		fail_call(settings, "health", &error);
	if (settings->json)
		printf("{\"serving\": %s}\n", serving ? "true" : "false");
	else
		printf("%s\n", serving ? "SERVING" : "NOT_SERVING");
	udsc_admin_close(admin);
	return serving ? 0 : 1;
}

/* Print an index's identity and counters (a list, or one JSON object). */
static void print_stats(const struct settings *settings, const char *name,
                        const struct udsc_index_stats *s)
{
	static const char *const types[] = { "post", "update", "query", "query_no_update",
		                             "delete" };
	const struct {
		const char *name;
		uint64_t value;
	} fields[] = {
		{ "nonce", s->nonce },
		{ "entries_indexed", s->entries_indexed },
		{ "entries_discarded", s->entries_discarded },
		{ "collisions", s->collisions },
		{ "early_flushes", s->early_flushes },
		{ "overflows", s->overflows },
		{ "rebalances", s->rebalances },
		{ "cache_hits", s->cache_hits },
		{ "cache_misses", s->cache_misses },
		{ "reads_queued", s->reads_queued },
		{ "read_errors", s->read_errors },
		{ "chapters_written", s->chapters_written },
		{ "open_chapter", s->open_chapter },
		{ "oldest_chapter", s->oldest_chapter },
		{ "volume_index_bytes", s->volume_index_bytes },
		{ "memory_bytes", s->memory_bytes },
		{ "sparse_cache_hits", s->sparse_cache_hits },
		{ "sparse_cache_misses", s->sparse_cache_misses },
		{ "sparse_chapters_loaded", s->sparse_chapters_loaded },
		{ "chapters_dropped", s->chapters_dropped },
	};

	if (settings->json) {
		printf("{\"name\": ");
		json_string(name);
		for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
			printf(", \"%s\": %llu", fields[f].name,
			       (unsigned long long) fields[f].value);
		printf(", \"rebuilt\": %s, \"requests\": {", s->rebuilt ? "true" : "false");
		for (int t = 0; t < 5; t++)
			printf("%s\"%s\": {\"total\": %llu, \"found\": %llu}", t ? ", " : "",
			       types[t], (unsigned long long) s->requests[t],
			       (unsigned long long) s->found[t]);
		printf("}}\n");
	} else {
		printf("index %s%s\n", name, s->rebuilt ? " (rebuilt at its last start)" : "");
		for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
			printf("  %-24s %llu\n", fields[f].name,
			       (unsigned long long) fields[f].value);
		for (int t = 0; t < 5; t++)
			printf("  requests %-15s %llu (%llu found)\n", types[t],
			       (unsigned long long) s->requests[t],
			       (unsigned long long) s->found[t]);
	}
}

static int command_stats(const struct settings *settings, const char *name)
{
	struct udsc_admin *admin = connect_admin(settings);
	struct udsc_error error = { 0 };
	struct udsc_index_stats s;

	if (udsc_admin_stats(admin, name, &s, &error) != UDSC_OK)
		fail_call(settings, "stats", &error);
	print_stats(settings, name, &s);
	udsc_admin_close(admin);
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* post and query                                                                              */
/* ------------------------------------------------------------------------------------------ */

struct run {
	pthread_mutex_t mutex;
	pthread_cond_t changed;
	unsigned int in_flight;
	uint64_t counts[UDSC_INVALID + 1];
	uint64_t found;
};

struct item {
	struct udsc_request request;
	struct run *run;
	/* For printing: the name's origin. */
	unsigned int file;
	uint64_t block;
};

static void request_done(struct udsc_request *request)
{
	struct item *item = (struct item *) request;
	struct run *run = item->run;

	pthread_mutex_lock(&run->mutex);
	run->counts[request->status]++;
	run->found += (request->status == UDSC_OK) && request->found;
	run->in_flight--;
	pthread_cond_broadcast(&run->changed);
	pthread_mutex_unlock(&run->mutex);
}

static void print_request(const struct settings *settings, const struct item *item, bool first)
{
	const struct udsc_request *request = &item->request;
	char name[33];
	char data[33];

	hex(request->name, UDSC_NAME_BYTES, name);
	hex(request->old_data, UDSC_DATA_BYTES, data);
	if (settings->json) {
		printf("%s{\"name\": \"%s\", \"status\": \"%s\", \"found\": %s", first ? "" : ", ",
		       name, udsc_status_name(request->status), request->found ? "true" : "false");
		if (request->found)
			printf(", \"location\": \"%s\", \"data\": \"%s\"",
			       location_names[request->location & 3], data);
		if (settings->file_count > 0)
			printf(", \"file\": %u, \"block\": %llu", item->file,
			       (unsigned long long) item->block);
		printf("}");
		return;
	}
	if (settings->file_count > 0)
		printf("%s block %llu ", settings->files[item->file],
		       (unsigned long long) item->block);
	if (request->status != UDSC_OK)
		printf("%s %s\n", name, udsc_status_name(request->status));
	else if (request->found)
		printf("%s found %s %s\n", name, location_names[request->location & 3], data);
	else
		printf("%s not-found\n", name);
}

/* Submit one request, waiting for room if MAX_IN_FLIGHT are out. */
static void submit(struct udsc_client *client, struct item *item, struct run *run)
{
	enum udsc_status status;

	pthread_mutex_lock(&run->mutex);
	while (run->in_flight >= MAX_IN_FLIGHT)
		pthread_cond_wait(&run->changed, &run->mutex);
	run->in_flight++;
	pthread_mutex_unlock(&run->mutex);
	item->run = run;
	item->request.callback = request_done;
	status = udsc_submit(client, &item->request);
	if (status != UDSC_OK) {
		item->request.status = status;
		item->request.found = false;
		request_done(&item->request);
	}
}

/* Gather the items: names from hex arguments, or the blocks of the files. */
static struct item *gather_items(const struct settings *settings, enum udsc_request_type type,
                                 char **names, int name_count, size_t *count)
{
	struct item *items = NULL;
	size_t capacity = 0;

	*count = 0;
	if ((settings->file_count > 0) == (name_count > 0))
		bad_usage("give names in hex or --file, not both or neither");
	for (int n = 0; n < name_count; n++) {
		struct item *item;
		char *colon = strchr(names[n], ':');
		size_t length = (colon != NULL) ? (size_t) (colon - names[n]) : strlen(names[n]);

		if (*count == capacity) {
			capacity = 2 * capacity + 16;
			items = realloc(items, capacity * sizeof(*items));
			if (items == NULL)
				die("out of memory");
		}
		item = &items[(*count)++];
		memset(item, 0, sizeof(*item));
		item->request.type = type;
		if (!parse_hex(names[n], length, item->request.name))
			bad_usage("a name is 32 hex digits: \"%s\"", names[n]);
		if ((colon != NULL) &&
		    ((type != UDSC_POST) ||
		     !parse_hex(colon + 1, strlen(colon + 1), item->request.new_data)))
			bad_usage("data (POST only) is 32 hex digits: \"%s\"", names[n]);
	}
	for (unsigned int f = 0; f < settings->file_count; f++) {
		int fd = open(settings->files[f], O_RDONLY | O_CLOEXEC);
		uint8_t block[BLOCK_SIZE];
		ssize_t got;
		uint64_t number = 0;

		if (fd < 0)
			die("cannot open %s: %s", settings->files[f], strerror(errno));
		while ((got = read(fd, block, sizeof(block))) > 0) {
			struct item *item;
			XXH128_canonical_t canonical;

			if (got < BLOCK_SIZE)
				memset(block + got, 0, (size_t) (BLOCK_SIZE - got));
			if (*count == capacity) {
				capacity = 2 * capacity + 1024;
				items = realloc(items, capacity * sizeof(*items));
				if (items == NULL)
					die("out of memory");
			}
			item = &items[(*count)++];
			memset(item, 0, sizeof(*item));
			item->request.type = type;
			XXH128_canonicalFromHash(&canonical, XXH3_128bits(block, BLOCK_SIZE));
			memcpy(item->request.name, canonical.digest, UDSC_NAME_BYTES);
			item->file = f;
			item->block = number;
			for (int b = 0; b < 8; b++) {
				item->request.new_data[b] = (uint8_t) ((uint64_t) f >> (8 * b));
				item->request.new_data[8 + b] = (uint8_t) (number >> (8 * b));
			}
			number++;
		}
		if (got < 0)
			die("cannot read %s: %s", settings->files[f], strerror(errno));
		close(fd);
	}
	return items;
}

static int command_advice(const struct settings *settings, enum udsc_request_type type,
                          const char *index, char **names, int name_count)
{
	struct udsc_options options = {
		.index = index,
		.shard_map = settings->shard_map,
		.server = (settings->shard_map == NULL) ? settings->server : NULL,
		.security = settings->security,
		.timeout_ms = settings->timeout_ms,
	};
	struct run run = { .mutex = PTHREAD_MUTEX_INITIALIZER,
		           .changed = PTHREAD_COND_INITIALIZER };
	struct udsc_client *client;
	char error[256];
	size_t count;
	struct item *items = gather_items(settings, type, names, name_count, &count);
	bool each = (settings->file_count == 0) || settings->verbose;
	uint64_t failed;

	if (udsc_open(&options, &client, error, sizeof(error)) != UDSC_OK)
		die("%s", error);
	for (size_t i = 0; i < count; i++)
		submit(client, &items[i], &run);
	pthread_mutex_lock(&run.mutex);
	while (run.in_flight > 0)
		pthread_cond_wait(&run.changed, &run.mutex);
	pthread_mutex_unlock(&run.mutex);
	udsc_close(client);
	if (settings->json)
		printf("{\"requests\": [");
	for (size_t i = 0; each && (i < count); i++)
		print_request(settings, &items[i], i == 0);
	failed = count - run.counts[UDSC_OK];
	if (settings->json) {
		printf("], \"summary\": {\"requests\": %zu, \"found\": %llu", count,
		       (unsigned long long) run.found);
		for (int s = 0; s <= UDSC_INVALID; s++)
			printf(", \"%s\": %llu", udsc_status_name((enum udsc_status) s),
			       (unsigned long long) run.counts[s]);
		printf("}}\n");
	} else {
		printf("%zu requests: %llu found, %llu not found", count,
		       (unsigned long long) run.found,
		       (unsigned long long) (run.counts[UDSC_OK] - run.found));
		for (int s = 1; s <= UDSC_INVALID; s++) {
			if (run.counts[s] > 0)
				printf(", %llu %s", (unsigned long long) run.counts[s],
				       udsc_status_name((enum udsc_status) s));
		}
		printf("\n");
	}
	free(items);
	return (failed > 0) ? 1 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* shard-map                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static int command_shard_map(const struct settings *settings, const char *index, char **names,
                             int name_count)
{
	struct udsc_shard_map *map;
	const char *servers[UDSC_MAX_SHARDS];
	const char *indexes[UDSC_MAX_SHARDS];
	char error[512];

	if (settings->shard_map == NULL)
		bad_usage("shard-map needs --shard-map=FILE");
	if (udsc_shard_map_load(settings->shard_map, &map, error, sizeof(error)) != UDSC_OK)
		die("%s", error);
	if (settings->json)
		printf("{\"version\": %llu, \"indexes\": {",
		       (unsigned long long) udsc_shard_map_get_version(map));
	else
		printf("shard map %s, version %llu\n", settings->shard_map,
		       (unsigned long long) udsc_shard_map_get_version(map));
	for (unsigned int i = 0, shown = 0; i < udsc_shard_map_index_count(map); i++) {
		const char *name = udsc_shard_map_index_name(map, i);
		unsigned int count;

		if ((index != NULL) && (strcmp(index, name) != 0))
			continue;
		count = udsc_shard_map_shards(map, name, servers, indexes);
		if (settings->json) {
			printf("%s\"%s\": [", shown++ ? ", " : "", name);
			for (unsigned int s = 0; s < count; s++)
				printf("%s{\"server\": \"%s\", \"index\": \"%s\"}", s ? ", " : "",
				       servers[s], indexes[s]);
			printf("]");
		} else {
			printf("index %s: %u shard%s\n", name, count, (count == 1) ? "" : "s");
			for (unsigned int s = 0; s < count; s++)
				printf("  shard %u: %s %s\n", s, servers[s], indexes[s]);
		}
	}
	if (settings->json)
		printf("}, \"routes\": [");
	for (int n = 0; n < name_count; n++) {
		uint8_t name[UDSC_NAME_BYTES];
		int shard;

		if (!parse_hex(names[n], strlen(names[n]), name))
			bad_usage("a name is 32 hex digits: \"%s\"", names[n]);
		shard = udsc_shard_map_route(map, index, name);
		if (shard < 0)
			die("the map has no index %s", index);
		udsc_shard_map_shards(map, index, servers, indexes);
		if (settings->json)
			printf("%s{\"name\": \"%s\", \"shard\": %d, \"server\": \"%s\"}",
			       n ? ", " : "", names[n], shard, servers[shard]);
		else
			printf("%s -> shard %d (%s %s)\n", names[n], shard, servers[shard],
			       indexes[shard]);
	}
	if (settings->json)
		printf("]}\n");
	if ((index != NULL) && (udsc_shard_map_shards(map, index, servers, indexes) == 0))
		die("the map has no index %s", index);
	udsc_shard_map_free(map);
	return 0;
}

int main(int argc, char **argv)
{
	struct settings settings = { 0 };
	const char *command;
	char **args;
	int arg_count;

	settings.server = getenv("UDS_SERVER") ? getenv("UDS_SERVER") : "127.0.0.1:7400";
	settings.security.token = getenv("UDS_TOKEN");
	settings.timeout_ms = 10000;
	parse_options(argc, argv, &settings, true);
	if (optind >= argc)
		usage();
	command = argv[optind];
	/* Options may also follow the command, among its arguments: parse what follows it as a
	 * command line of its own, letting getopt move the options first. */
	argv[optind] = argv[0];
	argc -= optind;
	argv += optind;
	optind = 0;
	parse_options(argc, argv, &settings, false);
	args = argv + optind;
	arg_count = argc - optind;
	if (strcmp(command, "health") == 0 && arg_count <= 1)
		return command_health(&settings, arg_count ? args[0] : NULL);
	if (strcmp(command, "list") == 0 && arg_count == 0)
		return command_list(&settings);
	if (strcmp(command, "create") == 0 && arg_count == 1)
		return command_create(&settings, args[0]);
	if (strcmp(command, "drop") == 0 && arg_count == 1)
		return command_drop(&settings, args[0]);
	if (strcmp(command, "stats") == 0 && arg_count == 1)
		return command_stats(&settings, args[0]);
	if (strcmp(command, "save") == 0 && arg_count <= 1)
		return command_save(&settings, arg_count ? args[0] : NULL);
	if ((strcmp(command, "post") == 0) && (arg_count >= 1))
		return command_advice(&settings, UDSC_POST, args[0], args + 1, arg_count - 1);
	if ((strcmp(command, "query") == 0) && (arg_count >= 1))
		return command_advice(&settings, UDSC_QUERY_NO_UPDATE, args[0], args + 1,
		                      arg_count - 1);
	if (strcmp(command, "shard-map") == 0)
		return command_shard_map(&settings, arg_count ? args[0] : NULL, args + 1,
		                         arg_count ? arg_count - 1 : 0);
	usage();
}
