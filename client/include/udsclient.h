/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * libudsclient: deduplication advice from uds-indexd servers, for storage nodes and tools.
 *
 * A client (struct udsc_client, opaque) serves one logical index, which is either one index on
 * one server or, with a shard map, several indexes on several servers. Requests are submitted
 * asynchronously and complete through their callback; the client packs them into batches on
 * Advice streams, several connections per server, and never blocks the caller on the network:
 *
 *   - A request is sent at once when its connection has nothing in flight; otherwise it waits
 *     until a batch is full (batch_max), a reply frees the window, or batch_delay_us passes.
 *   - Each connection keeps at most `window` batches in flight; past max_pending waiting
 *     requests, udsc_submit() refuses new ones (UDSC_OVERLOADED) rather than queue without
 *     bound.
 *   - Every request completes exactly once: with the index's answer, or UDSC_TIMEOUT after its
 *     timeout, or UDSC_UNAVAILABLE if its connection failed (the caller then writes without
 *     deduplication). A connection that fails or stalls is reconnected with exponential backoff.
 *   - Requests for the same name go to the same connection, so they are answered in order.
 *
 * Callbacks run on the client's connection threads: they must be short and must not block or
 * call udsc_close().
 *
 * Shard maps. A shard map is a text file:
 *
 *   # comments and blank lines are ignored
 *   version 7
 *   index vol-a
 *   shard 10.0.0.1:7400 vol-a
 *   shard 10.0.0.2:7400 vol-a
 *   index vol-b
 *   shard unix:/run/uds-indexd/indexd.sock vol-b
 *
 * Each "index" line starts a logical index; each "shard" line names a server and the index
 * there that holds one shard. A name goes to the shard with the highest rendezvous hash of the
 * name and the shard, so going from S to S+1 shards moves about 1/(S+1) of the names and no
 * other name changes shard. The client reloads the map when the file changes (checked every
 * second) or on udsc_reload_shard_map(); a map whose version is not higher than the one in
 * force is ignored. Requests already sent complete where they were sent.
 *
 * The administrative calls (udsc_admin_*) are synchronous, for tools such as udsctl.
 */
#ifndef UDSCLIENT_H
#define UDSCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
	UDSC_NAME_BYTES = 16,
	UDSC_DATA_BYTES = 16,
	/* Most shards in one logical index of a shard map. */
	UDSC_MAX_SHARDS = 64,
};

enum udsc_request_type {
	UDSC_POST = 0,
	UDSC_UPDATE = 1,
	UDSC_QUERY = 2,
	UDSC_QUERY_NO_UPDATE = 3,
	UDSC_DELETE = 4,
};

enum udsc_status {
	UDSC_OK = 0,
	/* No answer within the request's timeout. */
	UDSC_TIMEOUT,
	/* The server could not be reached or the connection failed. */
	UDSC_UNAVAILABLE,
	/* The server refused the call: bad token, no such index, malformed request. */
	UDSC_REFUSED,
	/* The index could not handle this request (treat as not found). */
	UDSC_FAILED,
	/* Too many requests waiting: submit later or write without deduplication. */
	UDSC_OVERLOADED,
	/* The client is closing. */
	UDSC_SHUTDOWN,
	/* Bad arguments or configuration. */
	UDSC_INVALID,
};

enum udsc_location {
	UDSC_LOCATION_UNAVAILABLE = 0,
	UDSC_LOCATION_OPEN_CHAPTER = 1,
	UDSC_LOCATION_DENSE = 2,
	UDSC_LOCATION_SPARSE = 3,
};

struct udsc_request;
typedef void (*udsc_callback_fn)(struct udsc_request *request);

/* One request. The caller owns it; it must stay put until its callback has run. */
struct udsc_request {
	/* Set by the caller. */
	enum udsc_request_type type;
	uint8_t name[UDSC_NAME_BYTES];
	/* For POST and UPDATE. */
	uint8_t new_data[UDSC_DATA_BYTES];
	udsc_callback_fn callback;
	void *context;
	/* Milliseconds; 0: the client's default. */
	unsigned int timeout_ms;

	/* Set when the request completes. */
	enum udsc_status status;
	bool found;
	enum udsc_location location;
	uint8_t old_data[UDSC_DATA_BYTES];

	/* Private to the client. */
	struct udsc_request *next;
	uint64_t deadline_ns;
};

/* How to reach servers: TLS files (PEM) and an access token; all optional. */
struct udsc_security {
	/* CA to verify servers with; NULL: plain text. */
	const char *tls_ca;
	/* Client certificate and key, for servers that require mutual TLS. */
	const char *tls_cert;
	const char *tls_key;
	/* Host name to check the server's certificate against instead of the address's. */
	const char *tls_server_name;
	/* Sent as "authorization: Bearer <token>". */
	const char *token;
};

