// SPDX-License-Identifier: GPL-2.0-only
/*
 * One connection to one index on one server, with a thread and a completion queue of its own.
 *
 * Requests wait in a FIFO (pending) until they are sent in a batch: at once if nothing is in
 * flight, else when batch_max are waiting, when a reply comes back, or when the oldest has
 * waited batch_delay_ns. Sent batches (in_flight) are matched to replies by batch id. In stream
 * mode one Advice/Stream call carries every batch, one SEND_MESSAGE at a time, with a receive
 * always posted; in unary mode each batch is its own Advice/Batch call.
 *
 * Failures. When the stream ends (the server refused a batch, went away, or the client
 * cancelled it because a batch outlived its timeout), every request in flight or waiting
 * completes (UNAVAILABLE, REFUSED or TIMEOUT), the connection is "down" and submit refuses
 * requests for it until a new stream opens after a backoff (100 ms, doubling to 5 s, reset by
 * a reply).
 *
 * Fail fast. A new stream is "up" as soon as it is started, before the server has seen it, so
 * requests submitted during a reconnect wait for its outcome, which a host that does not answer
 * (or a server that accepts connections but does not speak) can delay past their timeout. With
 * fail_fast, a stream that ended with UNAVAILABLE (the server could not be reached or went
 * away, as opposed to a stream the client cancelled because a batch outlived its timeout)
 * marks the connection known_down, and submit refuses its requests until the server proves it
 * is back: a new stream's initial metadata arrives over a READY channel, or a reply does.
 *
 * Locking. The mutex guards everything but the channel and queue; it is taken by submitters and
 * by the thread, and gRPC batches are started under it. Callbacks are collected into a list
 * under the mutex and run after it is released, on the connection's thread.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/support/alloc.h>

enum {
	BACKOFF_FIRST_MS = 100,
	BACKOFF_MAX_MS = 5000,
	/* How often the thread looks at timeouts when nothing else wakes it. */
	IDLE_TICK_NS = 200 * 1000 * 1000,
};

struct udsc_tag;
typedef void (*tag_fn)(struct udsc_connection *connection, struct udsc_tag *tag, bool ok);

struct udsc_tag {
	tag_fn on_event;
	void *owner;
};

/* A batch sent and not answered. */
struct sent_batch {
	struct sent_batch *next;
	uint64_t id;
	struct udsc_request *requests;
	size_t count;
	/* The earliest deadline of its requests. */
	uint64_t deadline_ns;
	/* Unary mode: its call. */
	struct unary_call *unary;
};

/* One Advice/Stream call and its operations; freed when no operation is outstanding. */
struct stream {
	grpc_call *call;
	unsigned int operations;
	grpc_metadata_array initial_metadata;
	grpc_metadata_array trailing_metadata;
	grpc_status_code status;
	grpc_slice details;
	grpc_byte_buffer *incoming;
	grpc_byte_buffer *outgoing;
	bool sending;
	bool ended;
	struct udsc_tag started;
	struct udsc_tag sent;
	struct udsc_tag received;
	struct udsc_tag finished;
};

/* One Advice/Batch call. */
struct unary_call {
	grpc_call *call;
	struct sent_batch *batch;
	grpc_metadata_array initial_metadata;
	grpc_metadata_array trailing_metadata;
	grpc_status_code status;
	grpc_slice details;
	grpc_byte_buffer *outgoing;
	grpc_byte_buffer *incoming;
	struct udsc_tag done;
};

