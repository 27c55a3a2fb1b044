// SPDX-License-Identifier: GPL-2.0-only
/*
 * The IndexAdmin service (create, drop, list, stats, save) and grpc.health.v1.Health/Check.
 *
 * Each admin call is copied into a job for the admin thread, which may block on the index
 * (creating storage, loading, saving) and replies from there. Health is answered on the rpc
 * worker at once.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "uds/v1/index.pb-c.h"

#include "errors.h"
#include "indexd.h"
#include "logger.h"
#include "memory-alloc.h"

struct admin_job {
	struct dd_completion completion;
	struct indexd *daemon;
	struct rpc_call *call;
	void (*work)(struct admin_job *job);
	size_t size;
	uint8_t request[];
};

grpc_status_code indexd_status_of(int result)
{
	switch (result) {
	case DD_SUCCESS:
		return GRPC_STATUS_OK;
	case DD_INVALID_ARGUMENT:
	case DD_OUT_OF_RANGE:
		return GRPC_STATUS_INVALID_ARGUMENT;
	case DD_DUPLICATE_NAME:
	case EEXIST:
		return GRPC_STATUS_ALREADY_EXISTS;
	case ENOENT:
		return GRPC_STATUS_NOT_FOUND;
	case EACCES:
	case EPERM:
		return GRPC_STATUS_PERMISSION_DENIED;
	default:
		return GRPC_STATUS_INTERNAL;
	}
}

grpc_status_code indexd_check_access(struct indexd *daemon, struct rpc_call *call,
                                     const char *index, unsigned int rights, char *why, size_t size)
{
	size_t length = 0;
	const char *token = rpc_call_metadata(call, "authorization", &length);

	switch (access_check(daemon->access, token, length, index, rights)) {
	case ACCESS_GRANTED:
		return GRPC_STATUS_OK;
	case ACCESS_UNAUTHENTICATED:
		snprintf(why, size,
		         "a valid access token is needed (authorization: Bearer <token>)");
		return GRPC_STATUS_UNAUTHENTICATED;
	default:
		if (index == NULL)
			snprintf(why, size, "this token does not cover every index");
		else
			snprintf(why, size,
			         "this token does not give that right on index \"%.80s\"", index);
		return GRPC_STATUS_PERMISSION_DENIED;
	}
}

bool indexd_allowed(struct indexd *daemon, struct rpc_call *call, const char *index,
                    unsigned int rights)
{
	char why[160];
	grpc_status_code code = indexd_check_access(daemon, call, index, rights, why, sizeof(why));

	if (code == GRPC_STATUS_OK)
		return true;
	rpc_call_fail(call, code, "%s", why);
	return false;
}

static void fail_with(struct rpc_call *call, int result, const char *what)
{
	rpc_call_fail(call, indexd_status_of(result), "%s: %s", what,
	              (result == ENOENT) ? "no such index" : dd_strerror(result));
}

/* ------------------------------------------------------------------------------------------ */
/* The methods, on the admin thread                                                            */
/* ------------------------------------------------------------------------------------------ */

static void fill_info(const struct served_index *served, Uds__V1__IndexInfo *info,
                      Uds__V1__Geometry *geometry)
{
	geometry->memory_mb = served->parameters.memory_mb;
	geometry->sparse = served->parameters.sparse;
	geometry->zones = served->parameters.zone_count;
	info->name = (char *) served->name;
	info->geometry = geometry;
	info->path = (char *) served->path;
	info->storage_bytes = served->storage_bytes;
	info->records_per_volume = served->records_per_volume;
	info->nonce = served->nonce;
}

static void reply_info(struct rpc_call *call, struct index_registry *registry, const char *name)
{
	struct served_index *served = registry_get(registry, name);
	Uds__V1__IndexInfo info = UDS__V1__INDEX_INFO__INIT;
	Uds__V1__Geometry geometry = UDS__V1__GEOMETRY__INIT;

	if (served == NULL) {
		fail_with(call, ENOENT, "create");
		return;
	}
	fill_info(served, &info, &geometry);
	rpc_call_reply(call, &info.base);
	registry_put(served);
}

static void create_index(struct admin_job *job)
{
	Uds__V1__CreateIndexRequest *request =
	    uds__v1__create_index_request__unpack(NULL, job->size, job->request);
	struct uds_parameters parameters = { 0 };
	int result;

	if (request == NULL) {
		rpc_call_fail(job->call, GRPC_STATUS_INVALID_ARGUMENT, "malformed CreateIndex");
		return;
	}
	if (!registry_valid_name(request->name)) {
		rpc_call_fail(job->call, GRPC_STATUS_INVALID_ARGUMENT,
		              "bad index name \"%.80s\": use 1 to 64 of A-Z a-z 0-9 _ . -",
		              request->name);
		goto out;
	}
	if (!indexd_allowed(job->daemon, job->call, request->name, ACCESS_MANAGE))
		goto out;
	if (request->geometry != NULL) {
		parameters.memory_mb = request->geometry->memory_mb;
		parameters.sparse = request->geometry->sparse;
		parameters.zone_count = request->geometry->zones;
	}
	if (parameters.zone_count > UDS_MAX_ZONES) {
		rpc_call_fail(job->call, GRPC_STATUS_INVALID_ARGUMENT, "at most %u zones",
		              UDS_MAX_ZONES);
		goto out;
	}
	result = registry_create(job->daemon->registry, request->name, &parameters, request->path);
	if (result != DD_SUCCESS)
		fail_with(job->call, result, "create");
	else
		reply_info(job->call, job->daemon->registry, request->name);
out:
	uds__v1__create_index_request__free_unpacked(request, NULL);
}

