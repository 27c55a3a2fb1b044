// SPDX-License-Identifier: GPL-2.0-only
/*
 * The registry of named indexes and its catalog; see registry.h.
 */
#include "registry.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "errors.h"
#include "logger.h"
#include "memory-alloc.h"
#include "time-utils.h"

#define CATALOG_HEADER "uds-indexd catalog 1\n"

enum {
	CATALOG_LINE_MAX = INDEX_PATH_MAX + 256,
};

struct index_registry {
	pthread_mutex_t mutex;
	/* Short enough for "<data_dir>/<name>.uds" and "<data_dir>/catalog.new" to fit a path. */
	char data_dir[INDEX_PATH_MAX - 128];
	struct served_index **indexes;
	size_t count;
	size_t capacity;
};

bool registry_valid_name(const char *name)
{
	size_t length = strlen(name);

	if ((length == 0) || (length > INDEX_NAME_MAX))
		return false;
	for (size_t i = 0; i < length; i++) {
		char c = name[i];

		if (!(((c >= 'a') && (c <= 'z')) || ((c >= 'A') && (c <= 'Z')) ||
		      ((c >= '0') && (c <= '9')) || (c == '_') || (c == '.') || (c == '-')))
			return false;
	}
	return (strcmp(name, ".") != 0) && (strcmp(name, "..") != 0);
}

/* ------------------------------------------------------------------------------------------ */
/* The catalog                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void catalog_path(const struct index_registry *registry, const char *suffix, char *path,
                         size_t size)
{
	snprintf(path, size, "%s/catalog%s", registry->data_dir, suffix);
}

/* Write the catalog text for the current table (caller holds the mutex). */
static int write_catalog(const struct index_registry *registry)
{
	char path[INDEX_PATH_MAX + 16];
	char temporary[INDEX_PATH_MAX + 16];
	XXH64_state_t *hash = XXH64_createState();
	FILE *file;
	int result = DD_SUCCESS;

	catalog_path(registry, ".new", temporary, sizeof(temporary));
	catalog_path(registry, "", path, sizeof(path));
	file = fopen(temporary, "w");
	if ((file == NULL) || (hash == NULL)) {
		result = dd_log_error_strerror(errno, "cannot write %s", temporary);
		goto out;
	}
	XXH64_reset(hash, 0);
	fputs(CATALOG_HEADER, file);
	XXH64_update(hash, CATALOG_HEADER, strlen(CATALOG_HEADER));
	for (size_t i = 0; i < registry->count; i++) {
		const struct served_index *served = registry->indexes[i];
		char line[CATALOG_LINE_MAX];
		int length;

		if (!served->ready)
			continue;
		length = snprintf(line, sizeof(line), "index %s %u %d %u %d %s\n", served->name,
		                  served->parameters.memory_mb, served->parameters.sparse,
		                  served->parameters.zone_count, served->owned, served->path);

		fputs(line, file);
		XXH64_update(hash, line, (size_t) length);
	}
	fprintf(file, "checksum %016" PRIx64 "\n", (uint64_t) XXH64_digest(hash));
	if ((fflush(file) != 0) || (fsync(fileno(file)) != 0)) {
		result = dd_log_error_strerror(errno, "cannot write %s", temporary);
		goto out;
	}
	if (rename(temporary, path) != 0)
		result = dd_log_error_strerror(errno, "cannot replace %s", path);
out:
	if (file != NULL)
		fclose(file);
	XXH64_freeState(hash);
	return result;
}

