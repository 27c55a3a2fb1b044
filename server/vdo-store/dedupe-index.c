// SPDX-License-Identifier: GPL-2.0-only
/*
 * The deduplication index as the store sees it; see dedupe-index.h.
 *
 * One file, two implementations behind a small table of operations (struct index_ops): the
 * embedded uds-index engine (uds.h) and an index of uds-indexd through libudsclient
 * (udsclient.h). What they share is written once: the state, the counters, the opener, the
 * answerer, how a query is finished, and close.
 *
 * Threads.
 *   opener    a thread of each open: opens the engine (embedded: loads, or rebuilds after a
 *             crash; remote: checks the index's identity on its server or shards, then opens the
 *             client) and publishes the state. It ends once the index is ONLINE or in ERROR.
 *   answerer  a thread set of one thread: answers the queries the engine does not take
 *             (UNAVAILABLE while the index is not online or when the client refuses at submit; a
 *             bad operation), so that no callback ever runs on its caller's stack. It also
 *             relays a query asked from inside an embedded index's callback, which
 *             uds_launch_request() could otherwise run on that very stack.
 *   the engine's own threads (embedded: its zone threads; remote: the client's connection
 *             threads) run the callbacks of the queries they answer.
 *
 * Rebuild. uds_open_index(UDS_LOAD) loads or rebuilds without telling which until it returns,
 * so the opener first tries UDS_NO_REBUILD: DD_END_OF_FILE means there is no clean save, the
 * state becomes REBUILDING, and UDS_LOAD rebuilds. The failed try costs an allocation of the
 * index's memory and a log line, after a crash only.
 *
 * Publication. The opener sets the engine's handle and the identity before it stores ONLINE; a
 * query reads the state first and uses the handle only if it saw ONLINE.
 *
 * Close. Two counters, both sequentially consistent: launching counts queries between their
 * increment (before their look at the state) and the end of their hand-off to the engine;
 * in_flight counts queries whose callback has not returned. Close waits for the opener, stores
 * OFFLINE and waits until launching is zero: from then on every new query sees OFFLINE and goes
 * to the answerer, and no query is inside the engine's launch, so the engine can be closed.
 * Closing an embedded index flushes it (every query is answered), then saves it; closing the
 * client completes what it holds with UDSC_SHUTDOWN (UNAVAILABLE). Close then waits until
 * in_flight is zero, frees the answerer (which drains it) and frees the index. The last thing a
 * finished query does is its decrement of in_flight, so that close never frees what a callback
 * thread still touches; close polls the counters, as dd_free_thread_set() does, rather than
 * sleep on a condition that a finishing thread would have to signal after its decrement.
 */
#include "dedupe-index.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "logger.h"
#include "memory-alloc.h"
#include "time-utils.h"
#include "work-queue.h"

enum {
	/* The unit of the config's region. */
	INDEX_BLOCK_SIZE = 4096,
	/* The most zones an embedded index has (UDS_MAX_ZONES). */
	MAX_INDEX_ZONES = 16,
	/* A remote query's timeout when the config gives none, in milliseconds. */
	DEFAULT_TIMEOUT_MS = 5000,
	/* A remote open whose server cannot be reached tries again after these waits (ms). */
	RETRY_FIRST_MS = 100,
	RETRY_MAX_MS = 5000,
	/* How often close looks at the counters it waits for. */
	CLOSE_POLL_NS = 1000 * 1000,
	/* The operations, for the counters. */
	OPERATION_COUNT = VDO_INDEX_UPDATE + 1,
	/* The string fields of a config (config_strings()). */
	CONFIG_STRINGS = 9,
};

_Static_assert(sizeof(struct dd_record_name) == UDSC_NAME_BYTES, "names differ in size");
_Static_assert(sizeof(struct uds_record_data) == UDSC_DATA_BYTES, "record data differ in size");

struct index_ops {
	const char *kind;
	/* Opener: open the engine and set its handle (and the identity); errors are logged. */
	int (*open)(struct vdo_dedupe_index *index);
	/* Any thread, ONLINE: hand @query to the engine, or answer it on the answerer. */
	void (*launch)(struct vdo_dedupe_index *index, struct vdo_index_query *query);
	/* Close: close the engine if it was opened; the save's result. */
	int (*close)(struct vdo_dedupe_index *index);
	/* Any thread, ONLINE: add the engine's own figures. */
	void (*get_stats)(struct vdo_dedupe_index *index, struct vdo_dedupe_index_stats *stats);
};