static void drop_index(struct admin_job *job)
{
	Uds__V1__DropIndexRequest *request =
	    uds__v1__drop_index_request__unpack(NULL, job->size, job->request);
	Uds__V1__DropIndexReply reply = UDS__V1__DROP_INDEX_REPLY__INIT;
	int result;

	if (request == NULL) {
		rpc_call_fail(job->call, GRPC_STATUS_INVALID_ARGUMENT, "malformed DropIndex");
		return;
	}
	if (indexd_allowed(job->daemon, job->call, request->name, ACCESS_MANAGE)) {
		result =
		    registry_drop(job->daemon->registry, request->name, request->delete_storage);
		if (result != DD_SUCCESS)
			fail_with(job->call, result, "drop");
		else
			rpc_call_reply(job->call, &reply.base);
	}
	uds__v1__drop_index_request__free_unpacked(request, NULL);
}

/* Whether the caller may see an index in a listing. */
static bool may_see(struct admin_job *job, const char *name)
{
	char why[160];

	return indexd_check_access(job->daemon, job->call, name, ACCESS_STATS, why, sizeof(why)) ==
	       GRPC_STATUS_OK;
}

static void list_indexes(struct admin_job *job)
{
	Uds__V1__ListIndexesReply reply = UDS__V1__LIST_INDEXES_REPLY__INIT;
	Uds__V1__IndexInfo *infos = NULL;
	Uds__V1__IndexInfo **pointers = NULL;
	Uds__V1__Geometry *geometries = NULL;
	struct served_index **list = NULL;
	size_t count = 0;
	size_t shown = 0;
	int result;

	if (!indexd_allowed(job->daemon, job->call, NULL, 0))
		return;
	result = registry_list(job->daemon->registry, &list, &count);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(count + 1, Uds__V1__IndexInfo, "infos", &infos);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(count + 1, Uds__V1__IndexInfo *, "info list", &pointers);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(count + 1, Uds__V1__Geometry, "geometries", &geometries);
	if (result != DD_SUCCESS) {
		fail_with(job->call, result, "list");
	} else {
		for (size_t i = 0; i < count; i++) {
			if (!may_see(job, list[i]->name))
				continue;
			uds__v1__index_info__init(&infos[shown]);
			uds__v1__geometry__init(&geometries[shown]);
			fill_info(list[i], &infos[shown], &geometries[shown]);
			pointers[shown] = &infos[shown];
			shown++;
		}
		reply.n_indexes = shown;
		reply.indexes = pointers;
		rpc_call_reply(job->call, &reply.base);
	}
	if (list != NULL)
		registry_put_list(list, count);
	dd_free(infos);
	dd_free(pointers);
	dd_free(geometries);
}

static void get_stats(struct admin_job *job)
{
	Uds__V1__StatsRequest *request =
	    uds__v1__stats_request__unpack(NULL, job->size, job->request);
	Uds__V1__IndexStats reply = UDS__V1__INDEX_STATS__INIT;
	struct uds_index_stats stats;
	struct served_index *served;

	if (request == NULL) {
		rpc_call_fail(job->call, GRPC_STATUS_INVALID_ARGUMENT, "malformed GetStats");
		return;
	}
	if (!indexd_allowed(job->daemon, job->call, request->name, ACCESS_STATS)) {
		uds__v1__stats_request__free_unpacked(request, NULL);
		return;
	}
	served = registry_get(job->daemon->registry, request->name);
	if (served == NULL) {
		fail_with(job->call, ENOENT, "stats");
	} else if (uds_get_index_stats(served->index, &stats) != DD_SUCCESS) {
		fail_with(job->call, DD_BAD_STATE, "stats");
	} else {
		reply.name = served->name;
		reply.nonce = stats.nonce;
		reply.entries_indexed = stats.entries_indexed;
		reply.entries_discarded = stats.entries_discarded;
		reply.collisions = stats.collisions;
		reply.early_flushes = stats.early_flushes;
		reply.overflows = stats.overflows;
		reply.rebalances = stats.rebalances;
		reply.cache_hits = stats.cache_hits;
		reply.cache_misses = stats.cache_misses;
		reply.reads_queued = stats.reads_queued;
		reply.read_errors = stats.read_errors;
		reply.chapters_written = stats.chapters_written;
		reply.open_chapter = stats.open_chapter;
		reply.oldest_chapter = stats.oldest_chapter;
		reply.volume_index_bytes = stats.volume_index_memory;
		reply.memory_bytes = stats.memory_used;
		reply.sparse_cache_hits = stats.sparse_cache_hits;
		reply.sparse_cache_misses = stats.sparse_cache_misses;
		reply.sparse_chapters_loaded = stats.sparse_chapters_loaded;
		reply.chapters_dropped = stats.chapters_dropped;
		reply.rebuilt = stats.rebuilt;
		reply.n_requests = UDS_REQUEST_TYPES;
		reply.requests = stats.requests;
		reply.n_found = UDS_REQUEST_TYPES;
		reply.found = stats.found;
		reply.n_found_in = UDS_LOCATIONS - 1;
		reply.found_in = &stats.found_in[1];
		rpc_call_reply(job->call, &reply.base);
	}
	if (served != NULL)
		registry_put(served);
	uds__v1__stats_request__free_unpacked(request, NULL);
}