/* Parse one "index ..." line of the catalog into @served. */
static int parse_catalog_line(const char *line, struct served_index *served)
{
	unsigned int memory_mb;
	unsigned int zones;
	int sparse;
	int owned;
	int offset = 0;
	size_t length;

	if ((sscanf(line, "index %64s %u %d %u %d %n", served->name, &memory_mb, &sparse, &zones,
	            &owned, &offset) != 5) ||
	    (offset == 0) || !registry_valid_name(served->name))
		return DD_CORRUPT_DATA;
	length = strcspn(line + offset, "\n");
	if ((length == 0) || (length >= sizeof(served->path)))
		return DD_CORRUPT_DATA;
	memcpy(served->path, line + offset, length);
	served->path[length] = '\0';
	served->parameters.memory_mb = memory_mb;
	served->parameters.sparse = (sparse != 0);
	served->parameters.zone_count = zones;
	served->owned = (owned != 0);
	return DD_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* Indexes                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void free_served(struct served_index *served)
{
	if (served == NULL)
		return;
	if (served->index != NULL)
		uds_free_index(served->index);
	dd_free(served);
}

/* Open (or create) the index a served_index describes, and learn its shape. */
static int open_served(struct served_index *served, enum uds_open_mode mode)
{
	struct uds_index_stats stats;
	dd_ktime_t start = dd_monotonic_ns();
	int result;

	served->parameters.path = served->path;
	result = uds_compute_index_size(&served->parameters, &served->storage_bytes);
	if (result == DD_SUCCESS)
		result = uds_open_index(mode, &served->parameters, &served->index);
	if (result == DD_SUCCESS)
		result = uds_get_index_stats(served->index, &stats);
	if (result != DD_SUCCESS)
		return dd_log_error_strerror(result, "cannot open index %s (%s)", served->name,
		                             served->path);
	served->records_per_volume = stats.records_per_volume;
	served->nonce = stats.nonce;
	served->parameters.zone_count = stats.zone_count;
	dd_log_info("index %s %s in %.1f s (%s, nonce %llu)", served->name,
	            (mode == UDS_CREATE) ? "created" : (stats.rebuilt ? "rebuilt" : "loaded"),
	            (double) (dd_monotonic_ns() - start) / 1e9, served->path,
	            (unsigned long long) served->nonce);
	return DD_SUCCESS;
}

static int add_served(struct index_registry *registry, struct served_index *served)
{
	if (registry->count == registry->capacity) {
		size_t capacity = registry->capacity ? 2 * registry->capacity : 8;
		struct served_index **indexes;
		int result =
		    DD_ALLOCATE(capacity, struct served_index *, "served indexes", &indexes);

		if (result != DD_SUCCESS)
			return result;
		if (registry->count > 0)
			memcpy(indexes, registry->indexes, registry->count * sizeof(*indexes));
		dd_free(registry->indexes);
		registry->indexes = indexes;
		registry->capacity = capacity;
	}
	atomic_store(&served->references, 1);
	registry->indexes[registry->count++] = served;
	return DD_SUCCESS;
}

/* The position of a name in the table (ready or not), or -1. */
static ssize_t find_served(const struct index_registry *registry, const char *name)
{
	for (size_t i = 0; i < registry->count; i++) {
		if (strcmp(registry->indexes[i]->name, name) == 0)
			return (ssize_t) i;
	}
	return -1;
}

/* The position of a ready index, or -1. */
static ssize_t find_ready(const struct index_registry *registry, const char *name)
{
	ssize_t position = find_served(registry, name);

	return ((position >= 0) && registry->indexes[position]->ready) ? position : -1;
}

static void remove_served_at(struct index_registry *registry, size_t position)
{
	registry->indexes[position] = registry->indexes[--registry->count];
}

/* Read the catalog (if any) and open every index in it. */
static int load_catalog(struct index_registry *registry)
{
	char path[INDEX_PATH_MAX + 16];
	char line[CATALOG_LINE_MAX];
	XXH64_state_t *hash = XXH64_createState();
	bool checked = false;
	FILE *file;
	int result = DD_SUCCESS;

	catalog_path(registry, "", path, sizeof(path));
	file = fopen(path, "r");
	if (file == NULL) {
		XXH64_freeState(hash);
		if (errno == ENOENT)
			return write_catalog(registry);
		return dd_log_error_strerror(errno, "cannot read %s", path);
	}
	XXH64_reset(hash, 0);
	if ((fgets(line, sizeof(line), file) == NULL) || (strcmp(line, CATALOG_HEADER) != 0)) {
		result =
		    dd_log_error_strerror(DD_BAD_MAGIC, "%s is not a uds-indexd catalog", path);
		goto out;
	}
	XXH64_update(hash, line, strlen(line));
	while ((result == DD_SUCCESS) && (fgets(line, sizeof(line), file) != NULL)) {
		struct served_index *served;
		uint64_t checksum;

		if (sscanf(line, "checksum %" SCNx64, &checksum) == 1) {
			checked = (checksum == XXH64_digest(hash));
			break;
		}
		XXH64_update(hash, line, strlen(line));
		result = DD_ALLOCATE(1, struct served_index, "served index", &served);
		if (result != DD_SUCCESS)
			break;
		result = parse_catalog_line(line, served);
		if ((result == DD_SUCCESS) && (find_served(registry, served->name) >= 0))
			result = DD_DUPLICATE_NAME;
		if (result == DD_SUCCESS)
			result = add_served(registry, served);
		if (result != DD_SUCCESS)
			free_served(served);
	}
	if ((result == DD_SUCCESS) && !checked)
		result = DD_CHECKSUM_MISMATCH;
	if (result != DD_SUCCESS) {
		dd_log_error_strerror(result, "the catalog %s is corrupt", path);
		goto out;
	}
	for (size_t i = 0; (i < registry->count) && (result == DD_SUCCESS); i++) {
		result = open_served(registry->indexes[i], UDS_LOAD);
		registry->indexes[i]->ready = (result == DD_SUCCESS);
	}
out:
	fclose(file);
	XXH64_freeState(hash);
	return result;
}

int registry_open(const char *data_dir, struct index_registry **registry_ptr)
{
	struct index_registry *registry;
	int result;

	if (strlen(data_dir) >= sizeof(registry->data_dir))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "data directory path too long");
	if ((mkdir(data_dir, 0700) != 0) && (errno != EEXIST))
		return dd_log_error_strerror(errno, "cannot make data directory %s", data_dir);
	result = DD_ALLOCATE(1, struct index_registry, "index registry", &registry);
	if (result != DD_SUCCESS)
		return result;
	pthread_mutex_init(&registry->mutex, NULL);
	snprintf(registry->data_dir, sizeof(registry->data_dir), "%s", data_dir);
	result = load_catalog(registry);
	if (result != DD_SUCCESS) {
		for (size_t i = 0; i < registry->count; i++)
			free_served(registry->indexes[i]);
		registry->count = 0;
		registry_close(registry);
		return result;
	}
	*registry_ptr = registry;
	return DD_SUCCESS;
}

