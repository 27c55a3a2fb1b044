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
 *
 * Streams. A stream's struct rpc_call also counts references: one for each operation started
 * on it (receive, send, the close watcher, the status) and one for each message its handler
 * has not answered yet. Its mutex guards the stream's state, since answers come from any
 * thread; the call is freed when the last reference goes.
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

/* A reply waiting for its turn to be sent on a stream. */
struct rpc_outgoing {
	struct rpc_outgoing *next;
	grpc_byte_buffer *buffer;
};

struct rpc_stream_state {
	struct rpc_tag received;
	struct rpc_tag sent;
	struct rpc_tag closed;
	struct rpc_tag status_sent;
	pthread_mutex_t mutex;
	unsigned int references;
	/* Messages handed to the handler and not answered yet. */
	unsigned int in_flight;
	/* Replies queued or being sent. */
	unsigned int unsent;
	grpc_byte_buffer *incoming;
	struct rpc_outgoing *send_head;
	struct rpc_outgoing *send_tail;
	bool receiving;
	bool sending;
	/* The client closed its side (or the read failed). */
	bool read_closed;
	/* Cancelled or broken: nothing more is sent. */
	bool broken;
	bool status_started;
	grpc_status_code fail_code;
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
	struct rpc_stream_state stream;
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
	unsigned int stream_window;
	atomic_uint streams;
	/* Finished calls by method (method_count + 1 rows) and status. */
	_Atomic uint64_t (*finished)[RPC_STATUS_CODES];
};

static void call_arrived(struct rpc_tag *tag, bool ok);
static void call_finished(struct rpc_tag *tag, bool ok);
static void stream_received(struct rpc_tag *tag, bool ok);
static void stream_sent(struct rpc_tag *tag, bool ok);
static void stream_closed(struct rpc_tag *tag, bool ok);
static void stream_status_sent(struct rpc_tag *tag, bool ok);

#define CALL_OF(tag, member) \
	((struct rpc_call *) ((char *) (tag) -offsetof(struct rpc_call, member)))

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

static void count_finished(struct rpc_call *call, grpc_status_code code)
{
	struct rpc_server *server = call->worker->server;
	size_t row = (call->method != NULL) ? (size_t) (call->method - server->methods)
	                                    : server->method_count;

	if ((unsigned int) code < RPC_STATUS_CODES)
		atomic_fetch_add_explicit(&server->finished[row][code], 1, memory_order_relaxed);
}

