// SPDX-License-Identifier: GPL-2.0-only
/*
 * The Advice service: batches of requests to a named index.
 *
 * A batch is checked whole before any of it runs (its sizes agree, its types are known, it is
 * not larger than INDEXD_MAX_BATCH), so a malformed batch changes nothing. Its requests are
 * launched into the index engine from the rpc worker; each completes on a zone thread, and the
 * last one to complete builds the reply and sends it from there. The batch holds a reference to
 * its index until then, so a drop waits for it.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "uds/v1/index.pb-c.h"

#include "errors.h"
#include "indexd.h"
#include "logger.h"
#include "memory-alloc.h"

enum {
	NAME_BYTES = 16,
	DATA_BYTES = 16,
	RESULT_FOUND = 1,
	RESULT_LOCATION_SHIFT = 1,
	RESULT_FAILED = 16,
};

struct advice_batch {
	struct rpc_call *call;
	struct served_index *served;
	uint64_t batch_id;
	uint32_t count;
	atomic_uint pending;
	struct uds_request requests[];
};

static bool carries_data(enum uds_request_type type)
{
	return (type == UDS_POST) || (type == UDS_UPDATE);
}

/* Check a batch's shape; on failure fill @why. */
static bool batch_is_valid(const Uds__V1__AdviceBatch *batch, char *why, size_t size)
{
	size_t count = batch->types.len;
	size_t with_data = 0;

	if ((count == 0) || (count > INDEXD_MAX_BATCH)) {
		snprintf(why, size, "a batch holds 1 to %u requests, not %zu", INDEXD_MAX_BATCH,
		         count);
		return false;
	}
	for (size_t i = 0; i < count; i++) {
		if (batch->types.data[i] >= UDS_REQUEST_TYPES) {
			snprintf(why, size, "request %zu has unknown type %u", i,
			         batch->types.data[i]);
			return false;
		}
		with_data += carries_data(batch->types.data[i]);
	}
	if (batch->names.len != count * NAME_BYTES) {
		snprintf(why, size, "%zu requests need %zu bytes of names, not %zu", count,
		         count * NAME_BYTES, batch->names.len);
		return false;
	}
	if (batch->data.len != with_data * DATA_BYTES) {
		snprintf(why, size, "%zu POST/UPDATE requests need %zu bytes of data, not %zu",
		         with_data, with_data * DATA_BYTES, batch->data.len);
		return false;
	}
	return true;
}

/* Zone thread of the last request: answer the batch and free it. */
static void reply_to_batch(struct advice_batch *batch)
{
	Uds__V1__AdviceReply reply = UDS__V1__ADVICE_REPLY__INIT;
	uint8_t *results = NULL;
	uint8_t *old_data = NULL;
	size_t found = 0;

	if ((dd_allocate(batch->count, "advice results", &results) != DD_SUCCESS) ||
	    (dd_allocate((size_t) batch->count * DATA_BYTES + 1, "advice data", &old_data) !=
	     DD_SUCCESS)) {
		rpc_call_fail(batch->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < batch->count; i++) {
		const struct uds_request *request = &batch->requests[i];

		if (request->status != DD_SUCCESS) {
			results[i] = RESULT_FAILED;
			continue;
		}
		results[i] = (uint8_t) (request->location << RESULT_LOCATION_SHIFT);
		if (request->found) {
			results[i] |= RESULT_FOUND;
			memcpy(old_data + found * DATA_BYTES, request->old_data.data, DATA_BYTES);
			found++;
		}
	}
	reply.batch_id = batch->batch_id;
	reply.results = (ProtobufCBinaryData){ .len = batch->count, .data = results };
	reply.old_data = (ProtobufCBinaryData){ .len = found * DATA_BYTES, .data = old_data };
	rpc_call_reply(batch->call, &reply.base);
out:
	dd_free(results);
	dd_free(old_data);
	registry_put(batch->served);
	dd_free(batch);
}

/* One request (or the launch itself) is done; the last one answers the batch. */
static void finish_one(struct advice_batch *batch)
{
	if (atomic_fetch_sub_explicit(&batch->pending, 1, memory_order_acq_rel) == 1)
		reply_to_batch(batch);
}

static void request_done(struct uds_request *request)
{
	finish_one(request->context);
}

/* Fill and launch every request of a checked batch. */
static void launch_batch(struct advice_batch *batch, const Uds__V1__AdviceBatch *message)
{
	const uint8_t *data = message->data.data;

	/* One extra count, dropped last, so that no completion replies before all are launched. */
	atomic_store(&batch->pending, batch->count + 1);
	for (uint32_t i = 0; i < batch->count; i++) {
		struct uds_request *request = &batch->requests[i];

		request->type = message->types.data[i];
		memcpy(request->record_name.name, message->names.data + (size_t) i * NAME_BYTES,
		       NAME_BYTES);
		if (carries_data(request->type)) {
			memcpy(request->new_data.data, data, DATA_BYTES);
			data += DATA_BYTES;
		}
		request->callback = request_done;
		request->index = batch->served->index;
		request->context = batch;
		if (uds_launch_request(request) != DD_SUCCESS) {
			request->status = DD_BAD_STATE;
			finish_one(batch);
		}
	}
	finish_one(batch);
}

static void handle_batch(struct rpc_call *call, const uint8_t *request, size_t size, void *context)
{
	struct indexd *daemon = context;
	Uds__V1__AdviceBatch *message = uds__v1__advice_batch__unpack(NULL, size, request);
	struct advice_batch *batch;
	struct served_index *served;
	char why[128];

	if (message == NULL) {
		rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "malformed AdviceBatch");
		return;
	}
	if (!batch_is_valid(message, why, sizeof(why))) {
		rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", why);
		goto out;
	}
	served = registry_get(daemon->registry, message->index);
	if (served == NULL) {
		rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "no index named \"%.80s\"",
		              message->index);
		goto out;
	}
	if (dd_allocate(sizeof(*batch) + message->types.len * sizeof(struct uds_request),
	                "advice batch", &batch) != DD_SUCCESS) {
		registry_put(served);
		rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	batch->call = call;
	batch->served = served;
	batch->batch_id = message->batch_id;
	batch->count = (uint32_t) message->types.len;
	launch_batch(batch, message);
out:
	uds__v1__advice_batch__free_unpacked(message, NULL);
}

const struct rpc_method *indexd_advice_methods(struct indexd *daemon, size_t *count)
{
	static struct rpc_method methods[] = {
		{ "/uds.v1.Advice/Batch", handle_batch, NULL },
	};

	methods[0].context = daemon;
	*count = 1;
	return methods;
}