void registry_close(struct index_registry *registry)
{
	if (registry == NULL)
		return;
	for (size_t i = 0; i < registry->count; i++) {
		struct served_index *served = registry->indexes[i];

		if (uds_close_index(served->index) != DD_SUCCESS)
			dd_log_error("index %s could not be saved: it will be rebuilt",
			             served->name);
		served->index = NULL;
		free_served(served);
	}
	dd_free(registry->indexes);
	pthread_mutex_destroy(&registry->mutex);
	dd_free(registry);
}

int registry_create(struct index_registry *registry, const char *name,
                    const struct uds_parameters *geometry, const char *path)
{
	struct served_index *served;
	int result;

	if (!registry_valid_name(name))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "bad index name");
	result = DD_ALLOCATE(1, struct served_index, "served index", &served);
	if (result != DD_SUCCESS)
		return result;
	snprintf(served->name, sizeof(served->name), "%s", name);
	served->parameters = *geometry;
	/* Record the engine's defaults, so that the catalog and listings show what is in use. */
	if (served->parameters.memory_mb == 0)
		served->parameters.memory_mb = 256;
	served->owned = (path == NULL) || (path[0] == '\0');
	if (served->owned)
		snprintf(served->path, sizeof(served->path), "%s/%.64s.uds", registry->data_dir,
		         name);
	else
		snprintf(served->path, sizeof(served->path), "%s", path);

	/* Claim the name, so that two creates of one name cannot both open storage; open the
	 * index without holding the mutex, which lookups of other indexes need. */
	pthread_mutex_lock(&registry->mutex);
	result =
	    (find_served(registry, name) >= 0) ? DD_DUPLICATE_NAME : add_served(registry, served);
	pthread_mutex_unlock(&registry->mutex);
	if (result != DD_SUCCESS) {
		free_served(served);
		return result;
	}
	result = open_served(served, UDS_CREATE);
	pthread_mutex_lock(&registry->mutex);
	served->ready = (result == DD_SUCCESS);
	if (result == DD_SUCCESS)
		result = write_catalog(registry);
	if (result != DD_SUCCESS)
		remove_served_at(registry, (size_t) find_served(registry, name));
	pthread_mutex_unlock(&registry->mutex);
	if (result != DD_SUCCESS)
		free_served(served);
	return result;
}

