/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * libudsclient's insides, shared by its files: the shard map's form, the gRPC plumbing
 * (transport.c), and the connections that carry advice (connection.c).
 */
#ifndef UDSCLIENT_INTERNAL_H
#define UDSCLIENT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <grpc/grpc.h>
#include <grpc/status.h>

#include "uds/v1/index.pb-c.h"
#include "udsclient.h"

/* ------------------------------------------------------------------------------------------ */
/* Shard maps (shard-map.c)                                                                    */
/* ------------------------------------------------------------------------------------------ */

struct udsc_map_shard {
	char *server;
	char *index;
	/* Rendezvous seed: XXH3 of "server/index". */
	uint64_t seed;
};

struct udsc_map_index {
	char *name;
	struct udsc_map_shard shards[UDSC_MAX_SHARDS];
	unsigned int shard_count;
};

struct udsc_shard_map {
	uint64_t version;
	bool has_version;
	struct udsc_map_index *indexes;
	unsigned int index_count;
};

/** udsc_map_find() - A logical index of a map by name, or NULL. */
const struct udsc_map_index *udsc_map_find(const struct udsc_shard_map *map, const char *name);

/** udsc_route() - The shard, of @count with rendezvous @seeds, that @name goes to. */
unsigned int udsc_route(const uint64_t *seeds, unsigned int count, const uint8_t *name);

/* ------------------------------------------------------------------------------------------ */
/* gRPC plumbing (transport.c)                                                                 */
/* ------------------------------------------------------------------------------------------ */

/** udsc_set_error() - Write a message into @error (@size bytes), if the caller gave one. */
void udsc_set_error(char *error, size_t size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/** udsc_now_ns() - CLOCK_MONOTONIC in nanoseconds. */
uint64_t udsc_now_ns(void);

/** udsc_deadline_at() - A gRPC deadline at @when_ns of udsc_now_ns() (UINT64_MAX: never). */
gpr_timespec udsc_deadline_at(uint64_t when_ns);

/**
 * udsc_make_channel() - A channel to @server with @security; @number makes channels to one
 *                       server distinct, so that each has a connection of its own.
 *
 * Return: the channel, or NULL with a message in @error.
 */
grpc_channel *udsc_make_channel(const char *server, const struct udsc_security *security,
                                unsigned int number, char *error, size_t error_size);

/** udsc_status_of_code() - The client status for a gRPC status code that ended a call. */
enum udsc_status udsc_status_of_code(grpc_status_code code);

/**
 * udsc_auth_metadata() - Set @entry to "authorization: Bearer <token>"; returns 1, or 0 when
 *                        there is no token. Release with udsc_release_metadata().
 */
size_t udsc_auth_metadata(const char *token, grpc_metadata *entry);

/** udsc_release_metadata() - Release what udsc_auth_metadata() made. */
void udsc_release_metadata(grpc_metadata *entry, size_t count);

/** udsc_buffer_of() - A byte buffer holding the packed @message. */
grpc_byte_buffer *udsc_buffer_of(const ProtobufCMessage *message);

/** udsc_read_buffer() - The bytes of a received buffer as one slice (unref it). */
grpc_slice udsc_read_buffer(grpc_byte_buffer *buffer);

/**
 * udsc_fill_replies() - Copy an AdviceReply's results into @count requests (a list linked by
 *                       next, or an array when @array).
 *
 * Return: true, or false if the reply does not match the requests.
 */
bool udsc_fill_replies(const Uds__V1__AdviceReply *reply, struct udsc_request *requests,
                       size_t count, bool array);

/* ------------------------------------------------------------------------------------------ */
/* Connections (connection.c)                                                                  */
/* ------------------------------------------------------------------------------------------ */

struct udsc_connection;

/* What a connection needs of its client's options. */
struct udsc_connection_config {
	const char *server;
	const char *index;
	const struct udsc_security *security;
	unsigned int number;
	unsigned int batch_max;
	uint64_t batch_delay_ns;
	unsigned int window;
	unsigned int max_pending;
	uint64_t timeout_ns;
	bool unary;
	/* Refuse requests while the connection is known to be down (udsc_options.fail_fast). */
	bool fail_fast;
};

/** udsc_connection_open() - Make a connection and its thread; it connects at once. */
enum udsc_status udsc_connection_open(const struct udsc_connection_config *config,
                                      struct udsc_connection **connection_ptr, char *error,
                                      size_t error_size);

/** udsc_connection_submit() - Queue @request (see udsc_submit()). */
enum udsc_status udsc_connection_submit(struct udsc_connection *connection,
                                        struct udsc_request *request);

/**
 * udsc_connection_drain() - Take no more requests; the connection ends once what it was given
 *                           completes. udsc_connection_close() then only joins.
 */
void udsc_connection_drain(struct udsc_connection *connection);

/** udsc_connection_drained() - Whether a draining connection has finished. */
bool udsc_connection_drained(struct udsc_connection *connection);

/**
 * udsc_connection_close() - Complete what is left with UDSC_SHUTDOWN, end the connection and
 *                           free it.
 */
void udsc_connection_close(struct udsc_connection *connection);

#endif /* UDSCLIENT_INTERNAL_H */
