/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The deduplication index as the store sees it: where advice comes from, behind one small
 * asynchronous interface with two implementations.
 *
 *   embedded  the uds-index engine in this process (the default). Its storage is a region of
 *             the volume that format reserved, or, for tests on a RAM device, a file of its own.
 *   remote    an index of uds-indexd, through libudsclient (one server, or a shard map), with
 *             TLS and a token. The volume knows the identity of its index (its name and the
 *             nonce it was created with) and takes no advice from an index with another one.
 *
 * Queries. The caller (a hash zone) fills in a struct vdo_index_query, which it owns and keeps
 * in a fixed pool, and starts it with vdo_query_index(). The callback runs exactly once, on a
 * thread of the index's (never on the caller's stack), with the answer or a failure: it must be
 * short and must not block; it hands the answer to its zone by launching a completion.
 *
 * No timeouts here: the caller times its queries itself, goes on without advice when one is
 * late, and takes the query back into its pool only when the callback has run. A query the
 * index cannot take now (the index is not online, it is known to be down, or it is overloaded)
 * calls back at once, soon, with VDO_INDEX_UNAVAILABLE: nothing waits on an index that is not
 * there.
 *
 * Opening never waits for the index: vdo_open_dedupe_index() returns at once and the index
 * opens (loads, or rebuilds after a crash; for a remote index, connects and checks its
 * identity) on a thread of its own. Until it is online, queries answer VDO_INDEX_UNAVAILABLE.
 * vdo_get_dedupe_index_state() tells where it is: OPENING, REBUILDING while an embedded index
 * that was not saved cleanly rebuilds, then ONLINE, or ERROR. A remote index whose server cannot
 * be reached stays OPENING and tries again (after 100 ms, doubling up to 5 s) until it can or
 * close gives up. Closing waits for every query to call back, then saves an embedded index (so
 * that the next open loads it instead of rebuilding).
 *
 * The 16 bytes of record data are the store's business (advice.h); the index stores them as
 * they come.
 *
 * Known down fails fast. A remote index's client is opened with fail_fast (udsclient.h): while
 * a server is known to be down (killed, refusing connections, reset) its queries answer
 * VDO_INDEX_UNAVAILABLE at once instead of waiting for a reconnect; a server that is there but
 * does not answer (stalled, overloaded) costs each query its timeout (VDO_INDEX_TIMED_OUT). The
 * client reconnects on its own, and queries are answered again once the server is back.
 *
 * Identity. An embedded index's nonce is read from the index once it is open. A remote index
 * on one server is checked as it opens: the server must list an index of that name, and when
 * config->index_nonce is set its nonce must match, or the index goes to VDO_INDEX_ERROR. With a
 * shard map each shard's server must list its index; nonces are not checked (a sharded index
 * has no single one), which the open logs.
 */
#ifndef VDO_DEDUPE_INDEX_H
#define VDO_DEDUPE_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "completion.h"
#include "errors.h"
#include "record-name.h"
#include "record-page.h"
#include "uds.h"
#include "udsclient.h"

struct vdo_dedupe_index;

enum vdo_index_kind {
	VDO_INDEX_EMBEDDED = 0,
	VDO_INDEX_REMOTE,
};

enum vdo_index_state {
	/* Loading a saved index, or connecting to a remote one. */
	VDO_INDEX_OPENING = 0,
	/* Rebuilding an embedded index after a crash. */
	VDO_INDEX_REBUILDING,
	/* Answering queries. */
	VDO_INDEX_ONLINE,
	/* Not in use: dedupe is off, or the index is closing. */
	VDO_INDEX_OFFLINE,
	/* It could not be opened (or a remote one has another identity): dedupe is off until
	 * the index is recreated. */
	VDO_INDEX_ERROR,
};

enum vdo_index_operation {
	/* Where was this data? If nowhere, remember new_data for it. */
	VDO_INDEX_POST = 0,
	/* Where was this data? Remember nothing new. */
	VDO_INDEX_QUERY,
	/* This data is now at new_data. */
	VDO_INDEX_UPDATE,
};

enum vdo_index_status {
	/* Answered: found and old_data tell. */
	VDO_INDEX_OK = 0,
	/* Not asked: the index is not online, known to be down, or overloaded. */
	VDO_INDEX_UNAVAILABLE,
	/* Asked, but the answer did not come in time (a remote index's own deadline). */
	VDO_INDEX_TIMED_OUT,
	/* Asked, and the index failed the query. */
	VDO_INDEX_FAILED,
};

struct vdo_index_query;
typedef void (*vdo_index_callback_fn)(struct vdo_index_query *query);

/* One query. The caller owns it and keeps it in place until its callback has run. */
struct vdo_index_query {
	/* Set by the caller. */
	struct dd_record_name name;
	/* For POST and UPDATE. */
	struct uds_record_data new_data;
	enum vdo_index_operation operation;
	vdo_index_callback_fn callback;
	void *context;