struct udsc_options {
	/* The logical index: the shard map's index name, or the server's index name. */
	const char *index;
	/* Either a shard map file... */
	const char *shard_map;
	/* ...or one server: "host:port" or "unix:path". */
	const char *server;
	struct udsc_security security;
	/* Connections per server (default udsc_default_connections()). */
	unsigned int connections;
	/* Requests per batch (default 256, at most 4096). */
	unsigned int batch_max;
	/* Longest a request waits for its batch to fill, in microseconds (default 100). */
	unsigned int batch_delay_us;
	/* Batches in flight per connection (default 8). */
	unsigned int window;
	/* Requests waiting per connection before submit refuses (default 65536). */
	unsigned int max_pending;
	/* Default request timeout in milliseconds (default 2000). */
	unsigned int timeout_ms;
	/* Unary Batch calls instead of a stream (for comparison and for tools). */
	bool unary;
	/*
	 * Fail fast while a connection is known to be down: once its stream has failed because
	 * the server could not be reached or went away (killed, refused, reset), udsc_submit()
	 * refuses the connection's requests with UDSC_UNAVAILABLE until a new stream has been
	 * accepted by the server, instead of queueing them behind a reconnect that may take as
	 * long as their timeout (a host that does not answer, a server that accepts connections
	 * but does not speak). A stalled server is not known to be down: its requests still time
	 * out. Streams only: with unary, each batch is a call of its own and fails by itself. Off
	 * by default: then a request submitted while a reconnect is being tried waits for it, up
	 * to its timeout.
	 */
	bool fail_fast;
};

struct udsc_client;

/**
 * udsc_default_connections() - The connections per server when options.connections is 0: half
 *                              the online CPUs, from 1 to 4. Each connection has a thread of its
 *                              own, and more of them than the CPUs can run only add wake-ups.
 */
unsigned int udsc_default_connections(void);

/**
 * udsc_open() - Make a client for one logical index and start connecting.
 * @error: if not NULL, a message for a failure (@error_size bytes)
 *
 * Return: UDSC_OK, or UDSC_INVALID for bad options or an unreadable shard map or TLS file.
 */
enum udsc_status udsc_open(const struct udsc_options *options, struct udsc_client **client_ptr,
                           char *error, size_t error_size);

/**
 * udsc_submit() - Send a request; its callback runs when it completes. Never waits on the
 *                 network.
 *
 * Return: UDSC_OK (the callback will run), or UDSC_INVALID, UDSC_OVERLOADED, UDSC_UNAVAILABLE
 *         (its server is down and reconnecting) or UDSC_SHUTDOWN; then the callback will not
 *         run.
 */
enum udsc_status udsc_submit(struct udsc_client *client, struct udsc_request *request);

/**
 * udsc_reload_shard_map() - Read the shard map file again now.
 *
 * Return: UDSC_OK (also when the map's version is not newer and nothing changed), or
 *         UDSC_INVALID if the file cannot be read or parsed (the map in force stays).
 */
enum udsc_status udsc_reload_shard_map(struct udsc_client *client, char *error, size_t error_size);

/** udsc_shard_map_version() - The version of the shard map in force (0 without a map). */
uint64_t udsc_shard_map_version(struct udsc_client *client);

/**
 * udsc_shard_of() - Which shard of the map in force a name goes to: its server and index (valid
 *                   until the next reload). Returns the shard's number.
 */
unsigned int udsc_shard_of(struct udsc_client *client, const uint8_t name[UDSC_NAME_BYTES],
                           const char **server, const char **index);

/**
 * udsc_close() - Stop the client: requests not completed complete with UDSC_SHUTDOWN, then
 *                every connection is closed and the client freed.
 */
void udsc_close(struct udsc_client *client);

/** udsc_status_name() - A short name for a status ("ok", "timeout", ...). */
const char *udsc_status_name(enum udsc_status status);

/* ------------------------------------------------------------------------------------------ */
/* Shard maps, for tools                                                                       */
/* ------------------------------------------------------------------------------------------ */

struct udsc_shard_map;

/**
 * udsc_shard_map_load() - Parse a shard map file.
 *
 * Return: UDSC_OK, or UDSC_INVALID with a message in @error (file:line: what).
 */
enum udsc_status udsc_shard_map_load(const char *path, struct udsc_shard_map **map_ptr, char *error,
                                     size_t error_size);

/** udsc_shard_map_free() - Free a map from udsc_shard_map_load(). */
void udsc_shard_map_free(struct udsc_shard_map *map);

/** udsc_shard_map_get_version() - The map's version. */
uint64_t udsc_shard_map_get_version(const struct udsc_shard_map *map);

/** udsc_shard_map_index_count() - How many logical indexes the map holds. */
unsigned int udsc_shard_map_index_count(const struct udsc_shard_map *map);

/** udsc_shard_map_index_name() - The name of logical index @i. */
const char *udsc_shard_map_index_name(const struct udsc_shard_map *map, unsigned int i);

/**
 * udsc_shard_map_shards() - The shards of logical index @index: fills @servers and @indexes
 *                           (pointers into the map) and returns how many, or 0 if the map has
 *                           no such index.
 */
