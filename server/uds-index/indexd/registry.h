/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The named indexes a uds-indexd serves, and the catalog that remembers them across restarts.
 *
 * Each index is isolated: its own storage, geometry, zones, threads and counters. The registry
 * maps names to open indexes under one mutex that is held only to look a name up or change the
 * table, never across index work: a create claims its name, opens the index without the mutex,
 * then marks it ready. A lookup takes a reference, which every advice batch holds
 * until its last request has completed; dropping an index removes its name at once (new
 * lookups fail) and then waits for the references to drain before it frees the index.
 *
 * The catalog is a small text file in the data directory, rewritten (to a temporary file,
 * fsync, rename) on every create and drop:
 *
 *   uds-indexd catalog 1
 *   index <name> <memory_mb> <sparse 0|1> <zones> <owned 0|1> <path>
 *   ...
 *   checksum <XXH64 of every line above, hex>
 *
 * "owned" marks storage the server created in its data directory (removed on drop if asked).
 * At start every index of the catalog is opened: loaded from its save, or rebuilt if the
 * server stopped without saving it.
 */
#ifndef UDS_INDEXD_REGISTRY_H
#define UDS_INDEXD_REGISTRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "uds.h"

enum {
	INDEX_NAME_MAX = 64,
	INDEX_PATH_MAX = 4096,
};

struct served_index {
	char name[INDEX_NAME_MAX + 1];
	char path[INDEX_PATH_MAX];
	struct uds_parameters parameters;
	/* Storage the server created (in its data directory). */
	bool owned;
	/* Open and serving (under the registry's mutex): an index being created holds its name
	 * but is not found, listed or dropped until it is ready. */
	bool ready;
	struct uds_index *index;
	uint64_t storage_bytes;
	uint64_t records_per_volume;
	/* The index's identity (uds_index_stats.nonce). */
	uint64_t nonce;
	/* References: the registry's own, and one per lookup not yet put back. */
	atomic_uint references;
};

struct index_registry;

/**
 * registry_open() - Open the catalog in @data_dir (created if missing) and every index it lists.
 *
 * Return: DD_SUCCESS, or an error (logged): an unreadable or corrupt catalog, or an index that
 *         cannot be opened.
 */
int registry_open(const char *data_dir, struct index_registry **registry_ptr);

/** registry_close() - Save and free every index, then the registry. */
void registry_close(struct index_registry *registry);

/** registry_valid_name() - Whether @name is a valid index name: [A-Za-z0-9_.-]{1,64}. */
bool registry_valid_name(const char *name);

/**
 * registry_create() - Create a new index and add it to the catalog. An empty @path puts the
 *                     storage in the data directory as <name>.uds.
 *
 * Return: DD_SUCCESS; DD_INVALID_ARGUMENT for a bad name or geometry; DD_DUPLICATE_NAME if the
 *         name is taken; or the error that creating it met. Errors are logged.
 */
int registry_create(struct index_registry *registry, const char *name,
                    const struct uds_parameters *geometry, const char *path);

/**
 * registry_drop() - Remove an index: from the catalog, then (once no request uses it) from
 *                   memory; its storage file too if @delete_storage and the server created it.
 *
 * Return: DD_SUCCESS, or ENOENT for an unknown name.
 */
int registry_drop(struct index_registry *registry, const char *name, bool delete_storage);

/** registry_get() - Look an index up and take a reference, or NULL. */
struct served_index *registry_get(struct index_registry *registry, const char *name);

/** registry_put() - Give back a reference taken by registry_get(). */
void registry_put(struct served_index *served);

/**
 * registry_list() - Take a reference to every ready index: fills @list (allocated, to be freed with
 *                   registry_put_list()) and @count.
 */
int registry_list(struct index_registry *registry, struct served_index ***list, size_t *count);

/** registry_put_list() - Put back the references of a registry_list() and free the list. */
void registry_put_list(struct served_index **list, size_t count);

/** registry_save() - Save one index (@name) or, for NULL, every index. */
int registry_save(struct index_registry *registry, const char *name);

#endif /* UDS_INDEXD_REGISTRY_H */
