// SPDX-License-Identifier: GPL-2.0-only
/*
 * The metrics page; see metrics.h.
 */
#include "metrics.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <microhttpd.h>

#include "errors.h"
#include "indexd.h"
#include "logger.h"
#include "memory-alloc.h"

struct metrics_server {
	struct MHD_Daemon *http;
	struct indexd *daemon;
};

/* A growing text buffer; a failed allocation is remembered and reported at the end. */
struct text {
	char *data;
	size_t length;
	size_t capacity;
	int result;
};

/* Make room for at least @needed more bytes and a NUL. */
static bool grow(struct text *text, size_t needed)
{
	size_t capacity = 2 * text->capacity + needed + 1;
	char *grown;

	text->result = dd_allocate(capacity, "metrics text", &grown);
	if (text->result != DD_SUCCESS)
		return false;
	if (text->length > 0)
		memcpy(grown, text->data, text->length);
	dd_free(text->data);
	text->data = grown;
	text->capacity = capacity;
	return true;
}

static void __attribute__((format(printf, 2, 3))) add(struct text *text, const char *format, ...)
{
	va_list args;
	int needed;

	if ((text->result != DD_SUCCESS) || ((text->data == NULL) && !grow(text, 4096)))
		return;
	for (;;) {
		size_t room = text->capacity - text->length;

		va_start(args, format);
		needed = vsnprintf(text->data + text->length, room, format, args);
		va_end(args);
		if (needed < 0) {
			text->result = DD_INVALID_ARGUMENT;
			return;
		}
		if ((size_t) needed < room) {
			text->length += (size_t) needed;
			return;
		}
		if (!grow(text, (size_t) needed))
			return;
	}
}