static void save_index(struct admin_job *job)
{
	Uds__V1__SaveRequest *request =
	    uds__v1__save_request__unpack(NULL, job->size, job->request);
	Uds__V1__SaveReply reply = UDS__V1__SAVE_REPLY__INIT;
	const char *name;
	int result;

	if (request == NULL) {
		rpc_call_fail(job->call, GRPC_STATUS_INVALID_ARGUMENT, "malformed SaveIndex");
		return;
	}
	name = (request->name[0] != '\0') ? request->name : NULL;
	if (indexd_allowed(job->daemon, job->call, name, ACCESS_MANAGE)) {
		result = registry_save(job->daemon->registry, name);
		if (result != DD_SUCCESS)
			fail_with(job->call, result, "save");
		else
			rpc_call_reply(job->call, &reply.base);
	}
	uds__v1__save_request__free_unpacked(request, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Handlers, on the rpc workers                                                                */
/* ------------------------------------------------------------------------------------------ */

static void run_admin_job(struct dd_completion *completion)
{
	struct admin_job *job = completion->parent;

	job->work(job);
	dd_free(job);
}

/* Copy the request into a job and queue it for the admin thread. */
static void queue_admin_job(struct rpc_call *call, const uint8_t *request, size_t size,
                            struct indexd *daemon, void (*work)(struct admin_job *job))
{
	struct admin_job *job;

	if (dd_allocate(sizeof(*job) + size, "admin job", &job) != DD_SUCCESS) {
		rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	job->daemon = daemon;
	job->call = call;
	job->work = work;
	job->size = size;
	memcpy(job->request, request, size);
	dd_initialize_completion(&job->completion, daemon->admin_thread);
	dd_prepare_completion(&job->completion, run_admin_job, NULL, 0, job);
	dd_launch_completion(&job->completion);
}

#define ADMIN_HANDLER(name, work)                                                    \
	static void name(struct rpc_call *call, const uint8_t *request, size_t size, \
	                 void *context)                                              \
	{                                                                            \
		queue_admin_job(call, request, size, context, work);                 \
	}

ADMIN_HANDLER(handle_create, create_index)
ADMIN_HANDLER(handle_drop, drop_index)
ADMIN_HANDLER(handle_list, list_indexes)
ADMIN_HANDLER(handle_stats, get_stats)
ADMIN_HANDLER(handle_save, save_index)

/* grpc.health.v1.Health/Check: the server, or one of its services by name. */
static void handle_health_check(struct rpc_call *call, const uint8_t *request, size_t size,
                                void *context)
{
	static const char *const services[] = { "", "uds.v1.Advice", "uds.v1.IndexAdmin",
		                                "grpc.health.v1.Health" };
	Grpc__Health__V1__HealthCheckRequest *check =
	    grpc__health__v1__health_check_request__unpack(NULL, size, request);
	Grpc__Health__V1__HealthCheckResponse reply = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	struct indexd *daemon = context;
	bool known = false;

	if (check == NULL) {
		rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "malformed HealthCheckRequest");
		return;
	}
	for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++)
		known |= (strcmp(check->service, services[i]) == 0);
	if (!known) {
		rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "unknown service");
	} else {
		reply.status =
		    atomic_load(&daemon->stopping)
		        ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
		        : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
		rpc_call_reply(call, &reply.base);
	}
	grpc__health__v1__health_check_request__free_unpacked(check, NULL);
}

const struct rpc_method *indexd_admin_methods(struct indexd *daemon, size_t *count)
{
	static struct rpc_method methods[] = {
		{ .path = "/uds.v1.IndexAdmin/CreateIndex", .handler = handle_create },
		{ .path = "/uds.v1.IndexAdmin/DropIndex", .handler = handle_drop },
		{ .path = "/uds.v1.IndexAdmin/ListIndexes", .handler = handle_list },
		{ .path = "/uds.v1.IndexAdmin/GetStats", .handler = handle_stats },
		{ .path = "/uds.v1.IndexAdmin/SaveIndex", .handler = handle_save },
		{ .path = "/grpc.health.v1.Health/Check", .handler = handle_health_check },
	};

	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		methods[i].context = daemon;
	*count = sizeof(methods) / sizeof(methods[0]);
	return methods;
}