struct udsc_connection {
	struct udsc_connection_config config;
	grpc_channel *channel;
	grpc_completion_queue *queue;
	void *stream_method;
	void *batch_method;
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t mutex;
	struct udsc_request *pending_head;
	struct udsc_request *pending_tail;
	unsigned int pending_count;
	uint64_t pending_since_ns;
	struct sent_batch *in_flight;
	unsigned int in_flight_count;
	uint64_t next_batch_id;
	/* Stream mode: the current stream, or NULL while down. */
	struct stream *stream;
	/* Unary calls not finished. */
	unsigned int unary_calls;
	bool up;
	/* The last stream failed to reach the server, and none has been accepted since. */
	bool known_down;
	uint64_t retry_at_ns;
	unsigned int backoff_ms;
	bool draining;
	bool closing;
	bool queue_shut_down;
	/* Completed requests whose callbacks are due (run by the thread without the mutex). */
	struct udsc_request *done_head;
	struct udsc_request *done_tail;
};

static void stream_started(struct udsc_connection *connection, struct udsc_tag *tag, bool ok);
static void stream_sent(struct udsc_connection *connection, struct udsc_tag *tag, bool ok);
static void stream_received(struct udsc_connection *connection, struct udsc_tag *tag, bool ok);
static void stream_finished(struct udsc_connection *connection, struct udsc_tag *tag, bool ok);
static void unary_done(struct udsc_connection *connection, struct udsc_tag *tag, bool ok);

/* ------------------------------------------------------------------------------------------ */
/* Completing requests                                                                         */
/* ------------------------------------------------------------------------------------------ */

/* Queue a finished request for its callback. Mutex held. */
static void complete(struct udsc_connection *connection, struct udsc_request *request,
                     enum udsc_status status)
{
	if (status != UDSC_OK) {
		request->status = status;
		request->found = false;
	}
	request->next = NULL;
	if (connection->done_tail != NULL)
		connection->done_tail->next = request;
	else
		connection->done_head = request;
	connection->done_tail = request;
}

static void complete_list(struct udsc_connection *connection, struct udsc_request *list,
                          enum udsc_status status)
{
	while (list != NULL) {
		struct udsc_request *next = list->next;

		complete(connection, list, status);
		list = next;
	}
}

/* Run the callbacks due. Mutex not held. */
static void run_callbacks(struct udsc_connection *connection)
{
	struct udsc_request *list;

	pthread_mutex_lock(&connection->mutex);
	list = connection->done_head;
	connection->done_head = NULL;
	connection->done_tail = NULL;
	pthread_mutex_unlock(&connection->mutex);
	while (list != NULL) {
		struct udsc_request *next = list->next;

		list->next = NULL;
		list->callback(list);
		list = next;
	}
}

static void fail_pending(struct udsc_connection *connection, enum udsc_status status)
{
	complete_list(connection, connection->pending_head, status);
	connection->pending_head = NULL;
	connection->pending_tail = NULL;
	connection->pending_count = 0;
}

/* Remove and return the batch in flight with @id, or NULL. */
static struct sent_batch *take_batch(struct udsc_connection *connection, uint64_t id)
{
	for (struct sent_batch **link = &connection->in_flight; *link != NULL;
	     link = &(*link)->next) {
		struct sent_batch *batch = *link;

		if (batch->id == id) {
			*link = batch->next;
			connection->in_flight_count--;
			return batch;
		}
	}
	return NULL;
}

static void fail_in_flight(struct udsc_connection *connection, enum udsc_status status)
{
	while (connection->in_flight != NULL) {
		struct sent_batch *batch = connection->in_flight;

		connection->in_flight = batch->next;
		complete_list(connection, batch->requests, status);
		if (batch->unary != NULL)
			batch->unary->batch = NULL;
		free(batch);
	}
	connection->in_flight_count = 0;
}

