// SPDX-License-Identifier: GPL-2.0-only
/*
 * Synchronous administrative calls (udsc_admin_*): one unary call at a time on a channel of
 * their own, each waiting on a completion queue of its own with the connection's timeout.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"

struct udsc_admin {
	grpc_channel *channel;
	char *token;
	unsigned int timeout_ms;
};

static void set_error(struct udsc_error *error, int code, const char *message, size_t length)
{
	if (error == NULL)
		return;
	error->code = code;
	if (length >= sizeof(error->message))
		length = sizeof(error->message) - 1;
	memcpy(error->message, message, length);
	error->message[length] = '\0';
}

enum udsc_status udsc_admin_open(const char *server, const struct udsc_security *security,
                                 unsigned int timeout_ms, struct udsc_admin **admin_ptr,
                                 struct udsc_error *error)
{
	struct udsc_admin *admin = calloc(1, sizeof(*admin));
	char message[256] = "";

	if (admin == NULL)
		return UDSC_INVALID;
	grpc_init();
	admin->timeout_ms = (timeout_ms != 0) ? timeout_ms : 30000;
	if ((security != NULL) && (security->token != NULL))
		admin->token = strdup(security->token);
	admin->channel = udsc_make_channel(server, security, 0, message, sizeof(message));
	if (admin->channel == NULL) {
		set_error(error, GRPC_STATUS_INVALID_ARGUMENT, message, strlen(message));
		udsc_admin_close(admin);
		return UDSC_INVALID;
	}
	*admin_ptr = admin;
	return UDSC_OK;
}

void udsc_admin_close(struct udsc_admin *admin)
{
	if (admin->channel != NULL)
		grpc_channel_destroy(admin->channel);
	free(admin->token);
	free(admin);
	grpc_shutdown();
}

/*
 * Call @method with @request; on success unpack the reply with @descriptor into *@reply (free
 * with protobuf_c_message_free_unpacked()).
 */
static enum udsc_status call(struct udsc_admin *admin, const char *method,
                             const ProtobufCMessage *request,
                             const ProtobufCMessageDescriptor *descriptor, ProtobufCMessage **reply,
                             struct udsc_error *error)
{
	grpc_completion_queue *queue = grpc_completion_queue_create_for_pluck(NULL);
	gpr_timespec deadline = udsc_deadline_at(udsc_now_ns() + admin->timeout_ms * 1000000ULL);
	grpc_slice method_slice = grpc_slice_from_static_string(method);
	grpc_call *grpc_call =
	    grpc_channel_create_call(admin->channel, NULL, GRPC_PROPAGATE_DEFAULTS, queue,
	                             method_slice, NULL, deadline, NULL);
	grpc_metadata_array initial_metadata;
	grpc_metadata_array trailing_metadata;
	grpc_byte_buffer *outgoing = udsc_buffer_of(request);
	grpc_byte_buffer *incoming = NULL;
	grpc_status_code code = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice();
	enum udsc_status status = UDSC_OK;
	grpc_metadata auth;
	size_t auth_count = udsc_auth_metadata(admin->token, &auth);
	grpc_op ops[6];
	int tag;

	grpc_metadata_array_init(&initial_metadata);
	grpc_metadata_array_init(&trailing_metadata);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].data.send_initial_metadata.count = auth_count;
	ops[0].data.send_initial_metadata.metadata = &auth;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = outgoing;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_metadata;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &incoming;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &trailing_metadata;
	ops[5].data.recv_status_on_client.status = &code;
	ops[5].data.recv_status_on_client.status_details = &details;
	if (grpc_call_start_batch(grpc_call, ops, 6, &tag, NULL) != GRPC_CALL_OK) {
		set_error(error, GRPC_STATUS_INTERNAL, "cannot start the call", 21);
		status = UDSC_FAILED;
	} else {
		grpc_completion_queue_pluck(queue, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (code != GRPC_STATUS_OK) {
			status = udsc_status_of_code(code);
			set_error(error, code, (const char *) GRPC_SLICE_START_PTR(details),
			          GRPC_SLICE_LENGTH(details));
		} else if ((incoming == NULL) || (descriptor == NULL)) {
			if (reply != NULL)
				*reply = NULL;
		} else {
			grpc_slice bytes = udsc_read_buffer(incoming);

			*reply =
			    protobuf_c_message_unpack(descriptor, NULL, GRPC_SLICE_LENGTH(bytes),
			                              GRPC_SLICE_START_PTR(bytes));
			grpc_slice_unref(bytes);
			if (*reply == NULL) {
				set_error(error, GRPC_STATUS_INTERNAL, "malformed reply", 15);
				status = UDSC_FAILED;
			}
		}
	}
	udsc_release_metadata(&auth, auth_count);
	if (incoming != NULL)
		grpc_byte_buffer_destroy(incoming);
	grpc_byte_buffer_destroy(outgoing);
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&initial_metadata);
	grpc_metadata_array_destroy(&trailing_metadata);
	grpc_call_unref(grpc_call);
	grpc_completion_queue_shutdown(queue);
	grpc_completion_queue_pluck(queue, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	grpc_completion_queue_destroy(queue);
	return status;
}