static void add_help(struct text *text, const char *name, const char *type, const char *help)
{
	add(text, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *const request_types[UDS_REQUEST_TYPES] = {
	"post", "update", "query", "query_no_update", "delete",
};

static const char *const locations[UDS_LOCATIONS] = {
	"unavailable",
	"open_chapter",
	"dense",
	"sparse",
};

struct index_figures {
	const struct served_index *served;
	struct uds_index_stats stats;
};

/* One metric with a value per index. */
#define PER_INDEX(text, figures, count, metric, kind, help, field)                            \
	do {                                                                                  \
		add_help(text, metric, kind, help);                                           \
		for (size_t i_ = 0; i_ < (count); i_++)                                       \
			add(text, metric "{index=\"%s\"} %llu\n", (figures)[i_].served->name, \
			    (unsigned long long) (figures)[i_].stats.field);                  \
	} while (0)

static void add_requests(struct text *text, const struct index_figures *figures, size_t count)
{
	add_help(text, "uds_requests_total", "counter",
	         "Requests handled by the index, by type and outcome.");
	for (size_t i = 0; i < count; i++) {
		const struct uds_index_stats *stats = &figures[i].stats;

		for (unsigned int t = 0; t < UDS_REQUEST_TYPES; t++) {
			add(text,
			    "uds_requests_total{index=\"%s\",type=\"%s\",outcome=\"found\"} %llu\n",
			    figures[i].served->name, request_types[t],
			    (unsigned long long) stats->found[t]);
			add(text,
			    "uds_requests_total{index=\"%s\",type=\"%s\",outcome=\"not_found\"} %llu\n",
			    figures[i].served->name, request_types[t],
			    (unsigned long long) (stats->requests[t] - stats->found[t]));
		}
	}
	add_help(text, "uds_found_total", "counter", "Names found, by where the record was.");
	for (size_t i = 0; i < count; i++) {
		for (unsigned int l = UDS_LOCATION_IN_OPEN_CHAPTER; l < UDS_LOCATIONS; l++)
			add(text, "uds_found_total{index=\"%s\",location=\"%s\"} %llu\n",
			    figures[i].served->name, locations[l],
			    (unsigned long long) figures[i].stats.found_in[l]);
	}
}

static void add_index_metrics(struct text *text, const struct index_figures *f, size_t n)
{
	add_requests(text, f, n);
	PER_INDEX(text, f, n, "uds_index_entries", "gauge", "Entries in the volume index.",
	          entries_indexed);
	PER_INDEX(text, f, n, "uds_index_collisions", "gauge",
	          "Volume index entries that carry a full name because of a collision.",
	          collisions);
	PER_INDEX(text, f, n, "uds_index_entries_discarded_total", "counter",
	          "Entries dropped: expired, early-flushed, or not added for lack of memory.",
	          entries_discarded);
	PER_INDEX(text, f, n, "uds_index_early_flushes_total", "counter",
	          "Volume index entries flushed early to make room.", early_flushes);
	PER_INDEX(text, f, n, "uds_index_overflows_total", "counter",
	          "Entries not added because a delta list was full.", overflows);
	PER_INDEX(text, f, n, "uds_index_rebalances_total", "counter", "Delta index rebalances.",
	          rebalances);
	PER_INDEX(text, f, n, "uds_index_page_cache_hits_total", "counter",
	          "Chapter page lookups served from the page cache.", cache_hits);
	PER_INDEX(text, f, n, "uds_index_page_cache_misses_total", "counter",
	          "Chapter page lookups that had to read the page.", cache_misses);
	PER_INDEX(text, f, n, "uds_index_reads_queued_total", "counter",
	          "Page reads handed to the disk threads.", reads_queued);
	PER_INDEX(text, f, n, "uds_index_read_errors_total", "counter",
	          "Page reads that failed or read a corrupt page.", read_errors);
	PER_INDEX(text, f, n, "uds_index_sparse_cache_hits_total", "counter",
	          "Sparse chapter index searches that found the name.", sparse_cache_hits);
	PER_INDEX(text, f, n, "uds_index_sparse_cache_misses_total", "counter",
	          "Sparse chapter index searches that did not.", sparse_cache_misses);
	PER_INDEX(text, f, n, "uds_index_sparse_chapters_loaded_total", "counter",
	          "Sparse chapter indexes loaded into the cache.", sparse_chapters_loaded);
	PER_INDEX(text, f, n, "uds_index_chapters_written_total", "counter",
	          "Chapters closed and written.", chapters_written);
	PER_INDEX(text, f, n, "uds_index_open_chapter", "gauge", "The open chapter's number.",
	          open_chapter);
	PER_INDEX(text, f, n, "uds_index_oldest_chapter", "gauge",
	          "The oldest chapter in the window.", oldest_chapter);
	PER_INDEX(text, f, n, "uds_index_chapters_dropped", "gauge",
	          "Chapters the last rebuild dropped as torn or corrupt.", chapters_dropped);
	PER_INDEX(text, f, n, "uds_index_rebuilt", "gauge",
	          "1 if the index was rebuilt at its last start rather than loaded.", rebuilt);
	PER_INDEX(text, f, n, "uds_index_volume_index_bytes", "gauge",
	          "Memory of the volume index.", volume_index_memory);
	PER_INDEX(text, f, n, "uds_index_memory_bytes", "gauge",
	          "Memory the index holds, volume index included.", memory_used);
	PER_INDEX(text, f, n, "uds_index_capacity_records", "gauge",
	          "Records the index's window holds.", records_per_volume);
	add_help(text, "uds_index_storage_bytes", "gauge", "Size of the index's storage.");
	for (size_t i = 0; i < n; i++)
		add(text, "uds_index_storage_bytes{index=\"%s\"} %llu\n", f[i].served->name,
		    (unsigned long long) f[i].served->storage_bytes);
}

static void add_server_metrics(struct text *text, struct indexd *daemon, size_t index_count)
{
	size_t method_count = daemon->method_count;
	const struct rpc_method *methods = daemon->methods;
	struct rusage usage;
	long resident_pages = 0;
	FILE *statm;

	add_help(text, "uds_rpc_calls_total", "counter",
	         "Calls finished, by method and gRPC status code.");
	for (size_t m = 0; m <= method_count; m++) {
		for (unsigned int code = 0; code < RPC_STATUS_CODES; code++) {
			uint64_t calls = rpc_server_finished_calls(daemon->server, m, code);

			if ((calls == 0) && (code != GRPC_STATUS_OK))
				continue;
			add(text, "uds_rpc_calls_total{method=\"%s\",code=\"%u\"} %llu\n",
			    (m < method_count) ? methods[m].path : "unknown", code,
			    (unsigned long long) calls);
		}
	}
	add_help(text, "uds_rpc_streams_open", "gauge", "Advice streams open now.");
	add(text, "uds_rpc_streams_open %u\n", rpc_server_stream_count(daemon->server));
	add_help(text, "uds_indexes", "gauge", "Indexes served.");
	add(text, "uds_indexes %zu\n", index_count);
	add_help(text, "uds_allocated_bytes", "gauge", "Memory the server's indexes allocated.");
	add(text, "uds_allocated_bytes %llu\n", (unsigned long long) dd_memory_in_use());
	statm = fopen("/proc/self/statm", "re");
	if (statm != NULL) {
		if (fscanf(statm, "%*d %ld", &resident_pages) != 1)
			resident_pages = 0;
		fclose(statm);
	}
	add_help(text, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
	add(text, "process_resident_memory_bytes %llu\n",
	    (unsigned long long) resident_pages * (unsigned long long) sysconf(_SC_PAGESIZE));
	if (getrusage(RUSAGE_SELF, &usage) == 0) {
		add_help(text, "process_cpu_seconds_total", "counter",
		         "User and system CPU time spent in seconds.");
		add(text, "process_cpu_seconds_total %.3f\n",
		    (double) (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
		        (double) (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6);
	}
}

int metrics_render(struct indexd *daemon, char **text_ptr, size_t *length)
{
	struct text text = { .result = DD_SUCCESS };
	struct index_figures *figures = NULL;
	struct served_index **list = NULL;
	size_t count = 0;
	size_t gathered = 0;
	int result;

	result = registry_list(daemon->registry, &list, &count);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(count + 1, struct index_figures, "metrics", &figures);
	if (result != DD_SUCCESS) {
		if (list != NULL)
			registry_put_list(list, count);
		return result;
	}
	for (size_t i = 0; i < count; i++) {
		figures[gathered].served = list[i];
		if (uds_get_index_stats(list[i]->index, &figures[gathered].stats) == DD_SUCCESS)
			gathered++;
	}
	add_index_metrics(&text, figures, gathered);
	add_server_metrics(&text, daemon, count);
	registry_put_list(list, count);
	dd_free(figures);
	if (text.result != DD_SUCCESS) {
		dd_free(text.data);
		return text.result;
	}
	*text_ptr = text.data;
	*length = text.length;
	return DD_SUCCESS;
}

static enum MHD_Result answer(struct MHD_Connection *connection, unsigned int status,
                              const char *content_type, void *body, size_t length)
{
	struct MHD_Response *response =
	    MHD_create_response_from_buffer(length, body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result result;

	if (response == NULL)
		return MHD_NO;
	MHD_add_response_header(response, "Content-Type", content_type);
	result = MHD_queue_response(connection, status, response);
	MHD_destroy_response(response);
	return result;
}

static enum MHD_Result handle_http(void *context, struct MHD_Connection *connection,
                                   const char *url, const char *method, const char *version,
                                   const char *upload, size_t *upload_size, void **state)
{
	static char not_found[] = "not found: the metrics are at /metrics\n";
	static char not_allowed[] = "only GET\n";
	static char failed[] = "cannot gather the metrics\n";
	struct metrics_server *server = context;
	enum MHD_Result result;
	size_t length;
	char *text;

	(void) version;
	(void) upload;
	(void) upload_size;
	(void) state;
	if ((strcmp(method, "GET") != 0) && (strcmp(method, "HEAD") != 0))
		return answer(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", not_allowed,
		              strlen(not_allowed));
	if (strcmp(url, "/metrics") != 0)
		return answer(connection, MHD_HTTP_NOT_FOUND, "text/plain", not_found,
		              strlen(not_found));
	if (metrics_render(server->daemon, &text, &length) != DD_SUCCESS)
		return answer(connection, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", failed,
		              strlen(failed));
	result = answer(connection, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text,
	                length);
	dd_free(text);
	return result;
}

/* Resolve "host:port" or "[v6]:port" (numeric hosts or names) into @address. */
static int resolve(const char *text, struct sockaddr_storage *address)
{
	char host[256];
	const char *port = strrchr(text, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *found;
	size_t host_length;

	if ((port == NULL) || (port == text) || ((size_t) (port - text) >= sizeof(host)))
		return DD_INVALID_ARGUMENT;
	host_length = (size_t) (port - text);
	memcpy(host, text, host_length);
	host[host_length] = '\0';
	if ((host[0] == '[') && (host[host_length - 1] == ']')) {
		memmove(host, host + 1, host_length - 2);
		host[host_length - 2] = '\0';
	}
	if (getaddrinfo(host, port + 1, &hints, &found) != 0)
		return DD_INVALID_ARGUMENT;
	memcpy(address, found->ai_addr, found->ai_addrlen);
	freeaddrinfo(found);
	return DD_SUCCESS;
}

int metrics_start(const char *address, struct indexd *daemon, struct metrics_server **server_ptr)
{
	struct sockaddr_storage socket_address = { 0 };
	struct metrics_server *server;
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	int result;

	if (resolve(address, &socket_address) != DD_SUCCESS)
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "bad metrics address %s (use HOST:PORT)", address);
	result = DD_ALLOCATE(1, struct metrics_server, "metrics server", &server);
	if (result != DD_SUCCESS)
		return result;
	server->daemon = daemon;
	if (socket_address.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	server->http =
	    MHD_start_daemon(flags, 0, NULL, NULL, handle_http, server, MHD_OPTION_SOCK_ADDR,
	                     (struct sockaddr *) &socket_address, MHD_OPTION_CONNECTION_LIMIT, 16u,
	                     MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
	if (server->http == NULL) {
		dd_free(server);
		return dd_log_error_strerror(EADDRINUSE, "cannot serve metrics on %s", address);
	}
	dd_log_info("metrics on http://%s/metrics", address);
	*server_ptr = server;
	return DD_SUCCESS;
}

void metrics_stop(struct metrics_server *server)
{
	if (server == NULL)
		return;
	MHD_stop_daemon(server->http);
	dd_free(server);
}