/* A reply arrived: complete its batch's requests. Mutex held. */
static void take_reply(struct udsc_connection *connection, grpc_byte_buffer *buffer)
{
	grpc_slice slice = udsc_read_buffer(buffer);
	Uds__V1__AdviceReply *reply = uds__v1__advice_reply__unpack(NULL, GRPC_SLICE_LENGTH(slice),
	                                                            GRPC_SLICE_START_PTR(slice));
	struct sent_batch *batch;

	grpc_slice_unref(slice);
	if (reply == NULL)
		return;
	batch = take_batch(connection, reply->batch_id);
	if (batch != NULL) {
		bool good = udsc_fill_replies(reply, batch->requests, batch->count, false);

		complete_list(connection, batch->requests, good ? UDSC_OK : UDSC_FAILED);
		free(batch);
		connection->backoff_ms = 0;
		connection->known_down = false;
	}
	uds__v1__advice_reply__free_unpacked(reply, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Sending batches                                                                             */
/* ------------------------------------------------------------------------------------------ */

/* Take up to batch_max waiting requests into a new batch and encode it. Mutex held. */
static struct sent_batch *make_batch(struct udsc_connection *connection, grpc_byte_buffer **buffer)
{
	size_t count = connection->pending_count;
	Uds__V1__AdviceBatch message = UDS__V1__ADVICE_BATCH__INIT;
	struct sent_batch *batch;
	struct udsc_request *request;
	uint8_t *types;
	uint8_t *names;
	uint8_t *data;
	size_t with_data = 0;

	if (count > connection->config.batch_max)
		count = connection->config.batch_max;
	batch = calloc(1, sizeof(*batch));
	types = malloc(count * (1 + UDSC_NAME_BYTES + UDSC_DATA_BYTES));
	if ((batch == NULL) || (types == NULL)) {
		free(batch);
		free(types);
		return NULL;
	}
	names = types + count;
	data = names + count * UDSC_NAME_BYTES;
	batch->id = connection->next_batch_id++;
	batch->requests = connection->pending_head;
	batch->count = count;
	batch->deadline_ns = UINT64_MAX;
	request = connection->pending_head;
	for (size_t i = 0; i < count; i++) {
		types[i] = (uint8_t) request->type;
		memcpy(names + i * UDSC_NAME_BYTES, request->name, UDSC_NAME_BYTES);
		if ((request->type == UDSC_POST) || (request->type == UDSC_UPDATE))
			memcpy(data + UDSC_DATA_BYTES * with_data++, request->new_data,
			       UDSC_DATA_BYTES);
		if (request->deadline_ns < batch->deadline_ns)
			batch->deadline_ns = request->deadline_ns;
		if (i + 1 == count) {
			connection->pending_head = request->next;
			request->next = NULL;
		} else {
			request = request->next;
		}
	}
	connection->pending_count -= (unsigned int) count;
	if (connection->pending_head == NULL)
		connection->pending_tail = NULL;
	else
		connection->pending_since_ns = udsc_now_ns();
	message.index = (char *) connection->config.index;
	message.batch_id = batch->id;
	message.types = (ProtobufCBinaryData){ .len = count, .data = types };
	message.names = (ProtobufCBinaryData){ .len = count * UDSC_NAME_BYTES, .data = names };
	message.data = (ProtobufCBinaryData){ .len = with_data * UDSC_DATA_BYTES, .data = data };
	*buffer = udsc_buffer_of(&message.base);
	free(types);
	batch->next = connection->in_flight;
	connection->in_flight = batch;
	connection->in_flight_count++;
	return batch;
}

static bool start_operation(grpc_call *call, grpc_op *ops, size_t count, struct udsc_tag *tag)
{
	return grpc_call_start_batch(call, ops, count, tag, NULL) == GRPC_CALL_OK;
}

/* Stream mode: send one batch on the stream. Mutex held. */
static void send_on_stream(struct udsc_connection *connection)
{
	struct stream *stream = connection->stream;
	grpc_op op = { .op = GRPC_OP_SEND_MESSAGE };

	if (make_batch(connection, &stream->outgoing) == NULL) {
		fail_pending(connection, UDSC_OVERLOADED);
		return;
	}
	op.data.send_message.send_message = stream->outgoing;
	stream->sending = true;
	stream->operations++;
	if (!start_operation(stream->call, &op, 1, &stream->sent)) {
		stream->operations--;
		stream->sending = false;
		grpc_call_cancel(stream->call, NULL);
	}
}

/* Free a unary call that has finished (or never started). Mutex held. */
static void free_unary(struct udsc_connection *connection, struct unary_call *unary)
{
	connection->unary_calls--;
	grpc_call_unref(unary->call);
	grpc_byte_buffer_destroy(unary->outgoing);
	if (unary->incoming != NULL)
		grpc_byte_buffer_destroy(unary->incoming);
	grpc_metadata_array_destroy(&unary->initial_metadata);
	grpc_metadata_array_destroy(&unary->trailing_metadata);
	grpc_slice_unref(unary->details);
	free(unary);
}

/* Unary mode: send one batch as its own call. Mutex held. */
static void send_unary(struct udsc_connection *connection)
{
	struct unary_call *unary = calloc(1, sizeof(*unary));
	grpc_metadata auth;
	grpc_op ops[6];
	size_t auth_count;

	if (unary == NULL) {
		fail_pending(connection, UDSC_OVERLOADED);
		return;
	}
	unary->batch = make_batch(connection, &unary->outgoing);
	if (unary->batch == NULL) {
		free(unary);
		fail_pending(connection, UDSC_OVERLOADED);
		return;
	}
	unary->batch->unary = unary;
	unary->done = (struct udsc_tag){ unary_done, unary };
	unary->details = grpc_empty_slice();
	grpc_metadata_array_init(&unary->initial_metadata);
	grpc_metadata_array_init(&unary->trailing_metadata);
	unary->call = grpc_channel_create_registered_call(
	    connection->channel, NULL, GRPC_PROPAGATE_DEFAULTS, connection->queue,
	    connection->batch_method, udsc_deadline_at(unary->batch->deadline_ns), NULL);
	auth_count = udsc_auth_metadata(connection->config.security->token, &auth);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].data.send_initial_metadata.count = auth_count;
	ops[0].data.send_initial_metadata.metadata = &auth;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = unary->outgoing;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &unary->initial_metadata;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &unary->incoming;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &unary->trailing_metadata;
	ops[5].data.recv_status_on_client.status = &unary->status;
	ops[5].data.recv_status_on_client.status_details = &unary->details;
	connection->unary_calls++;
	if (!start_operation(unary->call, ops, 6, &unary->done)) {
		struct sent_batch *batch = take_batch(connection, unary->batch->id);

		complete_list(connection, batch->requests, UDSC_UNAVAILABLE);
		free(batch);
		free_unary(connection, unary);
	}
	udsc_release_metadata(&auth, auth_count);
}

/* Send what should go now. Mutex held. */
static void send_due(struct udsc_connection *connection, uint64_t now)
{
	const struct udsc_connection_config *config = &connection->config;

	while (connection->up && (connection->pending_count > 0) &&
	       (connection->in_flight_count < config->window)) {
		bool due = (connection->in_flight_count == 0) ||
		           (connection->pending_count >= config->batch_max) ||
		           (now - connection->pending_since_ns >= config->batch_delay_ns);

		if (!due)
			return;
		if (!config->unary) {
			if ((connection->stream == NULL) || connection->stream->sending)
				return;
			send_on_stream(connection);
			return;
		}
		send_unary(connection);
	}
}

/* ------------------------------------------------------------------------------------------ */
/* Streams                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void free_stream(struct stream *stream)
{
	grpc_call_unref(stream->call);
	grpc_metadata_array_destroy(&stream->initial_metadata);
	grpc_metadata_array_destroy(&stream->trailing_metadata);
	grpc_slice_unref(stream->details);
	if (stream->incoming != NULL)
		grpc_byte_buffer_destroy(stream->incoming);
	if (stream->outgoing != NULL)
		grpc_byte_buffer_destroy(stream->outgoing);
	free(stream);
}

/* An operation of @stream completed; free it after the last. Mutex held. */
static void stream_operation_done(struct udsc_connection *connection, struct stream *stream)
{
	if (--stream->operations > 0)
		return;
	if (connection->stream == stream)
		connection->stream = NULL;
	free_stream(stream);
}

static bool post_receive(struct stream *stream)
{
	grpc_op op = { .op = GRPC_OP_RECV_MESSAGE };

	op.data.recv_message.recv_message = &stream->incoming;
	stream->operations++;
	if (start_operation(stream->call, &op, 1, &stream->received))
		return true;
	stream->operations--;
	return false;
}

/* Open a new stream. Mutex held. */
static void open_stream(struct udsc_connection *connection)
{
	struct stream *stream = calloc(1, sizeof(*stream));
	grpc_metadata auth;
	grpc_op ops[2];
	size_t auth_count;
	bool started;

	if (stream == NULL)
		return;
	stream->started = (struct udsc_tag){ stream_started, stream };
	stream->sent = (struct udsc_tag){ stream_sent, stream };
	stream->received = (struct udsc_tag){ stream_received, stream };
	stream->finished = (struct udsc_tag){ stream_finished, stream };
	stream->details = grpc_empty_slice();
	grpc_metadata_array_init(&stream->initial_metadata);
	grpc_metadata_array_init(&stream->trailing_metadata);
	stream->call = grpc_channel_create_registered_call(
	    connection->channel, NULL, GRPC_PROPAGATE_DEFAULTS, connection->queue,
	    connection->stream_method, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	auth_count = udsc_auth_metadata(connection->config.security->token, &auth);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].data.send_initial_metadata.count = auth_count;
	ops[0].data.send_initial_metadata.metadata = &auth;
	ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[1].data.recv_initial_metadata.recv_initial_metadata = &stream->initial_metadata;
	stream->operations = 2;
	started = start_operation(stream->call, ops, 2, &stream->started);
	udsc_release_metadata(&auth, auth_count);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[0].data.recv_status_on_client.trailing_metadata = &stream->trailing_metadata;
	ops[0].data.recv_status_on_client.status = &stream->status;
	ops[0].data.recv_status_on_client.status_details = &stream->details;
	if (!started || !start_operation(stream->call, ops, 1, &stream->finished) ||
	    !post_receive(stream)) {
		/* Nothing can be outstanding on a call whose first batch failed to start. */
		grpc_call_cancel(stream->call, NULL);
		if (!started) {
			free_stream(stream);
			connection->retry_at_ns = udsc_now_ns() + BACKOFF_MAX_MS * 1000000ULL;
			return;
		}
	}
	connection->stream = stream;
	connection->up = true;
}

/*
 * The server's initial metadata arrived (or the call failed before it did): over a READY
 * channel, the server has accepted the stream and the connection is no longer known down.
 */
static void stream_started(struct udsc_connection *connection, struct udsc_tag *tag, bool ok)
{
	if (ok &&
	    (grpc_channel_check_connectivity_state(connection->channel, 0) == GRPC_CHANNEL_READY))
		connection->known_down = false;
	stream_operation_done(connection, tag->owner);
}

static void stream_sent(struct udsc_connection *connection, struct udsc_tag *tag, bool ok)
{
	struct stream *stream = tag->owner;

	stream->sending = false;
	grpc_byte_buffer_destroy(stream->outgoing);
	stream->outgoing = NULL;
	if (ok && !stream->ended)
		send_due(connection, udsc_now_ns());
	stream_operation_done(connection, stream);
}

static void stream_received(struct udsc_connection *connection, struct udsc_tag *tag, bool ok)
{
	struct stream *stream = tag->owner;
	grpc_byte_buffer *buffer = stream->incoming;

	stream->incoming = NULL;
	if (ok && (buffer != NULL)) {
		take_reply(connection, buffer);
		grpc_byte_buffer_destroy(buffer);
		if (!stream->ended && !post_receive(stream))
			grpc_call_cancel(stream->call, NULL);
		send_due(connection, udsc_now_ns());
	}
	stream_operation_done(connection, stream);
}

/* Retire the connection's stream after a failure and plan the next. Mutex held. */
static void connection_down(struct udsc_connection *connection, enum udsc_status status)
{
	connection->up = false;
	fail_in_flight(connection, status);
	fail_pending(connection, status);
	connection->backoff_ms =
	    (connection->backoff_ms == 0)
	        ? BACKOFF_FIRST_MS
	        : ((connection->backoff_ms * 2 > BACKOFF_MAX_MS) ? BACKOFF_MAX_MS
	                                                         : connection->backoff_ms * 2);
	connection->retry_at_ns = udsc_now_ns() + connection->backoff_ms * 1000000ULL;
}

static void stream_finished(struct udsc_connection *connection, struct udsc_tag *tag, bool ok)
{
	struct stream *stream = tag->owner;
	enum udsc_status status;

	(void) ok;
	stream->ended = true;
	if (connection->stream == stream) {
		status = connection->closing ? UDSC_SHUTDOWN : udsc_status_of_code(stream->status);
		if (status == UDSC_OK)
			status = UDSC_UNAVAILABLE;
		if (!connection->closing && (stream->status == GRPC_STATUS_UNAVAILABLE))
			connection->known_down = true;
		connection_down(connection, status);
		connection->stream = NULL;
	}
	stream_operation_done(connection, stream);
}

/* ------------------------------------------------------------------------------------------ */
/* Unary calls                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void unary_done(struct udsc_connection *connection, struct udsc_tag *tag, bool ok)
{
	struct unary_call *unary = tag->owner;
	struct sent_batch *batch = unary->batch;

	if (batch != NULL) {
		batch = take_batch(connection, batch->id);
		if (ok && (unary->status == GRPC_STATUS_OK) && (unary->incoming != NULL)) {
			/* take_reply() finds the batch by id: put it back for it. */
			batch->next = connection->in_flight;
			connection->in_flight = batch;
			connection->in_flight_count++;
			take_reply(connection, unary->incoming);
		} else {
			enum udsc_status status =
			    ok ? udsc_status_of_code(unary->status) : UDSC_UNAVAILABLE;

			complete_list(connection, batch->requests,
			              (status == UDSC_OK) ? UDSC_FAILED : status);
			free(batch);
		}
	}
	free_unary(connection, unary);
	send_due(connection, udsc_now_ns());
}