struct vdo_dedupe_index {
	/* The strings in it are copies, freed with the index. */
	struct vdo_index_config config;
	const struct index_ops *ops;
	atomic_int state;
	/* Set by the opener before it stores ONLINE. */
	struct uds_index *local;
	struct udsc_client *remote;
	uint64_t identity;

	struct dd_thread_set *answerer;
	pthread_t opener;
	bool opener_started;
	/* Close tells an opener that waits to try again to give up. */
	pthread_mutex_t mutex;
	pthread_cond_t wake;
	bool stopping;

	atomic_uint_least64_t launching;
	atomic_uint_least64_t in_flight;
	atomic_uint_least64_t found[OPERATION_COUNT];
	atomic_uint_least64_t not_found[OPERATION_COUNT];
	atomic_uint_least64_t unavailable;
	atomic_uint_least64_t timed_out;
	atomic_uint_least64_t failed;
};

/* Set while an embedded index's zone thread runs a query's callback. */
static _Thread_local bool in_engine_callback;

/** set_state() - Publish a new state (and what the opener set before it). */
static void set_state(struct vdo_dedupe_index *index, enum vdo_index_state state)
{
	atomic_store(&index->state, (int) state);
}

/* ------------------------------------------------------------------------------------------ */
/* Finishing queries                                                                           */
/* ------------------------------------------------------------------------------------------ */

/** count_answer() - Count a finished query by its operation and outcome. */
static void count_answer(struct vdo_dedupe_index *index, const struct vdo_index_query *query)
{
	switch (query->status) {
	case VDO_INDEX_OK:
		atomic_fetch_add_explicit(query->found ? &index->found[query->operation]
		                                       : &index->not_found[query->operation],
		                          1, memory_order_relaxed);
		break;
	case VDO_INDEX_UNAVAILABLE:
		atomic_fetch_add_explicit(&index->unavailable, 1, memory_order_relaxed);
		break;
	case VDO_INDEX_TIMED_OUT:
		atomic_fetch_add_explicit(&index->timed_out, 1, memory_order_relaxed);
		break;
	default:
		atomic_fetch_add_explicit(&index->failed, 1, memory_order_relaxed);
		break;
	}
}

/**
 * finish_query() - An index thread: the answer is in @query; count it, run the callback, then
 *                  let close go on. The decrement is the last touch of the index.
 */
static void finish_query(struct vdo_index_query *query)
{
	struct vdo_dedupe_index *index = query->index;

	count_answer(index, query);
	query->callback(query);
	atomic_fetch_sub(&index->in_flight, 1);
}

/** answer_on_answerer() - The answerer: finish a query answered by the index itself. */
static void answer_on_answerer(struct dd_completion *completion)
{
	finish_query(completion->parent);
}

/** send_to_answerer() - Have the answerer run @action for @query, always through its queue. */
static void send_to_answerer(struct vdo_index_query *query, dd_action_fn action)
{
	dd_initialize_completion(&query->completion, query->index->answerer);
	dd_prepare_completion(&query->completion, action, NULL, 0, query);
	dd_enqueue_completion(&query->completion);
}

/** answer_later() - Answer @query with @status (not found) on the answerer, not here. */
static void answer_later(struct vdo_index_query *query, enum vdo_index_status status)
{
	query->status = status;
	query->found = false;
	memset(&query->old_data, 0, sizeof(query->old_data));
	send_to_answerer(query, answer_on_answerer);
}

/* ------------------------------------------------------------------------------------------ */
/* Embedded: the uds-index engine in this process                                             */
/* ------------------------------------------------------------------------------------------ */

/** uds_type_of() - The engine's request type for an operation. */
static enum uds_request_type uds_type_of(enum vdo_index_operation operation)
{
	switch (operation) {
	case VDO_INDEX_POST:
		return UDS_POST;
	case VDO_INDEX_QUERY:
		return UDS_QUERY;
	default:
		return UDS_UPDATE;
	}
}

/**
 * load_or_rebuild() - Opener: load the saved index; if it was not saved cleanly, say so
 *                     (REBUILDING) and rebuild it.
 */
