/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A gRPC server on gRPC's core C API: worker threads, one completion queue each, serving a table
 * of unary methods.
 *
 * Each worker owns a completion queue registered with the server and keeps one call requested
 * on it for every method in the table, plus one for methods the table does not name, which are
 * answered UNIMPLEMENTED as soon as they arrive. A call's request message arrives with the call
 * (GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER) and the method's handler runs on the worker with
 * it. A handler must not block: it replies at once, or hands the call to whatever does the work
 * and that replies later, from any thread, with rpc_call_reply() or rpc_call_fail(). The reply
 * and the final status go out in one batch; when it completes, the worker frees the call.
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

struct rpc_method {
	/* The full method path, "/package.Service/Method". */
	const char *path;
	rpc_unary_handler_fn handler;
	void *context;
};

struct rpc_server_config {
	/* Addresses to listen on ("127.0.0.1:7400", "unix:/run/uds.sock"), insecure. */
	const char *const *addresses;
	unsigned int address_count;
	unsigned int workers;
	/* Largest request message accepted, in bytes. */
	int max_message_bytes;
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

#endif /* UDS_INDEXD_RPC_SERVER_H */