/* ------------------------------------------------------------------------------------------ */
/* The thread                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* Complete waiting requests past their deadline (the FIFO is roughly in deadline order). */
static void expire_pending(struct udsc_connection *connection, uint64_t now)
{
	while ((connection->pending_head != NULL) &&
	       (connection->pending_head->deadline_ns <= now)) {
		struct udsc_request *request = connection->pending_head;

		connection->pending_head = request->next;
		connection->pending_count--;
		complete(connection, request, UDSC_TIMEOUT);
	}
	if (connection->pending_head == NULL)
		connection->pending_tail = NULL;
}

/*
 * A batch in flight past its deadline: its requests time out, and the stream, which is stuck
 * or far too slow, is cancelled (and reopened after a backoff). Unary calls carry their own
 * deadline. Mutex held.
 */
static void expire_in_flight(struct udsc_connection *connection, uint64_t now)
{
	bool expired = false;

	for (struct sent_batch *batch = connection->in_flight; batch != NULL; batch = batch->next)
		expired |= (batch->deadline_ns <= now) && (batch->unary == NULL);
	if (!expired || (connection->stream == NULL))
		return;
	for (struct sent_batch **link = &connection->in_flight; *link != NULL;) {
		struct sent_batch *batch = *link;

		if (batch->deadline_ns <= now) {
			*link = batch->next;
			connection->in_flight_count--;
			complete_list(connection, batch->requests, UDSC_TIMEOUT);
			free(batch);
		} else {
			link = &batch->next;
		}
	}
	grpc_call_cancel(connection->stream->call, NULL);
}