static int load_or_rebuild(struct vdo_dedupe_index *index, const struct uds_parameters *parameters)
{
	int result = uds_open_index(UDS_NO_REBUILD, parameters, &index->local);

	if (result != DD_END_OF_FILE)
		return result;
	dd_log_info("the dedupe index in %s was not saved cleanly (as just logged): rebuilding it",
	            parameters->path);
	set_state(index, VDO_INDEX_REBUILDING);
	return uds_open_index(UDS_LOAD, parameters, &index->local);
}

/** embedded_open() - Opener: create, load or rebuild the index in the config's region. */
static int embedded_open(struct vdo_dedupe_index *index)
{
	const struct vdo_index_config *config = &index->config;
	struct uds_parameters parameters = {
		.path = config->path,
		.offset = config->region_start * INDEX_BLOCK_SIZE,
		.size = config->region_blocks * INDEX_BLOCK_SIZE,
		.memory_mb = config->memory_mb,
		.sparse = config->sparse,
		.zone_count = config->zone_count,
	};
	struct uds_index_stats stats;
	int result;

	if (config->create)
		result = uds_open_index(UDS_CREATE, &parameters, &index->local);
	else
		result = load_or_rebuild(index, &parameters);
	if (result != DD_SUCCESS)
		return dd_log_error_strerror(result, "cannot open the dedupe index in %s",
		                             config->path);
	result = uds_get_index_stats(index->local, &stats);
	if (result != DD_SUCCESS) {
		uds_free_index(index->local);
		index->local = NULL;
		return dd_log_error_strerror(result, "cannot read the dedupe index in %s",
		                             config->path);
	}
	index->identity = stats.nonce;
	dd_log_info("dedupe index in %s %s: nonce %#llx, %llu entries", config->path,
	            config->create ? "created" : (stats.rebuilt ? "rebuilt" : "loaded"),
	            (unsigned long long) stats.nonce, (unsigned long long) stats.entries_indexed);
	return DD_SUCCESS;
}

/** embedded_done() - A zone thread of the engine: a query's request has its answer. */
static void embedded_done(struct uds_request *request)
{
	struct vdo_index_query *query = request->context;
	bool answered = (request->status == DD_SUCCESS);

	query->status = answered ? VDO_INDEX_OK : VDO_INDEX_FAILED;
	query->found = answered && request->found;
	if (query->found)
		query->old_data = request->old_data;
	else
		memset(&query->old_data, 0, sizeof(query->old_data));
	in_engine_callback = true;
	finish_query(query);
	in_engine_callback = false;
}

/** embedded_launch() - Hand @query to the engine as a request. */
static void embedded_launch(struct vdo_dedupe_index *index, struct vdo_index_query *query)
{
	struct uds_request *request = &query->request.local;

	request->record_name = query->name;
	request->new_data = query->new_data;
	request->type = uds_type_of(query->operation);
	request->callback = embedded_done;
	request->index = index->local;
	request->context = query;
	if (uds_launch_request(request) != DD_SUCCESS)
		answer_later(query, VDO_INDEX_FAILED);
}

/** embedded_close() - Flush, save and free the engine, if it was opened. */
static int embedded_close(struct vdo_dedupe_index *index)
{
	int result;

	if (index->local == NULL)
		return DD_SUCCESS;
	result = uds_close_index(index->local);
	index->local = NULL;
	if (result != DD_SUCCESS)
		return dd_log_error_strerror(result,
		                             "the dedupe index in %s was not saved: the next open "
		                             "rebuilds it",
		                             index->config.path);
	dd_log_info("dedupe index in %s saved and closed", index->config.path);
	return DD_SUCCESS;
}

/**
 * embedded_get_stats() - The engine's own figures. Gathering them waits on the engine's zone
 *                        threads, so a callback (on one of them) gets none.
 */
static void embedded_get_stats(struct vdo_dedupe_index *index, struct vdo_dedupe_index_stats *stats)
{
	struct uds_index_stats own;

	if (in_engine_callback || (uds_get_index_stats(index->local, &own) != DD_SUCCESS))
		return;
	stats->entries_indexed = own.entries_indexed;
	stats->memory_bytes = own.memory_used;
}