unsigned int udsc_shard_map_shards(const struct udsc_shard_map *map, const char *index,
                                   const char *servers[UDSC_MAX_SHARDS],
                                   const char *indexes[UDSC_MAX_SHARDS]);

/**
 * udsc_shard_map_route() - The shard (0-based, in map order) of logical index @index that
 *                          @name goes to, or -1 if the map has no such index.
 */
int udsc_shard_map_route(const struct udsc_shard_map *map, const char *index,
                         const uint8_t name[UDSC_NAME_BYTES]);

/* ------------------------------------------------------------------------------------------ */
/* Administration (synchronous)                                                                */
/* ------------------------------------------------------------------------------------------ */

struct udsc_admin;

/* A failed call: the gRPC status code and the server's message. */
struct udsc_error {
	int code;
	char message[256];
};

struct udsc_index_info {
	char name[65];
	char path[4096];
	unsigned int memory_mb;
	bool sparse;
	unsigned int zones;
	uint64_t storage_bytes;
	uint64_t records_per_volume;
	/* The nonce the index was created with: its identity. It stays the same across restarts
	 * of the server; an index dropped and created again under the same name has a new one. */
	uint64_t nonce;
};

struct udsc_index_stats {
	uint64_t entries_indexed;
	uint64_t entries_discarded;
	uint64_t collisions;
	uint64_t early_flushes;
	uint64_t overflows;
	uint64_t rebalances;
	uint64_t cache_hits;
	uint64_t cache_misses;
	uint64_t reads_queued;
	uint64_t read_errors;
	uint64_t chapters_written;
	uint64_t open_chapter;
	uint64_t oldest_chapter;
	uint64_t volume_index_bytes;
	/* All the memory the index holds, its volume index included. */
	uint64_t memory_bytes;
	uint64_t sparse_cache_hits;
	uint64_t sparse_cache_misses;
	uint64_t sparse_chapters_loaded;
	uint64_t chapters_dropped;
	bool rebuilt;
	/* By request type (enum udsc_request_type). */
	uint64_t requests[5];
	uint64_t found[5];
	/* Found by location, UDSC_LOCATION_OPEN_CHAPTER onwards. */
	uint64_t found_in[3];
	/* The index's identity, as udsc_index_info.nonce. */
	uint64_t nonce;
};

/**
 * udsc_admin_open() - Connect to one server for administrative calls.
 *
 * Return: UDSC_OK or UDSC_INVALID (bad TLS files; message in @error).
 */
enum udsc_status udsc_admin_open(const char *server, const struct udsc_security *security,
                                 unsigned int timeout_ms, struct udsc_admin **admin_ptr,
                                 struct udsc_error *error);

/** udsc_admin_close() - Close the connection. */
void udsc_admin_close(struct udsc_admin *admin);

/*
 * Each call returns UDSC_OK, or UDSC_UNAVAILABLE / UDSC_TIMEOUT / UDSC_REFUSED / UDSC_FAILED
 * with the details in @error.
 */

/** udsc_admin_create() - Create an index (@memory_mb 0: 256; @zones 0: the server's default;
 *                        @path NULL or "": in the server's data directory). */
enum udsc_status udsc_admin_create(struct udsc_admin *admin, const char *name,
                                   unsigned int memory_mb, bool sparse, unsigned int zones,
                                   const char *path, struct udsc_index_info *info,
                                   struct udsc_error *error);

/** udsc_admin_drop() - Drop an index, and its storage file if @delete_storage. */
enum udsc_status udsc_admin_drop(struct udsc_admin *admin, const char *name, bool delete_storage,
                                 struct udsc_error *error);

/** udsc_admin_list() - The indexes the caller may see: an array (free with free()). */
enum udsc_status udsc_admin_list(struct udsc_admin *admin, struct udsc_index_info **infos,
                                 size_t *count, struct udsc_error *error);

/** udsc_admin_stats() - An index's counters. */
enum udsc_status udsc_admin_stats(struct udsc_admin *admin, const char *name,
                                  struct udsc_index_stats *stats, struct udsc_error *error);

/** udsc_admin_save() - Save one index, or every index for NULL. */
enum udsc_status udsc_admin_save(struct udsc_admin *admin, const char *name,
                                 struct udsc_error *error);

/** udsc_admin_health() - Whether the server (or one of its services) is serving. */
enum udsc_status udsc_admin_health(struct udsc_admin *admin, const char *service, bool *serving,
                                   struct udsc_error *error);

/**
 * udsc_admin_batch() - One unary Batch call: @count requests of @index (their callbacks are not
 *                      used); each request's status and results are filled in.
 */
enum udsc_status udsc_admin_batch(struct udsc_admin *admin, const char *index,
                                  struct udsc_request *requests, size_t count,
                                  struct udsc_error *error);

#ifdef __cplusplus
}
#endif

#endif /* UDSCLIENT_H */