static void copy_info(const Uds__V1__IndexInfo *from, struct udsc_index_info *to)
{
	memset(to, 0, sizeof(*to));
	snprintf(to->name, sizeof(to->name), "%s", from->name);
	snprintf(to->path, sizeof(to->path), "%s", from->path);
	if (from->geometry != NULL) {
		to->memory_mb = from->geometry->memory_mb;
		to->sparse = from->geometry->sparse;
		to->zones = from->geometry->zones;
	}
	to->storage_bytes = from->storage_bytes;
	to->records_per_volume = from->records_per_volume;
	to->nonce = from->nonce;
}

enum udsc_status udsc_admin_create(struct udsc_admin *admin, const char *name,
                                   unsigned int memory_mb, bool sparse, unsigned int zones,
                                   const char *path, struct udsc_index_info *info,
                                   struct udsc_error *error)
{
	Uds__V1__CreateIndexRequest request = UDS__V1__CREATE_INDEX_REQUEST__INIT;
	Uds__V1__Geometry geometry = UDS__V1__GEOMETRY__INIT;
	ProtobufCMessage *reply = NULL;
	enum udsc_status status;

	geometry.memory_mb = memory_mb;
	geometry.sparse = sparse;
	geometry.zones = zones;
	request.name = (char *) name;
	request.geometry = &geometry;
	request.path = (char *) ((path != NULL) ? path : "");
	status = call(admin, "/uds.v1.IndexAdmin/CreateIndex", &request.base,
	              &uds__v1__index_info__descriptor, &reply, error);
	if ((status == UDSC_OK) && (reply != NULL)) {
		if (info != NULL)
			copy_info((Uds__V1__IndexInfo *) reply, info);
		protobuf_c_message_free_unpacked(reply, NULL);
	}
	return status;
}

enum udsc_status udsc_admin_drop(struct udsc_admin *admin, const char *name, bool delete_storage,
                                 struct udsc_error *error)
{
	Uds__V1__DropIndexRequest request = UDS__V1__DROP_INDEX_REQUEST__INIT;

	request.name = (char *) name;
	request.delete_storage = delete_storage;
	return call(admin, "/uds.v1.IndexAdmin/DropIndex", &request.base, NULL, NULL, error);
}

enum udsc_status udsc_admin_list(struct udsc_admin *admin, struct udsc_index_info **infos,
                                 size_t *count, struct udsc_error *error)
{
	Uds__V1__ListIndexesRequest request = UDS__V1__LIST_INDEXES_REQUEST__INIT;
	ProtobufCMessage *reply = NULL;
	Uds__V1__ListIndexesReply *list;
	enum udsc_status status;

	status = call(admin, "/uds.v1.IndexAdmin/ListIndexes", &request.base,
	              &uds__v1__list_indexes_reply__descriptor, &reply, error);
	*infos = NULL;
	*count = 0;
	if (status != UDSC_OK)
		return status;
	list = (Uds__V1__ListIndexesReply *) reply;
	if ((list != NULL) && (list->n_indexes > 0)) {
		*infos = calloc(list->n_indexes, sizeof(**infos));
		if (*infos == NULL) {
			protobuf_c_message_free_unpacked(reply, NULL);
			return UDSC_FAILED;
		}
		for (size_t i = 0; i < list->n_indexes; i++)
			copy_info(list->indexes[i], &(*infos)[i]);
		*count = list->n_indexes;
	}
	if (reply != NULL)
		protobuf_c_message_free_unpacked(reply, NULL);
	return UDSC_OK;
}

static void copy_counts(uint64_t *to, size_t room, const uint64_t *from, size_t count)
{
	for (size_t i = 0; (i < room) && (i < count); i++)
		to[i] = from[i];
}

enum udsc_status udsc_admin_stats(struct udsc_admin *admin, const char *name,
                                  struct udsc_index_stats *stats, struct udsc_error *error)
{
	Uds__V1__StatsRequest request = UDS__V1__STATS_REQUEST__INIT;
	ProtobufCMessage *reply = NULL;
	const Uds__V1__IndexStats *s;
	enum udsc_status status;