static const struct index_ops embedded_ops = {
	.kind = "embedded",
	.open = embedded_open,
	.launch = embedded_launch,
	.close = embedded_close,
	.get_stats = embedded_get_stats,
};

/* ------------------------------------------------------------------------------------------ */
/* Remote: an index of uds-indexd, through libudsclient                                        */
/* ------------------------------------------------------------------------------------------ */

/** udsc_type_of() - The client's request type for an operation. */
static enum udsc_request_type udsc_type_of(enum vdo_index_operation operation)
{
	switch (operation) {
	case VDO_INDEX_POST:
		return UDSC_POST;
	case VDO_INDEX_QUERY:
		return UDSC_QUERY;
	default:
		return UDSC_UPDATE;
	}
}

/** status_of() - What a client status means for a query. */
static enum vdo_index_status status_of(enum udsc_status status)
{
	switch (status) {
	case UDSC_OK:
		return VDO_INDEX_OK;
	case UDSC_TIMEOUT:
		return VDO_INDEX_TIMED_OUT;
	case UDSC_UNAVAILABLE:
	case UDSC_OVERLOADED:
	case UDSC_SHUTDOWN:
		return VDO_INDEX_UNAVAILABLE;
	default:
		return VDO_INDEX_FAILED;
	}
}

/** is_transient() - Whether an admin call's failure may go away if tried again later. */
static bool is_transient(enum udsc_status status)
{
	return (status == UDSC_UNAVAILABLE) || (status == UDSC_TIMEOUT) ||
	       (status == UDSC_OVERLOADED);
}

/**
 * wait_unless_stopping() - Opener: wait @ms milliseconds, or less if close gives up on the
 *                          open. Returns false if it did.
 */
static bool wait_unless_stopping(struct vdo_dedupe_index *index, unsigned int ms)
{
	struct timespec until;
	bool stopping;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long) (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&index->mutex);
	while (!index->stopping &&
	       (pthread_cond_timedwait(&index->wake, &index->mutex, &until) != ETIMEDOUT))
		;
	stopping = index->stopping;
	pthread_mutex_unlock(&index->mutex);
	return !stopping;
}

/**
 * list_index() - Opener: one try at finding index @name among those @server lists, and its
 *                nonce. A server that has no such index refuses (UDSC_REFUSED).
 */
static enum udsc_status list_index(struct vdo_dedupe_index *index, const char *server,
                                   const char *name, uint64_t *nonce_ptr, struct udsc_error *error)
{
	struct udsc_index_info *infos = NULL;
	struct udsc_admin *admin;
	enum udsc_status status;
	size_t count = 0;

	status = udsc_admin_open(server, &index->config.security, index->config.timeout_ms, &admin,
	                         error);
	if (status != UDSC_OK)
		return status;
	status = udsc_admin_list(admin, &infos, &count, error);
	udsc_admin_close(admin);
	if (status != UDSC_OK)
		return status;
	status = UDSC_REFUSED;
	snprintf(error->message, sizeof(error->message),
	         "the server lists no index named %s (or the token may not see it)", name);
	for (size_t i = 0; i < count; i++) {
		if (strcmp(infos[i].name, name) == 0) {
			*nonce_ptr = infos[i].nonce;
			status = UDSC_OK;
			break;
		}
	}
	free(infos);
	return status;
}

/**
 * find_index() - Opener: find index @name on @server and its nonce, trying again with a
 *                growing wait while the server cannot be reached, until close gives up.
 *
 * Return: DD_SUCCESS, DD_BAD_STATE if the server refuses or has no such index (logged), or
 *         DD_TIMED_OUT if close gave up first.
 */
static int find_index(struct vdo_dedupe_index *index, const char *server, const char *name,
                      uint64_t *nonce_ptr)
{
	unsigned int wait_ms = RETRY_FIRST_MS;

	for (;;) {
		struct udsc_error error = { 0 };
		enum udsc_status status = list_index(index, server, name, nonce_ptr, &error);

		if (status == UDSC_OK)
			return DD_SUCCESS;
		if (!is_transient(status))
			return dd_log_error_strerror(DD_BAD_STATE, "dedupe index %s on %s: %s (%s)",
			                             name, server, udsc_status_name(status),
			                             error.message);
		if (wait_ms == RETRY_FIRST_MS)
			dd_log_warning("dedupe index %s: cannot reach %s (%s: %s); trying again",
			               name, server, udsc_status_name(status), error.message);
		if (!wait_unless_stopping(index, wait_ms))
			return DD_TIMED_OUT;
		wait_ms = (wait_ms * 2 > RETRY_MAX_MS) ? RETRY_MAX_MS : wait_ms * 2;
	}
}

