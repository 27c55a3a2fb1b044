/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * uds-indexd: what the daemon's services share.
 *
 * The rpc workers (rpc-server.h) run the handlers; advice batches go straight to the index
 * engine's zones and are answered from the zone threads; administrative calls, which may take
 * seconds (creating, loading or saving an index), run on one admin thread so that no rpc worker
 * ever waits on index I/O.
 */
#ifndef UDS_INDEXD_H
#define UDS_INDEXD_H

#include <stdatomic.h>
#include <stdbool.h>

#include "registry.h"
#include "rpc-server.h"
#include "work-queue.h"

enum {
	/* Most requests in one advice batch. */
	INDEXD_MAX_BATCH = 4096,
};

struct indexd {
	struct index_registry *registry;
	struct dd_thread_set *admin_thread;
	atomic_bool stopping;
};

/** indexd_admin_methods() - The IndexAdmin and Health methods; sets *count. */
const struct rpc_method *indexd_admin_methods(struct indexd *daemon, size_t *count);

/** indexd_advice_methods() - The Advice methods; sets *count. */
const struct rpc_method *indexd_advice_methods(struct indexd *daemon, size_t *count);

/** indexd_status_of() - The gRPC status for an error of the index engine or registry. */
grpc_status_code indexd_status_of(int result);

#endif /* UDS_INDEXD_H */