int registry_drop(struct index_registry *registry, const char *name, bool delete_storage)
{
	struct served_index *served;
	ssize_t position;
	int result;

	pthread_mutex_lock(&registry->mutex);
	position = find_ready(registry, name);
	if (position < 0) {
		pthread_mutex_unlock(&registry->mutex);
		return ENOENT;
	}
	served = registry->indexes[position];
	remove_served_at(registry, (size_t) position);
	result = write_catalog(registry);
	pthread_mutex_unlock(&registry->mutex);

	/* New lookups cannot find it; wait for the batches still using it. */
	while (atomic_load(&served->references) > 1)
		dd_sleep_ns(1000 * 1000);
	if (delete_storage && served->owned) {
		uds_free_index(served->index);
		served->index = NULL;
		if (unlink(served->path) != 0)
			dd_log_warning("cannot remove %s: %s", served->path, strerror(errno));
	}
	dd_log_info("index %s dropped", served->name);
	free_served(served);
	return result;
}

struct served_index *registry_get(struct index_registry *registry, const char *name)
{
	struct served_index *served = NULL;
	ssize_t position;

	pthread_mutex_lock(&registry->mutex);
	position = find_ready(registry, name);
	if (position >= 0) {
		served = registry->indexes[position];
		atomic_fetch_add(&served->references, 1);
	}
	pthread_mutex_unlock(&registry->mutex);
	return served;
}

void registry_put(struct served_index *served)
{
	atomic_fetch_sub(&served->references, 1);
}

int registry_list(struct index_registry *registry, struct served_index ***list, size_t *count)
{
	int result;

	pthread_mutex_lock(&registry->mutex);
	result = DD_ALLOCATE(registry->count + 1, struct served_index *, "index list", list);
	if (result == DD_SUCCESS) {
		*count = 0;
		for (size_t i = 0; i < registry->count; i++) {
			if (!registry->indexes[i]->ready)
				continue;
			(*list)[(*count)++] = registry->indexes[i];
			atomic_fetch_add(&registry->indexes[i]->references, 1);
		}
	}
	pthread_mutex_unlock(&registry->mutex);
	return result;
}

void registry_put_list(struct served_index **list, size_t count)
{
	for (size_t i = 0; i < count; i++)
		registry_put(list[i]);
	dd_free(list);
}

int registry_save(struct index_registry *registry, const char *name)
{
	struct served_index **list;
	size_t count;
	int result = registry_list(registry, &list, &count);
	bool saved_any = false;

	if (result != DD_SUCCESS)
		return result;
	for (size_t i = 0; (i < count) && (result == DD_SUCCESS); i++) {
		if ((name != NULL) && (strcmp(list[i]->name, name) != 0))
			continue;
		saved_any = true;
		result = uds_save_index(list[i]->index);
	}
	registry_put_list(list, count);
	return ((result == DD_SUCCESS) && (name != NULL) && !saved_any) ? ENOENT : result;
}