/* When the thread must wake next. Mutex held. */
static uint64_t next_wakeup(const struct udsc_connection *connection, uint64_t now)
{
	uint64_t wake = now + IDLE_TICK_NS;

	if (connection->pending_count > 0) {
		uint64_t flush = connection->pending_since_ns + connection->config.batch_delay_ns;

		if (flush < wake)
			wake = flush;
		if (connection->pending_head->deadline_ns < wake)
			wake = connection->pending_head->deadline_ns;
	}
	for (const struct sent_batch *batch = connection->in_flight; batch != NULL;
	     batch = batch->next) {
		if (batch->deadline_ns < wake)
			wake = batch->deadline_ns;
	}
	if (!connection->up && !connection->config.unary && (connection->retry_at_ns < wake))
		wake = connection->retry_at_ns;
	return (wake < now) ? now : wake;
}

/* Whether the connection has nothing left and may end. Mutex held. */
static bool finished(const struct udsc_connection *connection)
{
	return (connection->closing || connection->draining) && (connection->stream == NULL) &&
	       (connection->unary_calls == 0) && (connection->pending_count == 0) &&
	       (connection->in_flight_count == 0);
}

/* Regular chores: timeouts, late flushes, reconnecting, ending. Mutex held. */
static void housekeeping(struct udsc_connection *connection)
{
	uint64_t now = udsc_now_ns();

	expire_pending(connection, now);
	expire_in_flight(connection, now);
	if (connection->closing) {
		fail_pending(connection, UDSC_SHUTDOWN);
		if (connection->stream != NULL)
			grpc_call_cancel(connection->stream->call, NULL);
	} else if (connection->draining && (connection->pending_count == 0) &&
	           (connection->in_flight_count == 0) && (connection->stream != NULL)) {
		grpc_call_cancel(connection->stream->call, NULL);
	}
	if (!connection->closing && !connection->draining && !connection->config.unary &&
	    !connection->up && (connection->stream == NULL) && (now >= connection->retry_at_ns))
		open_stream(connection);
	send_due(connection, now);
	if (finished(connection) && !connection->queue_shut_down) {
		connection->queue_shut_down = true;
		grpc_completion_queue_shutdown(connection->queue);
	}
}

