/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A gRPC server on gRPC's core C API: worker threads, one completion queue each, serving a table
 * of unary and bidirectional-streaming methods.
 *
 * Each worker owns a completion queue registered with the server and keeps one call requested
 * on it for every method in the table, plus one for methods the table does not name, which are
 * answered UNIMPLEMENTED as soon as they arrive. A call's request message arrives with the call
 * (GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER) and the method's handler runs on the worker with
 * it. A handler must not block: it replies at once, or hands the call to whatever does the work
 * and that replies later, from any thread, with rpc_call_reply() or rpc_call_fail(). The reply
 * and the final status go out in one batch; when it completes, the worker frees the call.
 *
 * A streaming method's handler is called on the worker for each message of the stream and
 * answers each one, later and from any thread, with rpc_stream_send() or rpc_stream_fail().
 * Messages being served and replies not yet sent share the stream's window: once
 * config->stream_window of them are pending the server stops reading the stream (HTTP/2 flow
 * control then holds the client back) and reads again as replies go out, so a stream that is
 * not read never costs more than a window of work and buffered replies. Replies are sent one at a
 * time in the order given. When the client closes its side and every message is answered, the
 * stream ends with OK; rpc_stream_fail() ends it with an error once the messages already taken are
 * answered. A stream the client abandons is cancelled: answers still due are dropped and the call
 * is freed after the last.
 *
 * Every tag on a completion queue is a struct rpc_tag whose function says what the event means,
 * so a worker's loop is a plain dispatch.
 */
#ifndef UDS_INDEXD_RPC_SERVER_H
#define UDS_INDEXD_RPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>

struct rpc_server;
struct rpc_call;

/**
 * typedef rpc_unary_handler_fn - Serve one call of a method: @request is its serialized message
 * (@size bytes, valid until the handler returns). The handler owns @call until it replies.
 */
typedef void (*rpc_unary_handler_fn)(struct rpc_call *call, const uint8_t *request, size_t size,
                                     void *context);

/**
 * typedef rpc_stream_handler_fn - Serve one message of a stream (@size bytes, valid until the
 * handler returns). The handler must answer it once, with rpc_stream_send() or rpc_stream_fail().
 */
typedef void (*rpc_stream_handler_fn)(struct rpc_call *stream, const uint8_t *message, size_t size,
                                      void *context);

struct rpc_method {
	/* The full method path, "/package.Service/Method". */
	const char *path;
	/* Exactly one of the two. */
	rpc_unary_handler_fn handler;
	rpc_stream_handler_fn stream_handler;
	void *context;
};

struct rpc_listener {
	/* "127.0.0.1:7400", "[::]:7400" or "unix:/run/uds.sock". */
	const char *address;
	/* TLS credentials (the server takes a reference), or NULL for an insecure listener. */
	grpc_server_credentials *credentials;
};

struct rpc_server_config {
	const struct rpc_listener *listeners;
	unsigned int listener_count;
	unsigned int workers;
	/* Largest request message accepted, in bytes. */
	int max_message_bytes;
	/* Messages of one stream served at once before the server stops reading it. */
	unsigned int stream_window;
};

/**
 * rpc_server_start() - Listen on the configured addresses and serve @methods (kept by
 *                      reference) on config->workers threads.
 *
 * Return: DD_SUCCESS, or an error (logged) if an address cannot be bound.
 */
int rpc_server_start(const struct rpc_server_config *config, const struct rpc_method *methods,
                     size_t method_count, struct rpc_server **server_ptr);

/**
 * rpc_server_stop() - Stop accepting calls, cancel those in progress, and wait for the workers
 *                     to finish. Calls handed elsewhere must still be completed by their owners
 *                     (their replies then go nowhere); the server is freed after the last one.
 */
void rpc_server_stop(struct rpc_server *server);

/**
 * rpc_call_metadata() - The value of a request metadata key (lower case), or NULL. @length is
 *                       set to its length; values are not NUL-terminated.
 */
const char *rpc_call_metadata(const struct rpc_call *call, const char *key, size_t *length);

/** rpc_call_peer() - The peer's address, for logs (valid while the call is). */
const char *rpc_call_peer(struct rpc_call *call);

/** rpc_call_reply() - Send @reply and an OK status; the call is then the server's again. */
void rpc_call_reply(struct rpc_call *call, const ProtobufCMessage *reply);

/** rpc_call_fail() - End the call with @code and @message (printf-style) and no reply. */
void rpc_call_fail(struct rpc_call *call, grpc_status_code code, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * rpc_stream_send() - Answer one message of @stream with @reply (packed before it returns), from
 *                     any thread.
 */
void rpc_stream_send(struct rpc_call *stream, const ProtobufCMessage *reply);

/**
 * rpc_stream_fail() - Answer one message of @stream by ending the stream with @code and
 *                     @message (printf-style) once the messages taken before are answered;
 *                     any thread. The first failure's status is the one sent.
 */
void rpc_stream_fail(struct rpc_call *stream, grpc_status_code code, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/** rpc_server_stream_count() - Streams open now. */
unsigned int rpc_server_stream_count(const struct rpc_server *server);

enum {
	/* gRPC status codes run from 0 (OK) to 16 (UNAUTHENTICATED). */
	RPC_STATUS_CODES = 17,
};

/**
 * rpc_server_finished_calls() - Calls of methods[@method] (@method == method_count: of methods
 *                               the table does not name) that ended with @code so far.
 */
uint64_t rpc_server_finished_calls(const struct rpc_server *server, size_t method,
                                   grpc_status_code code);

#endif /* UDS_INDEXD_RPC_SERVER_H */
