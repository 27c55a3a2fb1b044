// SPDX-License-Identifier: GPL-2.0-only
/*
 * The gRPC server plumbing; see rpc-server.h.
 *
 * Lifetime. Every struct rpc_call is counted in live_calls from the moment it is requested from
 * gRPC until its final batch completes (or the request fails because the server is shutting
 * down). rpc_server_stop() shuts the server down, cancels every call, and waits for that count
 * to reach zero before it shuts the completion queues down: a call handed to another thread can
 * thus still reply safely while the server stops, and no event is ever posted to a queue that
 * is shut down.
 */
#include "rpc-server.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include "errors.h"
#include "logger.h"
#include "memory-alloc.h"

struct rpc_tag {
	void (*on_event)(struct rpc_tag *tag, bool ok);
};

struct rpc_worker {
	struct rpc_server *server;
	unsigned int number;
	grpc_completion_queue *queue;
	pthread_t thread;
	bool started;
};

struct rpc_call {
	struct rpc_tag arrived;
	struct rpc_tag finished;
	struct rpc_worker *worker;
	/* The method served, or NULL for a method the table does not name. */
	const struct rpc_method *method;
	grpc_call *call;
	gpr_timespec deadline;
	grpc_metadata_array metadata;
	grpc_call_details details;
	grpc_byte_buffer *payload;
	grpc_byte_buffer *reply;
	grpc_slice status_details;
	int cancelled;
	char *peer;
};

struct rpc_server {
	grpc_server *server;
	const struct rpc_method *methods;
	size_t method_count;
	void **method_handles;
	struct rpc_worker *workers;
	unsigned int worker_count;
	atomic_bool stopping;
	struct rpc_tag shutdown_done;
	pthread_mutex_t mutex;
	pthread_cond_t changed;
	bool shut_down;
	unsigned int live_calls;
};

static void call_arrived(struct rpc_tag *tag, bool ok);
static void call_finished(struct rpc_tag *tag, bool ok);

/* ------------------------------------------------------------------------------------------ */
/* Calls                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void count_call(struct rpc_server *server, int change)
{
	pthread_mutex_lock(&server->mutex);
	server->live_calls += (unsigned int) change;
	if (server->live_calls == 0)
		pthread_cond_broadcast(&server->changed);
	pthread_mutex_unlock(&server->mutex);
}

static void free_call(struct rpc_call *call)
{
	struct rpc_server *server = call->worker->server;

	if (call->call != NULL)
		grpc_call_unref(call->call);
	grpc_metadata_array_destroy(&call->metadata);
	grpc_call_details_destroy(&call->details);
	if (call->payload != NULL)
		grpc_byte_buffer_destroy(call->payload);
	if (call->reply != NULL)
		grpc_byte_buffer_destroy(call->reply);
	grpc_slice_unref(call->status_details);
	if (call->peer != NULL)
		gpr_free(call->peer);
	dd_free(call);
	count_call(server, -1);
}

/* Ask gRPC for the next call of @method (NULL: of any method the table does not name). */
static void request_call(struct rpc_worker *worker, const struct rpc_method *method)
{
	struct rpc_server *server = worker->server;
	struct rpc_call *call;
	grpc_call_error error;

	if (atomic_load(&server->stopping) ||
	    (DD_ALLOCATE(1, struct rpc_call, __func__, &call) != DD_SUCCESS))
		return;
	call->arrived.on_event = call_arrived;
	call->finished.on_event = call_finished;
	call->worker = worker;
	call->method = method;
	call->status_details = grpc_empty_slice();
	grpc_metadata_array_init(&call->metadata);
	grpc_call_details_init(&call->details);
	count_call(server, 1);
	if (method != NULL)
		error = grpc_server_request_registered_call(
		    server->server, server->method_handles[method - server->methods], &call->call,
		    &call->deadline, &call->metadata, &call->payload, worker->queue, worker->queue,
		    &call->arrived);
	else
		error = grpc_server_request_call(server->server, &call->call, &call->details,
		                                 &call->metadata, worker->queue, worker->queue,
		                                 &call->arrived);
	if (error != GRPC_CALL_OK) {
		dd_log_error("cannot request a call: gRPC error %d", error);
		free_call(call);
	}
}

/* Send the reply (if any) and the status in one batch; call_finished() frees the call. */
static void finish_call(struct rpc_call *call, grpc_status_code code)
{
	grpc_op ops[4];
	size_t count = 0;
	grpc_call_error error;

	memset(ops, 0, sizeof(ops));
	ops[count++].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (call->reply != NULL) {
		ops[count].op = GRPC_OP_SEND_MESSAGE;
		ops[count++].data.send_message.send_message = call->reply;
	}
	ops[count].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[count].data.send_status_from_server.status = code;
	ops[count++].data.send_status_from_server.status_details = &call->status_details;
	ops[count].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[count++].data.recv_close_on_server.cancelled = &call->cancelled;
	error = grpc_call_start_batch(call->call, ops, count, &call->finished, NULL);
	if (error != GRPC_CALL_OK) {
		dd_log_error("cannot finish a call: gRPC error %d", error);
		free_call(call);
	}
}