	/* Set before the callback. */
	enum vdo_index_status status;
	bool found;
	struct uds_record_data old_data;

	/* Private to the index. */
	struct vdo_dedupe_index *index;
	/* For answers the index gives itself (UNAVAILABLE, a bad operation), on a thread of its
	 * own. */
	struct dd_completion completion;
	union {
		struct uds_request local;
		struct udsc_request remote;
	} request;
};

struct vdo_index_config {
	enum vdo_index_kind kind;

	/* Embedded: the storage, a file or block device, and the region of it the index owns, in
	 * 4 KiB blocks (region_blocks 0: from region_start to the end). */
	const char *path;
	uint64_t region_start;
	uint64_t region_blocks;
	/* Embedded: the shape of a new index (memory 0: 256 MB), and its zone threads (0: 1). */
	uint32_t memory_mb;
	bool sparse;
	unsigned int zone_count;
	/* Embedded: make a new, empty index instead of loading (or rebuilding) the one there. */
	bool create;

	/* Remote: the index's name, and one server ("host:port", "unix:path") or a shard map
	 * file, with TLS and a token. */
	const char *index_name;
	const char *server;
	const char *shard_map;
	struct udsc_security security;
	/* Remote: the nonce the index was created with, as the volume recorded it (0: not
	 * recorded yet; vdo_dedupe_index_identity() then tells the one found). */
	uint64_t index_nonce;
	/* Remote: how long one query may wait for its answer, in milliseconds (0: 5000). */
	unsigned int timeout_ms;
};

/* What the index counts, and its own statistics where it has them. */
struct vdo_dedupe_index_stats {
	enum vdo_index_state state;
	/* Queries by operation and outcome. */
	uint64_t posts_found;
	uint64_t posts_not_found;
	uint64_t queries_found;
	uint64_t queries_not_found;
	uint64_t updates_found;
	uint64_t updates_not_found;
	uint64_t unavailable;
	uint64_t timed_out;
	uint64_t failed;
	/* Queries whose callback has not run yet. */
	uint64_t in_flight;
	/* The index's own figures (zero when it does not say: a remote index, one not online,
	 * or stats asked for on an index thread). */
	uint64_t entries_indexed;
	uint64_t memory_bytes;
};

/**
 * vdo_open_dedupe_index() - Start opening the index @config describes, and return at once.
 * @config: copied (strings too).
 * @index_ptr: receives the index, OPENING (or REBUILDING) until it is ONLINE or in ERROR.
 *
 * Return: DD_SUCCESS, DD_INVALID_ARGUMENT for a bad config, or ENOMEM. Failures to open the
 *         index itself do not fail this call: they leave it in VDO_INDEX_ERROR, logged.
 */
int DD_MUST_CHECK vdo_open_dedupe_index(const struct vdo_index_config *config,
                                        struct vdo_dedupe_index **index_ptr);

/**
 * vdo_query_index() - Ask the index; @query->callback runs exactly once, later, on another
 *                     thread. Any thread (a callback too); never blocks on the index.
 */
void vdo_query_index(struct vdo_dedupe_index *index, struct vdo_index_query *query);

/** vdo_get_dedupe_index_state() - Where the index is now. Any thread. */
enum vdo_index_state vdo_get_dedupe_index_state(struct vdo_dedupe_index *index);

/**
 * vdo_get_dedupe_index_stats() - The index's counters now. Any thread (not during close). An
 *                                embedded index's own figures are gathered from its zone
 *                                threads, a short wait; a remote index's are not asked for
 *                                (that would wait on the network).
 */
void vdo_get_dedupe_index_stats(struct vdo_dedupe_index *index,
                                struct vdo_dedupe_index_stats *stats);

/**
 * vdo_dedupe_index_identity() - The nonce of the index in use (remote: the one the server
 *                               reported; embedded: the one it was created with), 0 if it is
 *                               not online yet or is sharded. The volume records it on first
 *                               use.
 */
uint64_t vdo_dedupe_index_identity(struct vdo_dedupe_index *index);

/**
 * vdo_close_dedupe_index() - Wait for every query to call back (new ones answer
 *                            VDO_INDEX_UNAVAILABLE meanwhile), save an embedded index, and free
 *                            @index (NULL is fine). Waits for an open in progress to finish
 *                            (a remote one that is still trying to reach its server gives up
 *                            once the call it is in, at most config->timeout_ms, returns).
 *                            An embedded index answers every query it was given; a remote
 *                            index's queries still out answer VDO_INDEX_UNAVAILABLE as its
 *                            client closes, without waiting for their timeout. Not from an
 *                            index thread (a callback); no query may be asked once it returns.
 *
 * Return: the save's result (DD_SUCCESS for a remote index or one that never opened).
 */
int vdo_close_dedupe_index(struct vdo_dedupe_index *index);

/** vdo_index_state_name() - "online", "opening", "rebuilding", "offline" or "error". */
const char *vdo_index_state_name(enum vdo_index_state state);

#endif /* VDO_DEDUPE_INDEX_H */