/**
 * check_server() - Opener: the index exists on its server and, if the volume recorded a nonce,
 *                  has that one. Its nonce becomes the identity.
 */
static int check_server(struct vdo_dedupe_index *index)
{
	const struct vdo_index_config *config = &index->config;
	uint64_t nonce = 0;
	int result = find_index(index, config->server, config->index_name, &nonce);

	if (result != DD_SUCCESS)
		return result;
	if ((config->index_nonce != 0) && (nonce != config->index_nonce))
		return dd_log_error_strerror(
		    DD_BAD_STATE,
		    "dedupe index %s on %s has nonce %#llx, not %#llx as the volume recorded: it is "
		    "another index (dropped and created again?); no advice is taken from it",
		    config->index_name, config->server, (unsigned long long) nonce,
		    (unsigned long long) config->index_nonce);
	index->identity = nonce;
	return DD_SUCCESS;
}

/**
 * check_shards() - Opener: every shard's index exists on its server. Nonces are not checked:
 *                  a sharded index has no single one.
 */
static int check_shards(struct vdo_dedupe_index *index)
{
	const struct vdo_index_config *config = &index->config;
	const char *servers[UDSC_MAX_SHARDS];
	const char *names[UDSC_MAX_SHARDS];
	struct udsc_shard_map *map;
	char message[256];
	unsigned int count;
	int result = DD_SUCCESS;

	if (udsc_shard_map_load(config->shard_map, &map, message, sizeof(message)) != UDSC_OK)
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "dedupe index %s: %s",
		                             config->index_name, message);
	count = udsc_shard_map_shards(map, config->index_name, servers, names);
	if (count == 0)
		result = dd_log_error_strerror(
		    DD_INVALID_ARGUMENT, "dedupe index %s: the shard map %s has no such index",
		    config->index_name, config->shard_map);
	for (unsigned int s = 0; (s < count) && (result == DD_SUCCESS); s++) {
		uint64_t nonce;

		result = find_index(index, servers[s], names[s], &nonce);
	}
	udsc_shard_map_free(map);
	if (result == DD_SUCCESS)
		dd_log_info("dedupe index %s: its %u shards exist; their nonces are not checked (a "
		            "sharded index has no single identity)",
		            config->index_name, count);
	return result;
}

/** remote_open() - Opener: check the index's identity, then open the client (fail fast). */
static int remote_open(struct vdo_dedupe_index *index)
{
	const struct vdo_index_config *config = &index->config;
	struct udsc_options options = {
		.index = config->index_name,
		.shard_map = config->shard_map,
		.server = config->server,
		.security = config->security,
		.timeout_ms = config->timeout_ms,
		.fail_fast = true,
	};
	char message[256];
	int result = (config->shard_map != NULL) ? check_shards(index) : check_server(index);

	if (result != DD_SUCCESS)
		return result;
	if (udsc_open(&options, &index->remote, message, sizeof(message)) != UDSC_OK)
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "dedupe index %s: %s",
		                             config->index_name, message);
	dd_log_info("dedupe index %s on %s: connected, nonce %#llx", config->index_name,
	            (config->server != NULL) ? config->server : config->shard_map,
	            (unsigned long long) index->identity);
	return DD_SUCCESS;
}

/** remote_done() - A connection thread of the client: a query's request completed. */
static void remote_done(struct udsc_request *request)
{
	struct vdo_index_query *query = request->context;

	query->status = status_of(request->status);
	query->found = (query->status == VDO_INDEX_OK) && request->found;
	if (query->found)
		memcpy(query->old_data.data, request->old_data, UDSC_DATA_BYTES);
	else
		memset(&query->old_data, 0, sizeof(query->old_data));
	finish_query(query);
}