void rpc_call_reply(struct rpc_call *call, const ProtobufCMessage *reply)
{
	size_t size = protobuf_c_message_get_packed_size(reply);
	grpc_slice slice = grpc_slice_malloc(size);

	protobuf_c_message_pack(reply, GRPC_SLICE_START_PTR(slice));
	call->reply = grpc_raw_byte_buffer_create(&slice, 1);
	grpc_slice_unref(slice);
	finish_call(call, GRPC_STATUS_OK);
}

void rpc_call_fail(struct rpc_call *call, grpc_status_code code, const char *format, ...)
{
	char message[256];
	va_list args;

	va_start(args, format);
	vsnprintf(message, sizeof(message), format, args);
	va_end(args);
	dd_log_debug("%s from %s: status %d: %s",
	             (call->method != NULL) ? call->method->path : "unknown method",
	             rpc_call_peer(call), code, message);
	grpc_slice_unref(call->status_details);
	call->status_details = grpc_slice_from_copied_string(message);
	finish_call(call, code);
}

const char *rpc_call_metadata(const struct rpc_call *call, const char *key, size_t *length)
{
	for (size_t i = 0; i < call->metadata.count; i++) {
		const grpc_metadata *entry = &call->metadata.metadata[i];

		if (grpc_slice_str_cmp(entry->key, key) == 0) {
			*length = GRPC_SLICE_LENGTH(entry->value);
			return (const char *) GRPC_SLICE_START_PTR(entry->value);
		}
	}
	return NULL;
}

const char *rpc_call_peer(struct rpc_call *call)
{
	if (call->peer == NULL)
		call->peer = grpc_call_get_peer(call->call);
	return call->peer;
}

/* Run a method's handler on the call's request message. */
static void serve_call(struct rpc_call *call)
{
	grpc_byte_buffer_reader reader;
	grpc_slice request;

	if (call->payload == NULL) {
		rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "no request message");
		return;
	}
	if (!grpc_byte_buffer_reader_init(&reader, call->payload)) {
		rpc_call_fail(call, GRPC_STATUS_INTERNAL, "unreadable request message");
		return;
	}
	request = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	call->method->handler(call, GRPC_SLICE_START_PTR(request), GRPC_SLICE_LENGTH(request),
	                      call->method->context);
	grpc_slice_unref(request);
}

/* Worker: a call requested by request_call() arrived (or the server is shutting down). */
static void call_arrived(struct rpc_tag *tag, bool ok)
{
	struct rpc_call *call =
	    (struct rpc_call *) ((char *) tag - offsetof(struct rpc_call, arrived));

	if (!ok) {
		free_call(call);
		return;
	}
	/* Keep one call of this method requested on this worker. */
	request_call(call->worker, call->method);
	if (call->method == NULL) {
		char *method = grpc_slice_to_c_string(call->details.method);

		rpc_call_fail(call, GRPC_STATUS_UNIMPLEMENTED, "unknown method %s", method);
		gpr_free(method);
		return;
	}
	serve_call(call);
}

/* Worker: a call's final batch completed. */
static void call_finished(struct rpc_tag *tag, bool ok)
{
	(void) ok;
	free_call((struct rpc_call *) ((char *) tag - offsetof(struct rpc_call, finished)));
}

/* ------------------------------------------------------------------------------------------ */
/* Workers and the server                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void shutdown_done(struct rpc_tag *tag, bool ok)
{
	struct rpc_server *server =
	    (struct rpc_server *) ((char *) tag - offsetof(struct rpc_server, shutdown_done));

	(void) ok;
	pthread_mutex_lock(&server->mutex);
	server->shut_down = true;
	pthread_cond_broadcast(&server->changed);
	pthread_mutex_unlock(&server->mutex);
}

static void *worker_main(void *argument)
{
	struct rpc_worker *worker = argument;
	char name[16];

	snprintf(name, sizeof(name), "rpc%u", worker->number);
	dd_log_set_thread_name(name);
	for (size_t m = 0; m < worker->server->method_count; m++)
		request_call(worker, &worker->server->methods[m]);
	request_call(worker, NULL);
	for (;;) {
		grpc_event event = grpc_completion_queue_next(
		    worker->queue, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);

		if (event.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (event.type == GRPC_OP_COMPLETE) {
			struct rpc_tag *tag = event.tag;

			tag->on_event(tag, event.success != 0);
		}
	}
	return NULL;
}

/* Free what rpc_server_start() made, once nothing runs on it. */
static void free_server(struct rpc_server *server)
{
	for (unsigned int w = 0; w < server->worker_count; w++) {
		if (server->workers[w].queue != NULL)
			grpc_completion_queue_destroy(server->workers[w].queue);
	}
	if (server->server != NULL)
		grpc_server_destroy(server->server);
	pthread_mutex_destroy(&server->mutex);
	pthread_cond_destroy(&server->changed);
	dd_free(server->workers);
	dd_free(server->method_handles);
	dd_free(server);
	grpc_shutdown();
}

