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

#include "access.h"
#include "registry.h"
#include "rpc-server.h"
#include "work-queue.h"

enum {
	INDEXD_MAX_METHODS = 16,
};

struct indexd {
	struct index_registry *registry;
	struct access_control *access;
	struct dd_thread_set *admin_thread;
	struct rpc_server *server;
	/* Every method served, in the order the rpc server counts them. */
	struct rpc_method methods[INDEXD_MAX_METHODS];
	size_t method_count;
	atomic_bool stopping;
};

/** indexd_admin_methods() - The IndexAdmin and Health methods; sets *count. */
const struct rpc_method *indexd_admin_methods(struct indexd *daemon, size_t *count);

/** indexd_advice_methods() - The Advice methods; sets *count. */
const struct rpc_method *indexd_advice_methods(struct indexd *daemon, size_t *count);

/** indexd_status_of() - The gRPC status for an error of the index engine or registry. */
grpc_status_code indexd_status_of(int result);

/**
 * indexd_check_access() - Whether @call's token gives @rights on @index (NULL: every index):
 *                         GRPC_STATUS_OK, or UNAUTHENTICATED / PERMISSION_DENIED with the
 *                         reason in @why (@size bytes).
 */
grpc_status_code indexd_check_access(struct indexd *daemon, struct rpc_call *call,
                                     const char *index, unsigned int rights, char *why,
                                     size_t size);

/**
 * indexd_allowed() - Whether @call's token gives @rights on @index (NULL: every index); if not,
 *                    the call is failed with UNAUTHENTICATED or PERMISSION_DENIED.
 */
bool indexd_allowed(struct indexd *daemon, struct rpc_call *call, const char *index,
                    unsigned int rights);

#endif /* UDS_INDEXD_H */