/** remote_launch() - Submit @query to the client; one it refuses is answered at once. */
static void remote_launch(struct vdo_dedupe_index *index, struct vdo_index_query *query)
{
	struct udsc_request *request = &query->request.remote;
	enum udsc_status status;

	memset(request, 0, sizeof(*request));
	request->type = udsc_type_of(query->operation);
	memcpy(request->name, query->name.name, UDSC_NAME_BYTES);
	memcpy(request->new_data, query->new_data.data, UDSC_DATA_BYTES);
	request->callback = remote_done;
	request->context = query;
	request->timeout_ms = index->config.timeout_ms;
	status = udsc_submit(index->remote, request);
	if (status != UDSC_OK)
		answer_later(query, status_of(status));
}

/** remote_close() - Close the client: what it still holds completes with UDSC_SHUTDOWN. */
static int remote_close(struct vdo_dedupe_index *index)
{
	if (index->remote != NULL)
		udsc_close(index->remote);
	index->remote = NULL;
	return DD_SUCCESS;
}

/** remote_get_stats() - A remote index's figures are not asked for: that waits on the network. */
static void remote_get_stats(struct vdo_dedupe_index *index, struct vdo_dedupe_index_stats *stats)
{
	(void) index;
	(void) stats;
}

static const struct index_ops remote_ops = {
	.kind = "remote",
	.open = remote_open,
	.launch = remote_launch,
	.close = remote_close,
	.get_stats = remote_get_stats,
};

/* ------------------------------------------------------------------------------------------ */
/* Opening                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/** check_config() - DD_SUCCESS, or DD_INVALID_ARGUMENT (logged) for a config that cannot work. */
static int check_config(const struct vdo_index_config *config)
{
	const char *problem = NULL;

	if (config == NULL) {
		problem = "no config";
	} else if (config->kind == VDO_INDEX_EMBEDDED) {
		if ((config->path == NULL) || (config->path[0] == '\0'))
			problem = "an embedded index needs a path";
		else if (config->zone_count > MAX_INDEX_ZONES)
			problem = "an embedded index has at most 16 zones";
		else if ((config->region_start > UINT64_MAX / INDEX_BLOCK_SIZE) ||
		         (config->region_blocks >
		          UINT64_MAX / INDEX_BLOCK_SIZE - config->region_start))
			problem = "the index region does not fit in 64 bits of bytes";
	} else if (config->kind == VDO_INDEX_REMOTE) {
		if ((config->index_name == NULL) || (config->index_name[0] == '\0'))
			problem = "a remote index needs a name";
		else if ((config->server == NULL) == (config->shard_map == NULL))
			problem = "a remote index needs either a server or a shard map";
	} else {
		problem = "unknown index kind";
	}
	if (problem == NULL)
		return DD_SUCCESS;
	return dd_log_error_strerror(DD_INVALID_ARGUMENT, "bad dedupe index config: %s", problem);
}

/** copy_string() - Replace *@field with a copy of itself (NULL stays NULL). */
static int copy_string(const char **field)
{
	char *copy;
	int result;

	if (*field == NULL)
		return DD_SUCCESS;
	result = dd_duplicate(*field, strlen(*field) + 1, "dedupe index config", &copy);
	*field = (result == DD_SUCCESS) ? copy : NULL;
	return result;
}

/** config_strings() - The addresses of every string field of @config, for copy and free. */
static unsigned int config_strings(struct vdo_index_config *config,
                                   const char **fields[CONFIG_STRINGS])
{
	unsigned int count = 0;

	fields[count++] = &config->path;
	fields[count++] = &config->index_name;
	fields[count++] = &config->server;
	fields[count++] = &config->shard_map;
	fields[count++] = &config->security.tls_ca;
	fields[count++] = &config->security.tls_cert;
	fields[count++] = &config->security.tls_key;
	fields[count++] = &config->security.tls_server_name;
	fields[count++] = &config->security.token;
	return count;
}

/** copy_config() - Copy @config and its strings into @index, with its defaults filled in. */
static int copy_config(struct vdo_dedupe_index *index, const struct vdo_index_config *config)
{
	const char **fields[CONFIG_STRINGS];
	unsigned int count;
	int result = DD_SUCCESS;

	index->config = *config;
	count = config_strings(&index->config, fields);
	for (unsigned int i = 0; i < count; i++) {
		int copied = copy_string(fields[i]);

		if (result == DD_SUCCESS)
			result = copied;
	}
	if (index->config.zone_count == 0)
		index->config.zone_count = 1;
	if (index->config.timeout_ms == 0)
		index->config.timeout_ms = DEFAULT_TIMEOUT_MS;
	return result;
}