static int bind_addresses(struct rpc_server *server, const struct rpc_server_config *config)
{
	grpc_server_credentials *credentials = grpc_insecure_server_credentials_create();
	int result = DD_SUCCESS;

	for (unsigned int a = 0; a < config->address_count; a++) {
		if (grpc_server_add_http2_port(server->server, config->addresses[a], credentials) ==
		    0) {
			result = dd_log_error_strerror(DD_INVALID_ARGUMENT, "cannot listen on %s",
			                               config->addresses[a]);
			break;
		}
		dd_log_info("listening on %s", config->addresses[a]);
	}
	grpc_server_credentials_release(credentials);
	return result;
}

static int make_server(const struct rpc_server_config *config, const struct rpc_method *methods,
                       size_t method_count, struct rpc_server *server)
{
	grpc_arg args[2] = {
		{ .type = GRPC_ARG_INTEGER,
		  .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
		  .value.integer = config->max_message_bytes },
		{ .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0 },
	};
	grpc_channel_args channel_args = { .num_args = 2, .args = args };
	int result;

	server->methods = methods;
	server->method_count = method_count;
	server->worker_count = config->workers ?: 1;
	result = DD_ALLOCATE(method_count + 1, void *, "method handles", &server->method_handles);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(server->worker_count, struct rpc_worker, "rpc workers",
		                     &server->workers);
	if (result != DD_SUCCESS)
		return result;
	server->server = grpc_server_create(&channel_args, NULL);
	for (size_t m = 0; m < method_count; m++)
		server->method_handles[m] =
		    grpc_server_register_method(server->server, methods[m].path, NULL,
		                                GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
	for (unsigned int w = 0; w < server->worker_count; w++) {
		server->workers[w].server = server;
		server->workers[w].number = w;
		server->workers[w].queue = grpc_completion_queue_create_for_next(NULL);
		grpc_server_register_completion_queue(server->server, server->workers[w].queue,
		                                      NULL);
	}
	return bind_addresses(server, config);
}

int rpc_server_start(const struct rpc_server_config *config, const struct rpc_method *methods,
                     size_t method_count, struct rpc_server **server_ptr)
{
	struct rpc_server *server;
	int result;

	grpc_init();
	result = DD_ALLOCATE(1, struct rpc_server, "rpc server", &server);
	if (result != DD_SUCCESS) {
		grpc_shutdown();
		return result;
	}
	pthread_mutex_init(&server->mutex, NULL);
	pthread_cond_init(&server->changed, NULL);
	server->shutdown_done.on_event = shutdown_done;
	result = make_server(config, methods, method_count, server);
	if (result != DD_SUCCESS) {
		free_server(server);
		return result;
	}
	grpc_server_start(server->server);
	for (unsigned int w = 0; w < server->worker_count; w++) {
		if (pthread_create(&server->workers[w].thread, NULL, worker_main,
		                   &server->workers[w]) != 0) {
			rpc_server_stop(server);
			return dd_log_error_strerror(ENOMEM, "cannot start rpc workers");
		}
		server->workers[w].started = true;
	}
	*server_ptr = server;
	return DD_SUCCESS;
}

void rpc_server_stop(struct rpc_server *server)
{
	atomic_store(&server->stopping, true);
	grpc_server_shutdown_and_notify(server->server, server->workers[0].queue,
	                                &server->shutdown_done);
	grpc_server_cancel_all_calls(server->server);
	pthread_mutex_lock(&server->mutex);
	while (!server->shut_down || (server->live_calls > 0))
		pthread_cond_wait(&server->changed, &server->mutex);
	pthread_mutex_unlock(&server->mutex);
	for (unsigned int w = 0; w < server->worker_count; w++)
		grpc_completion_queue_shutdown(server->workers[w].queue);
	for (unsigned int w = 0; w < server->worker_count; w++) {
		if (server->workers[w].started)
			pthread_join(server->workers[w].thread, NULL);
	}
	free_server(server);
}