	request.name = (char *) name;
	status = call(admin, "/uds.v1.IndexAdmin/GetStats", &request.base,
	              &uds__v1__index_stats__descriptor, &reply, error);
	memset(stats, 0, sizeof(*stats));
	if ((status != UDSC_OK) || (reply == NULL))
		return status;
	s = (const Uds__V1__IndexStats *) reply;
	stats->entries_indexed = s->entries_indexed;
	stats->entries_discarded = s->entries_discarded;
	stats->collisions = s->collisions;
	stats->early_flushes = s->early_flushes;
	stats->overflows = s->overflows;
	stats->rebalances = s->rebalances;
	stats->cache_hits = s->cache_hits;
	stats->cache_misses = s->cache_misses;
	stats->reads_queued = s->reads_queued;
	stats->read_errors = s->read_errors;
	stats->chapters_written = s->chapters_written;
	stats->open_chapter = s->open_chapter;
	stats->oldest_chapter = s->oldest_chapter;
	stats->volume_index_bytes = s->volume_index_bytes;
	stats->memory_bytes = s->memory_bytes;
	stats->sparse_cache_hits = s->sparse_cache_hits;
	stats->sparse_cache_misses = s->sparse_cache_misses;
	stats->sparse_chapters_loaded = s->sparse_chapters_loaded;
	stats->chapters_dropped = s->chapters_dropped;
	stats->rebuilt = s->rebuilt;
	stats->nonce = s->nonce;
	copy_counts(stats->requests, 5, s->requests, s->n_requests);
	copy_counts(stats->found, 5, s->found, s->n_found);
	copy_counts(stats->found_in, 3, s->found_in, s->n_found_in);
	protobuf_c_message_free_unpacked(reply, NULL);
	return UDSC_OK;
}

enum udsc_status udsc_admin_save(struct udsc_admin *admin, const char *name,
                                 struct udsc_error *error)
{
	Uds__V1__SaveRequest request = UDS__V1__SAVE_REQUEST__INIT;

	request.name = (char *) ((name != NULL) ? name : "");
	return call(admin, "/uds.v1.IndexAdmin/SaveIndex", &request.base, NULL, NULL, error);
}

enum udsc_status udsc_admin_health(struct udsc_admin *admin, const char *service, bool *serving,
                                   struct udsc_error *error)
{
	Grpc__Health__V1__HealthCheckRequest request = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	ProtobufCMessage *reply = NULL;
	enum udsc_status status;

	request.service = (char *) ((service != NULL) ? service : "");
	status = call(admin, "/grpc.health.v1.Health/Check", &request.base,
	              &grpc__health__v1__health_check_response__descriptor, &reply, error);
	*serving = false;
	if ((status == UDSC_OK) && (reply != NULL)) {
		*serving = ((Grpc__Health__V1__HealthCheckResponse *) reply)->status ==
		           GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
		protobuf_c_message_free_unpacked(reply, NULL);
	}
	return status;
}

enum udsc_status udsc_admin_batch(struct udsc_admin *admin, const char *index,
                                  struct udsc_request *requests, size_t count,
                                  struct udsc_error *error)
{
	Uds__V1__AdviceBatch request = UDS__V1__ADVICE_BATCH__INIT;
	ProtobufCMessage *reply = NULL;
	enum udsc_status status;
	uint8_t *bytes;
	size_t with_data = 0;

	if ((count == 0) || (count > 4096))
		return UDSC_INVALID;
	bytes = malloc(count * (1 + UDSC_NAME_BYTES + UDSC_DATA_BYTES));
	if (bytes == NULL)
		return UDSC_FAILED;
	for (size_t i = 0; i < count; i++) {
		bytes[i] = (uint8_t) requests[i].type;
		memcpy(bytes + count + i * UDSC_NAME_BYTES, requests[i].name, UDSC_NAME_BYTES);
		if ((requests[i].type == UDSC_POST) || (requests[i].type == UDSC_UPDATE))
			memcpy(bytes + count * (1 + UDSC_NAME_BYTES) +
			           UDSC_DATA_BYTES * with_data++,
			       requests[i].new_data, UDSC_DATA_BYTES);
	}
	request.index = (char *) index;
	request.types = (ProtobufCBinaryData){ .len = count, .data = bytes };
	request.names =
	    (ProtobufCBinaryData){ .len = count * UDSC_NAME_BYTES, .data = bytes + count };
	request.data = (ProtobufCBinaryData){ .len = with_data * UDSC_DATA_BYTES,
		                              .data = bytes + count * (1 + UDSC_NAME_BYTES) };
	status = call(admin, "/uds.v1.Advice/Batch", &request.base,
	              &uds__v1__advice_reply__descriptor, &reply, error);
	free(bytes);
	for (size_t i = 0; i < count; i++)
		requests[i].status = status;
	if ((status == UDSC_OK) && (reply != NULL)) {
		if (!udsc_fill_replies((Uds__V1__AdviceReply *) reply, requests, count, true)) {
			set_error(error, GRPC_STATUS_INTERNAL, "reply does not match the batch",
			          30);
			status = UDSC_FAILED;
		}
		protobuf_c_message_free_unpacked(reply, NULL);
	}
	return status;
}