/** free_index() - Free @index and what it holds (its engine is closed, its threads gone). */
static void free_index(struct vdo_dedupe_index *index)
{
	const char **fields[CONFIG_STRINGS];
	unsigned int count = config_strings(&index->config, fields);

	for (unsigned int i = 0; i < count; i++)
		dd_free((void *) *fields[i]);
	pthread_cond_destroy(&index->wake);
	pthread_mutex_destroy(&index->mutex);
	dd_free(index);
}

/** is_stopping() - Whether close has given up on the open. */
static bool is_stopping(struct vdo_dedupe_index *index)
{
	bool stopping;

	pthread_mutex_lock(&index->mutex);
	stopping = index->stopping;
	pthread_mutex_unlock(&index->mutex);
	return stopping;
}

/** open_in_background() - The opener thread: open the engine, then publish ONLINE or ERROR. */
static void *open_in_background(void *argument)
{
	struct vdo_dedupe_index *index = argument;
	int result;

	dd_log_set_thread_name("vdoidxopen");
	result = index->ops->open(index);
	if (result == DD_SUCCESS) {
		set_state(index, VDO_INDEX_ONLINE);
	} else if (!is_stopping(index)) {
		dd_log_error("dedupe is off: the %s dedupe index could not be opened",
		             index->ops->kind);
		set_state(index, VDO_INDEX_ERROR);
	}
	return NULL;
}

/** init_sync() - The opener's mutex and condition (on the monotonic clock). */
static int init_sync(struct vdo_dedupe_index *index)
{
	pthread_condattr_t attributes;
	int result = pthread_condattr_init(&attributes);

	if (result != 0)
		return result;
	result = pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
	if (result == 0)
		result = pthread_cond_init(&index->wake, &attributes);
	pthread_condattr_destroy(&attributes);
	if (result == 0)
		result = pthread_mutex_init(&index->mutex, NULL);
	return result;
}

int vdo_open_dedupe_index(const struct vdo_index_config *config,
                          struct vdo_dedupe_index **index_ptr)
{
	struct dd_thread_set_config threads = dd_default_thread_set_config("vdoidxans", 1);
	struct vdo_dedupe_index *index;
	int result = check_config(config);