static void *connection_main(void *argument)
{
	struct udsc_connection *connection = argument;

	for (;;) {
		grpc_event event;
		uint64_t wake;

		pthread_mutex_lock(&connection->mutex);
		housekeeping(connection);
		wake = next_wakeup(connection, udsc_now_ns());
		pthread_mutex_unlock(&connection->mutex);
		run_callbacks(connection);
		event = grpc_completion_queue_next(connection->queue, udsc_deadline_at(wake), NULL);
		if (event.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (event.type == GRPC_OP_COMPLETE) {
			struct udsc_tag *tag = event.tag;

			pthread_mutex_lock(&connection->mutex);
			tag->on_event(connection, tag, event.success != 0);
			pthread_mutex_unlock(&connection->mutex);
			run_callbacks(connection);
		}
	}
	return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* The interface                                                                               */
/* ------------------------------------------------------------------------------------------ */

enum udsc_status udsc_connection_open(const struct udsc_connection_config *config,
                                      struct udsc_connection **connection_ptr, char *error,
                                      size_t error_size)
{
	struct udsc_connection *connection = calloc(1, sizeof(*connection));

	if (connection == NULL) {
		udsc_set_error(error, error_size, "out of memory");
		return UDSC_INVALID;
	}
	connection->config = *config;
	connection->channel =
	    udsc_make_channel(config->server, config->security, config->number, error, error_size);
	if (connection->channel == NULL) {
		free(connection);
		return UDSC_INVALID;
	}
	connection->queue = grpc_completion_queue_create_for_next(NULL);
	connection->stream_method =
	    grpc_channel_register_call(connection->channel, "/uds.v1.Advice/Stream", NULL, NULL);
	connection->batch_method =
	    grpc_channel_register_call(connection->channel, "/uds.v1.Advice/Batch", NULL, NULL);
	connection->next_batch_id = 1;
	pthread_mutex_init(&connection->mutex, NULL);
	pthread_mutex_lock(&connection->mutex);
	if (config->unary)
		connection->up = true;
	else
		open_stream(connection);
	pthread_mutex_unlock(&connection->mutex);
	if (pthread_create(&connection->thread, NULL, connection_main, connection) != 0) {
		udsc_set_error(error, error_size, "cannot start a thread");
		connection->closing = true;
		udsc_connection_close(connection);
		return UDSC_INVALID;
	}
	connection->thread_started = true;
	*connection_ptr = connection;
	return UDSC_OK;
}

enum udsc_status udsc_connection_submit(struct udsc_connection *connection,
                                        struct udsc_request *request)
{
	enum udsc_status status = UDSC_OK;
	uint64_t now = udsc_now_ns();

	pthread_mutex_lock(&connection->mutex);
	if (connection->closing || connection->draining) {
		status = UDSC_SHUTDOWN;
	} else if (!connection->up || (connection->config.fail_fast && connection->known_down)) {
		status = UDSC_UNAVAILABLE;
	} else if (connection->pending_count >= connection->config.max_pending) {
		status = UDSC_OVERLOADED;
	} else {
		request->next = NULL;
		request->deadline_ns =
		    now + ((request->timeout_ms != 0) ? request->timeout_ms * 1000000ULL
		                                      : connection->config.timeout_ns);
		if (connection->pending_tail != NULL) {
			connection->pending_tail->next = request;
		} else {
			connection->pending_head = request;
			connection->pending_since_ns = now;
		}
		connection->pending_tail = request;
		connection->pending_count++;
		send_due(connection, now);
	}
	pthread_mutex_unlock(&connection->mutex);
	return status;
}

void udsc_connection_drain(struct udsc_connection *connection)
{
	pthread_mutex_lock(&connection->mutex);
	connection->draining = true;
	pthread_mutex_unlock(&connection->mutex);
}

bool udsc_connection_drained(struct udsc_connection *connection)
{
	bool done;

	pthread_mutex_lock(&connection->mutex);
	done = connection->queue_shut_down;
	pthread_mutex_unlock(&connection->mutex);
	return done;
}

void udsc_connection_close(struct udsc_connection *connection)
{
	pthread_mutex_lock(&connection->mutex);
	connection->closing = true;
	if (!connection->thread_started) {
		housekeeping(connection);
		connection->queue_shut_down = true;
		grpc_completion_queue_shutdown(connection->queue);
	}
	pthread_mutex_unlock(&connection->mutex);
	if (connection->thread_started) {
		/* Wake the thread: a no-op alarm is not in the C API, so cancel the stream. */
		pthread_mutex_lock(&connection->mutex);
		if (connection->stream != NULL)
			grpc_call_cancel(connection->stream->call, NULL);
		pthread_mutex_unlock(&connection->mutex);
		pthread_join(connection->thread, NULL);
	} else {
		/* No thread ever ran: finish what open_stream() started here. */
		for (;;) {
			grpc_event event = grpc_completion_queue_next(
			    connection->queue, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
			struct udsc_tag *tag = event.tag;

			if (event.type == GRPC_QUEUE_SHUTDOWN)
				break;
			pthread_mutex_lock(&connection->mutex);
			tag->on_event(connection, tag, event.success != 0);
			pthread_mutex_unlock(&connection->mutex);
		}
		run_callbacks(connection);
	}
	grpc_completion_queue_destroy(connection->queue);
	grpc_channel_destroy(connection->channel);
	pthread_mutex_destroy(&connection->mutex);
	free(connection);
}