static bool is_stream(const struct rpc_call *call)
{
	return (call->method != NULL) && (call->method->stream_handler != NULL);
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
	if (is_stream(call)) {
		while (call->stream.send_head != NULL) {
			struct rpc_outgoing *outgoing = call->stream.send_head;

			call->stream.send_head = outgoing->next;
			grpc_byte_buffer_destroy(outgoing->buffer);
			dd_free(outgoing);
		}
		if (call->stream.incoming != NULL)
			grpc_byte_buffer_destroy(call->stream.incoming);
		pthread_mutex_destroy(&call->stream.mutex);
	}
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
	if (is_stream(call)) {
		call->stream.received.on_event = stream_received;
		call->stream.sent.on_event = stream_sent;
		call->stream.closed.on_event = stream_closed;
		call->stream.status_sent.on_event = stream_status_sent;
		pthread_mutex_init(&call->stream.mutex, NULL);
	}
	count_call(server, 1);
	if (method != NULL)
		error = grpc_server_request_registered_call(
		    server->server, server->method_handles[method - server->methods], &call->call,
		    &call->deadline, &call->metadata, is_stream(call) ? NULL : &call->payload,
		    worker->queue, worker->queue, &call->arrived);
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
	count_finished(call, code);
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

/* Log a failure and keep its message as the call's status details. */
static void set_failure(struct rpc_call *call, grpc_status_code code, const char *format,
                        va_list args)
{
	char message[256];

	vsnprintf(message, sizeof(message), format, args);
	dd_log_debug("%s from %s: status %d: %s",
	             (call->method != NULL) ? call->method->path : "unknown method",
	             rpc_call_peer(call), code, message);
	grpc_slice_unref(call->status_details);
	call->status_details = grpc_slice_from_copied_string(message);
}

void rpc_call_fail(struct rpc_call *call, grpc_status_code code, const char *format, ...)
{
	va_list args;

	va_start(args, format);
	set_failure(call, code, format, args);
	va_end(args);
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
	return call->peer;
}

/* ------------------------------------------------------------------------------------------ */
/* Streams                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* Drop a reference of a stream; the last one frees the call. Stream mutex not held. */
static void put_stream(struct rpc_call *call)
{
	bool last;

	pthread_mutex_lock(&call->stream.mutex);
	last = (--call->stream.references == 0);
	pthread_mutex_unlock(&call->stream.mutex);
	if (last) {
		atomic_fetch_sub(&call->worker->server->streams, 1);
		free_call(call);
	}
}

/* Start a batch of one operation on a stream, which holds a reference until it completes. */
static bool start_stream_op(struct rpc_call *call, grpc_op *op, struct rpc_tag *tag)
{
	grpc_call_error error;

	call->stream.references++;
	error = grpc_call_start_batch(call->call, op, 1, tag, NULL);
	if (error == GRPC_CALL_OK)
		return true;
	dd_log_error("%s: cannot start a stream operation: gRPC error %d", call->method->path,
	             error);
	call->stream.references--;
	call->stream.broken = true;
	return false;
}

/* Read the next message if the window allows. Stream mutex held. */
static void read_more(struct rpc_call *call)
{
	struct rpc_stream_state *stream = &call->stream;
	grpc_op op = { .op = GRPC_OP_RECV_MESSAGE };

	if (stream->receiving || stream->read_closed || stream->broken ||
	    (stream->fail_code != GRPC_STATUS_OK) ||
	    (stream->in_flight + stream->unsent >= call->worker->server->stream_window))
		return;
	op.data.recv_message.recv_message = &stream->incoming;
	stream->receiving = start_stream_op(call, &op, &stream->received);
}

/* Send the next queued reply if none is on its way. Stream mutex held. */
static void send_more(struct rpc_call *call)
{
	struct rpc_stream_state *stream = &call->stream;
	grpc_op op = { .op = GRPC_OP_SEND_MESSAGE };

	if (stream->sending || stream->broken || (stream->send_head == NULL))
		return;
	op.data.send_message.send_message = stream->send_head->buffer;
	stream->sending = start_stream_op(call, &op, &stream->sent);
}

/*
 * End the stream once nothing is left to do: the client has closed its side or the stream
 * failed, and every message taken is answered and sent. Stream mutex held.
 */
static void end_when_done(struct rpc_call *call)
{
	struct rpc_stream_state *stream = &call->stream;
	grpc_op op = { .op = GRPC_OP_SEND_STATUS_FROM_SERVER };

	if (stream->status_started || stream->broken || stream->sending ||
	    (stream->in_flight > 0) || (stream->send_head != NULL))
		return;
	if (!stream->read_closed && (stream->fail_code == GRPC_STATUS_OK))
		return;
	op.data.send_status_from_server.status = stream->fail_code;
	op.data.send_status_from_server.status_details = &call->status_details;
	count_finished(call, stream->fail_code);
	stream->status_started = start_stream_op(call, &op, &stream->status_sent);
}

/* Run the handler on one message of a stream; it answers it, now or later. */
static void serve_stream_message(struct rpc_call *call, grpc_byte_buffer *message)
{
	grpc_byte_buffer_reader reader;
	grpc_slice slice;

	if (!grpc_byte_buffer_reader_init(&reader, message)) {
		rpc_stream_fail(call, GRPC_STATUS_INTERNAL, "unreadable message");
		return;
	}
	slice = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	call->method->stream_handler(call, GRPC_SLICE_START_PTR(slice), GRPC_SLICE_LENGTH(slice),
	                             call->method->context);
	grpc_slice_unref(slice);
}

/* Worker: a stream method's call arrived; watch for its end and read its first message. */
static void start_stream(struct rpc_call *call)
{
	grpc_op ops[2];
	grpc_call_error error;

	atomic_fetch_add(&call->worker->server->streams, 1);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[1].data.recv_close_on_server.cancelled = &call->cancelled;
	pthread_mutex_lock(&call->stream.mutex);
	/* The arrival's own reference, dropped at the end of this function. */
	call->stream.references = 2;
	error = grpc_call_start_batch(call->call, ops, 2, &call->stream.closed, NULL);
	if (error != GRPC_CALL_OK) {
		dd_log_error("cannot start a stream: gRPC error %d", error);
		call->stream.references--;
		call->stream.broken = true;
	}
	read_more(call);
	pthread_mutex_unlock(&call->stream.mutex);
	put_stream(call);
}

/* Worker: a read completed; serve the message, then read on if the window allows. */
static void stream_received(struct rpc_tag *tag, bool ok)
{
	struct rpc_call *call = CALL_OF(tag, stream.received);
	struct rpc_stream_state *stream = &call->stream;
	grpc_byte_buffer *message;

	pthread_mutex_lock(&stream->mutex);
	message = stream->incoming;
	stream->incoming = NULL;
	if (!ok || (message == NULL) || stream->broken) {
		stream->read_closed = true;
	} else if (stream->fail_code == GRPC_STATUS_OK) {
		/* Still "receiving" while the handler runs, so that no other thread starts the
		 * next read: messages are served one at a time, in order. */
		stream->in_flight++;
		stream->references++;
		pthread_mutex_unlock(&stream->mutex);
		serve_stream_message(call, message);
		pthread_mutex_lock(&stream->mutex);
	}
	stream->receiving = false;
	read_more(call);
	end_when_done(call);
	pthread_mutex_unlock(&stream->mutex);
	if (message != NULL)
		grpc_byte_buffer_destroy(message);
	put_stream(call);
}

/* Any thread: a reply went out; send the next. */
static void stream_sent(struct rpc_tag *tag, bool ok)
{
	struct rpc_call *call = CALL_OF(tag, stream.sent);
	struct rpc_stream_state *stream = &call->stream;
	struct rpc_outgoing *done;

	pthread_mutex_lock(&stream->mutex);
	stream->sending = false;
	done = stream->send_head;
	stream->send_head = done->next;
	if (stream->send_head == NULL)
		stream->send_tail = NULL;
	stream->unsent--;
	if (!ok)
		stream->broken = true;
	send_more(call);
	read_more(call);
	end_when_done(call);
	pthread_mutex_unlock(&stream->mutex);
	grpc_byte_buffer_destroy(done->buffer);
	dd_free(done);
	put_stream(call);
}

/* The call is over: the status went out, or the client cancelled or went away. */
static void stream_closed(struct rpc_tag *tag, bool ok)
{
	struct rpc_call *call = CALL_OF(tag, stream.closed);

	(void) ok;
	pthread_mutex_lock(&call->stream.mutex);
	if (call->cancelled && !call->stream.status_started) {
		dd_log_debug("%s from %s: stream cancelled", call->method->path, call->peer);
		call->stream.broken = true;
		count_finished(call, GRPC_STATUS_CANCELLED);
	}
	pthread_mutex_unlock(&call->stream.mutex);
	put_stream(call);
}

static void stream_status_sent(struct rpc_tag *tag, bool ok)
{
	(void) ok;
	put_stream(CALL_OF(tag, stream.status_sent));
}

/* One message is answered: queue @buffer (if any) and move the stream on. */
static void answer_message(struct rpc_call *call, grpc_byte_buffer *buffer)
{
	struct rpc_stream_state *stream = &call->stream;
	struct rpc_outgoing *outgoing = NULL;
	bool lost = false;

	if (buffer != NULL) {
		lost = (DD_ALLOCATE(1, struct rpc_outgoing, __func__, &outgoing) != DD_SUCCESS);
		if (lost)
			grpc_byte_buffer_destroy(buffer);
		else
			outgoing->buffer = buffer;
	}
	pthread_mutex_lock(&stream->mutex);
	stream->in_flight--;
	if (lost && (stream->fail_code == GRPC_STATUS_OK))
		stream->fail_code = GRPC_STATUS_RESOURCE_EXHAUSTED;
	if ((outgoing != NULL) && !stream->broken) {
		if (stream->send_tail != NULL)
			stream->send_tail->next = outgoing;
		else
			stream->send_head = outgoing;
		stream->send_tail = outgoing;
		stream->unsent++;
		outgoing = NULL;
		send_more(call);
	}
	read_more(call);
	end_when_done(call);
	pthread_mutex_unlock(&stream->mutex);
	if (outgoing != NULL) {
		/* The stream is broken: nobody will read the reply. */
		grpc_byte_buffer_destroy(outgoing->buffer);
		dd_free(outgoing);
	}
	put_stream(call);
}

void rpc_stream_send(struct rpc_call *call, const ProtobufCMessage *reply)
{
	size_t size = protobuf_c_message_get_packed_size(reply);
	grpc_slice slice = grpc_slice_malloc(size);
	grpc_byte_buffer *buffer;

	protobuf_c_message_pack(reply, GRPC_SLICE_START_PTR(slice));
	buffer = grpc_raw_byte_buffer_create(&slice, 1);
	grpc_slice_unref(slice);
	answer_message(call, buffer);
}

void rpc_stream_fail(struct rpc_call *call, grpc_status_code code, const char *format, ...)
{
	va_list args;

	pthread_mutex_lock(&call->stream.mutex);
	if (call->stream.fail_code == GRPC_STATUS_OK) {
		call->stream.fail_code = code;
		va_start(args, format);
		set_failure(call, code, format, args);
		va_end(args);
	}
	pthread_mutex_unlock(&call->stream.mutex);
	answer_message(call, NULL);
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
	call->peer = grpc_call_get_peer(call->call);
	if (call->method == NULL) {
		char *method = grpc_slice_to_c_string(call->details.method);

		rpc_call_fail(call, GRPC_STATUS_UNIMPLEMENTED, "unknown method %s", method);
		gpr_free(method);
		return;
	}
	if (is_stream(call))
		start_stream(call);
	else
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
	dd_free(server->finished);
	dd_free(server);
	grpc_shutdown();
}

static int bind_addresses(struct rpc_server *server, const struct rpc_server_config *config)
{
	for (unsigned int l = 0; l < config->listener_count; l++) {
		const struct rpc_listener *listener = &config->listeners[l];
		grpc_server_credentials *credentials = listener->credentials;
		int port;

		if (credentials == NULL)
			credentials = grpc_insecure_server_credentials_create();
		port = grpc_server_add_http2_port(server->server, listener->address, credentials);
		if (listener->credentials == NULL)
			grpc_server_credentials_release(credentials);
		if (port == 0)
			return dd_log_error_strerror(DD_INVALID_ARGUMENT, "cannot listen on %s",
			                             listener->address);
		dd_log_info("listening on %s (%s)", listener->address,
		            (listener->credentials != NULL) ? "TLS" : "insecure");
	}
	return DD_SUCCESS;
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
	server->stream_window = config->stream_window ?: 1;
	result = dd_allocate((method_count + 1) * sizeof(*server->finished), "call counts",
	                     &server->finished);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(method_count + 1, void *, "method handles",
		                     &server->method_handles);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(server->worker_count, struct rpc_worker, "rpc workers",
		                     &server->workers);
	if (result != DD_SUCCESS)
		return result;
	server->server = grpc_server_create(&channel_args, NULL);
	for (size_t m = 0; m < method_count; m++)
		server->method_handles[m] = grpc_server_register_method(
		    server->server, methods[m].path, NULL,
		    (methods[m].stream_handler != NULL) ? GRPC_SRM_PAYLOAD_NONE
		                                        : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER,
		    0);
	for (unsigned int w = 0; w < server->worker_count; w++) {
		server->workers[w].server = server;
		server->workers[w].number = w;
		server->workers[w].queue = grpc_completion_queue_create_for_next(NULL);
		grpc_server_register_completion_queue(server->server, server->workers[w].queue,
		                                      NULL);
	}
	return bind_addresses(server, config);
}

/* Shut down a server that never started (an address could not be bound) and drain its queues. */
static void abandon_server(struct rpc_server *server)
{
	gpr_timespec forever = gpr_inf_future(GPR_CLOCK_MONOTONIC);

	if ((server->server == NULL) || (server->workers == NULL))
		return;
	grpc_server_shutdown_and_notify(server->server, server->workers[0].queue,
	                                &server->shutdown_done);
	while (grpc_completion_queue_next(server->workers[0].queue, forever, NULL).type !=
	       GRPC_OP_COMPLETE)
		;
	for (unsigned int w = 0; w < server->worker_count; w++) {
		grpc_completion_queue_shutdown(server->workers[w].queue);
		while (grpc_completion_queue_next(server->workers[w].queue, forever, NULL).type !=
		       GRPC_QUEUE_SHUTDOWN)
			;
	}
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
		abandon_server(server);
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

unsigned int rpc_server_stream_count(const struct rpc_server *server)
{
	return atomic_load_explicit(&server->streams, memory_order_relaxed);
}

uint64_t rpc_server_finished_calls(const struct rpc_server *server, size_t method,
                                   grpc_status_code code)
{
	if ((method > server->method_count) || ((unsigned int) code >= RPC_STATUS_CODES))
		return 0;
	return atomic_load_explicit(&server->finished[method][code], memory_order_relaxed);
}