	if (result != DD_SUCCESS)
		return result;
	result = DD_ALLOCATE(1, struct vdo_dedupe_index, "dedupe index", &index);
	if (result != DD_SUCCESS)
		return result;
	result = init_sync(index);
	if (result != DD_SUCCESS) {
		dd_free(index);
		return dd_log_error_strerror(result, "cannot make a dedupe index");
	}
	index->ops = (config->kind == VDO_INDEX_EMBEDDED) ? &embedded_ops : &remote_ops;
	atomic_init(&index->state, VDO_INDEX_OPENING);
	result = copy_config(index, config);
	/* The answerer is seldom busy: it sleeps at once. */
	threads.spin_ns = 0;
	if (result == DD_SUCCESS)
		result = dd_make_thread_set(&threads, &index->answerer);
	if (result == DD_SUCCESS) {
		result = pthread_create(&index->opener, NULL, open_in_background, index);
		index->opener_started = (result == 0);
	}
	if (result != DD_SUCCESS) {
		dd_free_thread_set(index->answerer);
		free_index(index);
		return dd_log_error_strerror(result, "cannot start the dedupe index");
	}
	*index_ptr = index;
	return DD_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* Queries, state and stats                                                                    */
/* ------------------------------------------------------------------------------------------ */

/** launch_query() - Hand @query to the engine; its launch is over. */
static void launch_query(struct vdo_dedupe_index *index, struct vdo_index_query *query)
{
	index->ops->launch(index, query);
	atomic_fetch_sub(&index->launching, 1);
}

/**
 * relay_query() - The answerer: launch a query asked inside an embedded index's callback, off
 *                 the engine's zone thread (its launch has been counted since it was asked).
 */
static void relay_query(struct dd_completion *completion)
{
	struct vdo_index_query *query = completion->parent;

	launch_query(query->index, query);
}

void vdo_query_index(struct vdo_dedupe_index *index, struct vdo_index_query *query)
{
	query->index = index;
	atomic_fetch_add(&index->in_flight, 1);
	if ((unsigned int) query->operation >= OPERATION_COUNT) {
		dd_log_error("dedupe index: bad operation %d", (int) query->operation);
		answer_later(query, VDO_INDEX_FAILED);
		return;
	}
	atomic_fetch_add(&index->launching, 1);
	if (atomic_load(&index->state) != VDO_INDEX_ONLINE) {
		atomic_fetch_sub(&index->launching, 1);
		answer_later(query, VDO_INDEX_UNAVAILABLE);
		return;
	}
	if (in_engine_callback && (index->ops == &embedded_ops)) {
		send_to_answerer(query, relay_query);
		return;
	}
	launch_query(index, query);
}

enum vdo_index_state vdo_get_dedupe_index_state(struct vdo_dedupe_index *index)
{
	return (enum vdo_index_state) atomic_load(&index->state);
}

/** read_counter() - A counter's value now. */
static uint64_t read_counter(atomic_uint_least64_t *counter)
{
	return atomic_load_explicit(counter, memory_order_relaxed);
}

void vdo_get_dedupe_index_stats(struct vdo_dedupe_index *index,
                                struct vdo_dedupe_index_stats *stats)
{
	memset(stats, 0, sizeof(*stats));
	stats->state = vdo_get_dedupe_index_state(index);
	stats->posts_found = read_counter(&index->found[VDO_INDEX_POST]);
	stats->posts_not_found = read_counter(&index->not_found[VDO_INDEX_POST]);
	stats->queries_found = read_counter(&index->found[VDO_INDEX_QUERY]);
	stats->queries_not_found = read_counter(&index->not_found[VDO_INDEX_QUERY]);
	stats->updates_found = read_counter(&index->found[VDO_INDEX_UPDATE]);
	stats->updates_not_found = read_counter(&index->not_found[VDO_INDEX_UPDATE]);
	stats->unavailable = read_counter(&index->unavailable);
	stats->timed_out = read_counter(&index->timed_out);
	stats->failed = read_counter(&index->failed);
	stats->in_flight = read_counter(&index->in_flight);
	if (stats->state == VDO_INDEX_ONLINE)
		index->ops->get_stats(index, stats);
}

uint64_t vdo_dedupe_index_identity(struct vdo_dedupe_index *index)
{
	return (vdo_get_dedupe_index_state(index) == VDO_INDEX_ONLINE) ? index->identity : 0;
}

const char *vdo_index_state_name(enum vdo_index_state state)
{
	switch (state) {
	case VDO_INDEX_OPENING:
		return "opening";
	case VDO_INDEX_REBUILDING:
		return "rebuilding";
	case VDO_INDEX_ONLINE:
		return "online";
	case VDO_INDEX_OFFLINE:
		return "offline";
	case VDO_INDEX_ERROR:
		return "error";
	}
	return "unknown";
}

/* ------------------------------------------------------------------------------------------ */
/* Closing                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/** stop_opener() - Tell the opener to give up if it is waiting to try again, and join it. */
static void stop_opener(struct vdo_dedupe_index *index)
{
	pthread_mutex_lock(&index->mutex);
	index->stopping = true;
	pthread_cond_broadcast(&index->wake);
	pthread_mutex_unlock(&index->mutex);
	if (index->opener_started)
		pthread_join(index->opener, NULL);
}

/** wait_for_zero() - Wait until @counter is zero (see the top of this file). */
static void wait_for_zero(atomic_uint_least64_t *counter)
{
	while (atomic_load(counter) > 0)
		dd_sleep_ns(CLOSE_POLL_NS);
}

int vdo_close_dedupe_index(struct vdo_dedupe_index *index)
{
	int result;

	if (index == NULL)
		return DD_SUCCESS;
	stop_opener(index);
	set_state(index, VDO_INDEX_OFFLINE);
	wait_for_zero(&index->launching);
	result = index->ops->close(index);
	wait_for_zero(&index->in_flight);
	dd_free_thread_set(index->answerer);
	free_index(index);
	return result;
}
