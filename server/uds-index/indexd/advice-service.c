// SPDX-License-Identifier: GPL-2.0-only
/*
 * The Advice service: batches of requests to a named index, one per unary Batch call or many
 * on a Stream.
 *
 * A batch is decoded and checked whole (advice-batch.h), then its caller's token is checked
 * for the index, before any of it runs. Its requests are launched into the index engine from
 * the rpc worker; each completes on a zone thread, and the last one to complete builds the
 * reply and sends it from there. The batch holds a reference to its index until then, so a
 * drop waits for it. No rpc worker ever waits for the index.
 *
 * On a stream, a batch that cannot run (malformed, unauthorized, unknown index) ends the
 * stream with that status once the batches before it are answered; the rpc server's window
 * bounds the batches of one stream in the index at once.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "advice-batch.h"
#include "errors.h"
#include "indexd.h"
#include "logger.h"
#include "memory-alloc.h"

/*
 * A batch and its reply share one allocation, filled before it is read (so not zeroed: zeroing
 * a megabyte for each batch of 4096 made the allocator purge and fault its pages every time):
 * the requests, then a result byte per request, then room for every request's old data.
 */
struct advice_batch {
	struct rpc_call *call;
	bool streamed;
	struct served_index *served;
	uint64_t batch_id;
	uint32_t count;
	atomic_uint pending;
	uint8_t *results;
	uint8_t *old_data;
	struct uds_request requests[];
};

static size_t advice_batch_bytes(size_t count)
{
	return sizeof(struct advice_batch) +
	       count * (sizeof(struct uds_request) + 1 + ADVICE_DATA_BYTES);
}

/* Answer the batch's call with an error: the unary call, or the stream (which it then ends). */
static void __attribute__((format(printf, 4, 5)))
refuse(struct rpc_call *call, bool streamed, grpc_status_code code, const char *format, ...)
{
	char message[200];
	va_list args;

	va_start(args, format);
	vsnprintf(message, sizeof(message), format, args);
	va_end(args);
	if (streamed)
		rpc_stream_fail(call, code, "%s", message);
	else
		rpc_call_fail(call, code, "%s", message);
}

/* Zone thread of the last request: answer the batch and free it. */
static void reply_to_batch(struct advice_batch *batch)
{
	Uds__V1__AdviceReply reply = UDS__V1__ADVICE_REPLY__INIT;
	size_t found =
	    advice_reply_fill(batch->requests, batch->count, batch->results, batch->old_data);

	reply.batch_id = batch->batch_id;
	reply.results = (ProtobufCBinaryData){ .len = batch->count, .data = batch->results };
	reply.old_data =
	    (ProtobufCBinaryData){ .len = found * ADVICE_DATA_BYTES, .data = batch->old_data };
	if (batch->streamed)
		rpc_stream_send(batch->call, &reply.base);
	else
		rpc_call_reply(batch->call, &reply.base);
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

/* Launch every request of a filled batch. */
static void launch_batch(struct advice_batch *batch)
{
	/* One extra count, dropped last, so that no completion replies before all are launched. */
	atomic_store(&batch->pending, batch->count + 1);
	for (uint32_t i = 0; i < batch->count; i++) {
		struct uds_request *request = &batch->requests[i];
		int result;

		request->callback = request_done;
		request->index = batch->served->index;
		request->context = batch;
		result = uds_launch_request(request);
		if (result != DD_SUCCESS) {
			/* Its callback will not run: it fails here, with the launch's error. */
			request->status = result;
			finish_one(batch);
		}
	}
	finish_one(batch);
}

/* Whether the caller may use the index; if not, answer the call. */
static bool allowed(struct indexd *daemon, struct rpc_call *call, bool streamed, const char *index)
{
	char why[160];
	grpc_status_code code =
	    indexd_check_access(daemon, call, index, ACCESS_ADVICE, why, sizeof(why));

	if (code == GRPC_STATUS_OK)
		return true;
	refuse(call, streamed, code, "%s", why);
	return false;
}

/* Serve one batch message, of a unary call or a stream. */
static void serve_batch(struct indexd *daemon, struct rpc_call *call, bool streamed,
                        const uint8_t *bytes, size_t size)
{
	Uds__V1__AdviceBatch *message = uds__v1__advice_batch__unpack(NULL, size, bytes);
	struct advice_batch *batch;
	struct served_index *served;
	char why[128];

	if (message == NULL) {
		refuse(call, streamed, GRPC_STATUS_INVALID_ARGUMENT, "malformed AdviceBatch");
		return;
	}
	if (!advice_batch_check(message, why, sizeof(why))) {
		refuse(call, streamed, GRPC_STATUS_INVALID_ARGUMENT, "%s", why);
		goto out;
	}
	if (!allowed(daemon, call, streamed, message->index))
		goto out;
	served = registry_get(daemon->registry, message->index);
	if (served == NULL) {
		refuse(call, streamed, GRPC_STATUS_NOT_FOUND, "no index named \"%.80s\"",
		       message->index);
		goto out;
	}
	if (dd_allocate_uninitialized(advice_batch_bytes(message->types.len), "advice batch",
	                              &batch) != DD_SUCCESS) {
		registry_put(served);
		refuse(call, streamed, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	batch->call = call;
	batch->streamed = streamed;
	batch->served = served;
	batch->batch_id = message->batch_id;
	batch->count = (uint32_t) message->types.len;
	batch->results = (uint8_t *) &batch->requests[batch->count];
	batch->old_data = batch->results + batch->count;
	advice_batch_fill(message, batch->requests);
	launch_batch(batch);
out:
	uds__v1__advice_batch__free_unpacked(message, NULL);
}

static void handle_batch(struct rpc_call *call, const uint8_t *request, size_t size, void *context)
{
	serve_batch(context, call, false, request, size);
}

static void handle_stream_message(struct rpc_call *stream, const uint8_t *message, size_t size,
                                  void *context)
{
	serve_batch(context, stream, true, message, size);
}

const struct rpc_method *indexd_advice_methods(struct indexd *daemon, size_t *count)
{
	static struct rpc_method methods[] = {
		{ .path = "/uds.v1.Advice/Batch", .handler = handle_batch },
		{ .path = "/uds.v1.Advice/Stream", .stream_handler = handle_stream_message },
	};

	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		methods[i].context = daemon;
	*count = sizeof(methods) / sizeof(methods[0]);
	return methods;
}
