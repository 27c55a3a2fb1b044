// SPDX-License-Identifier: GPL-2.0-only
/*
 * The client: options, routing to shards, and shard map reloads.
 *
 * A route is the map in force for the client's logical index: the shards' rendezvous seeds and
 * their endpoints (one per server and index, each with options.connections connections).
 * Submitters read the route under a reader-writer lock; a reload builds a new route, reusing
 * the endpoints that stay, swaps it in under the write lock, and drains the endpoints that
 * left: they finish what they were given and are freed by the watcher thread, which also
 * reloads the map when its file changes.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
	WATCH_PERIOD_MS = 1000,
};

struct endpoint {
	struct endpoint *next;
	char *server;
	char *index;
	unsigned int connection_count;
	bool retired;
	struct udsc_connection *connections[];
};

struct route {
	uint64_t version;
	unsigned int shard_count;
	uint64_t seeds[UDSC_MAX_SHARDS];
	struct endpoint *shards[UDSC_MAX_SHARDS];
};

struct udsc_client {
	struct udsc_options options;
	struct udsc_security security;
	/* Copies of the option strings. */
	char *strings[10];
	unsigned int string_count;
	pthread_rwlock_t lock;
	struct route *route;
	/* Every endpoint, in use or retired (draining). */
	struct endpoint *endpoints;
	pthread_mutex_t watch_mutex;
	pthread_cond_t watch_wake;
	pthread_t watcher;
	bool watcher_started;
	bool stopping;
	struct stat map_status;
};

/* Keep a copy of an option string. */
static bool copy_string(struct udsc_client *client, const char **field)
{
	char *copy;

	if (*field == NULL)
		return true;
	copy = strdup(*field);
	if (copy == NULL)
		return false;
	client->strings[client->string_count++] = copy;
	*field = copy;
	return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Endpoints and routes                                                                        */
/* ------------------------------------------------------------------------------------------ */

static void close_endpoint(struct endpoint *endpoint)
{
	for (unsigned int c = 0; c < endpoint->connection_count; c++) {
		if (endpoint->connections[c] != NULL)
			udsc_connection_close(endpoint->connections[c]);
	}
	free(endpoint->server);
	free(endpoint->index);
	free(endpoint);
}

static struct endpoint *open_endpoint(struct udsc_client *client, const char *server,
                                      const char *index, char *error, size_t error_size)
{
	unsigned int count = client->options.connections;
	struct endpoint *endpoint = calloc(1, sizeof(*endpoint) + count * sizeof(void *));
	const struct udsc_options *options = &client->options;

	if (endpoint == NULL) {
		udsc_set_error(error, error_size, "out of memory");
		return NULL;
	}
	endpoint->server = strdup(server);
	endpoint->index = strdup(index);
	endpoint->connection_count = count;
	if ((endpoint->server == NULL) || (endpoint->index == NULL)) {
		close_endpoint(endpoint);
		udsc_set_error(error, error_size, "out of memory");
		return NULL;
	}
	for (unsigned int c = 0; c < count; c++) {
		struct udsc_connection_config config = {
			.server = endpoint->server,
			.index = endpoint->index,
			.security = &client->security,
			.number = c,
			.batch_max = options->batch_max,
			.batch_delay_ns = options->batch_delay_us * 1000ULL,
			.window = options->window,
			.max_pending = options->max_pending,
			.timeout_ns = options->timeout_ms * 1000000ULL,
			.unary = options->unary,
			.fail_fast = options->fail_fast,
		};

		if (udsc_connection_open(&config, &endpoint->connections[c], error, error_size) !=
		    UDSC_OK) {
			close_endpoint(endpoint);
			return NULL;
		}
	}
	return endpoint;
}

/* The endpoint of the current route for @server and @index, or NULL. */
static struct endpoint *find_endpoint(const struct route *route, const char *server,
                                      const char *index)
{
	if (route == NULL)
		return NULL;
	for (unsigned int s = 0; s < route->shard_count; s++) {
		if ((strcmp(route->shards[s]->server, server) == 0) &&
		    (strcmp(route->shards[s]->index, index) == 0))
			return route->shards[s];
	}
	return NULL;
}

/*
 * Build a route for @shards, reusing the current route's endpoints; new endpoints are added to
 * the client's list. Caller holds no lock (only the watcher or udsc_open builds routes, one at
 * a time under watch_mutex).
 */
static struct route *build_route(struct udsc_client *client, const struct udsc_map_index *shards,
                                 uint64_t version, char *error, size_t error_size)
{
	struct route *route = calloc(1, sizeof(*route));

	if (route == NULL) {
		udsc_set_error(error, error_size, "out of memory");
		return NULL;
	}
	route->version = version;
	for (unsigned int s = 0; s < shards->shard_count; s++) {
		const struct udsc_map_shard *shard = &shards->shards[s];
		struct endpoint *endpoint =
		    find_endpoint(client->route, shard->server, shard->index);

		if (endpoint == NULL)
			endpoint = find_endpoint(route, shard->server, shard->index);
		if (endpoint == NULL) {
			endpoint =
			    open_endpoint(client, shard->server, shard->index, error, error_size);
			if (endpoint == NULL) {
				free(route);
				return NULL;
			}
			pthread_rwlock_wrlock(&client->lock);
			endpoint->next = client->endpoints;
			client->endpoints = endpoint;
			pthread_rwlock_unlock(&client->lock);
		}
		route->seeds[s] = shard->seed;
		route->shards[s] = endpoint;
		route->shard_count++;
	}
	return route;
}

/* Install @route; drain the endpoints the old route used and the new one does not. */
static void install_route(struct udsc_client *client, struct route *route)
{
	struct route *old;

	pthread_rwlock_wrlock(&client->lock);
	old = client->route;
	client->route = route;
	pthread_rwlock_unlock(&client->lock);
	if (old == NULL)
		return;
	for (unsigned int s = 0; s < old->shard_count; s++) {
		struct endpoint *endpoint = old->shards[s];

		if ((find_endpoint(route, endpoint->server, endpoint->index) != NULL) ||
		    endpoint->retired)
			continue;
		endpoint->retired = true;
		for (unsigned int c = 0; c < endpoint->connection_count; c++)
			udsc_connection_drain(endpoint->connections[c]);
	}
	free(old);
}

/* Free retired endpoints whose connections have finished. */
static void reap_endpoints(struct udsc_client *client)
{
	struct endpoint **link = &client->endpoints;

	while (*link != NULL) {
		struct endpoint *endpoint = *link;
		bool done = endpoint->retired;

		for (unsigned int c = 0; done && (c < endpoint->connection_count); c++)
			done = udsc_connection_drained(endpoint->connections[c]);
		if (!done) {
			link = &endpoint->next;
			continue;
		}
		pthread_rwlock_wrlock(&client->lock);
		*link = endpoint->next;
		pthread_rwlock_unlock(&client->lock);
		close_endpoint(endpoint);
	}
}

/* Load the shard map and, if it is newer, route by it. watch_mutex held. */
static enum udsc_status load_map(struct udsc_client *client, char *error, size_t error_size)
{
	const struct udsc_map_index *shards;
	struct udsc_shard_map *map;
	struct route *route;
	struct stat status;

	if (stat(client->options.shard_map, &status) == 0)
		client->map_status = status;
	if (udsc_shard_map_load(client->options.shard_map, &map, error, error_size) != UDSC_OK)
		return UDSC_INVALID;
	if ((client->route != NULL) && (map->version <= client->route->version)) {
		udsc_shard_map_free(map);
		return UDSC_OK;
	}
	shards = udsc_map_find(map, client->options.index);
	if (shards == NULL) {
		udsc_set_error(error, error_size, "the shard map %s has no index %s",
		               client->options.shard_map, client->options.index);
		udsc_shard_map_free(map);
		return UDSC_INVALID;
	}
	route = build_route(client, shards, map->version, error, error_size);
	udsc_shard_map_free(map);
	if (route == NULL)
		return UDSC_INVALID;
	install_route(client, route);
	return UDSC_OK;
}

/* Whether the map file changed since it was last read. */
static bool map_changed(const struct udsc_client *client)
{
	struct stat status;

	if (stat(client->options.shard_map, &status) != 0)
		return false;
	return (status.st_ino != client->map_status.st_ino) ||
	       (status.st_size != client->map_status.st_size) ||
	       (status.st_mtim.tv_sec != client->map_status.st_mtim.tv_sec) ||
	       (status.st_mtim.tv_nsec != client->map_status.st_mtim.tv_nsec);
}

static void *watcher_main(void *argument)
{
	struct udsc_client *client = argument;

	pthread_mutex_lock(&client->watch_mutex);
	while (!client->stopping) {
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += WATCH_PERIOD_MS / 1000;
		pthread_cond_timedwait(&client->watch_wake, &client->watch_mutex, &until);
		if (client->stopping)
			break;
		if ((client->options.shard_map != NULL) && map_changed(client)) {
			char error[256];

			if (load_map(client, error, sizeof(error)) != UDSC_OK)
				fprintf(stderr, "udsclient: shard map not reloaded: %s\n", error);
		}
		reap_endpoints(client);
	}
	pthread_mutex_unlock(&client->watch_mutex);
	return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* The interface                                                                               */
/* ------------------------------------------------------------------------------------------ */

unsigned int udsc_default_connections(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (cpus < 2)
		return 1;
	return (cpus / 2 > 4) ? 4 : (unsigned int) (cpus / 2);
}

static void apply_defaults(struct udsc_options *options)
{
	if (options->connections == 0)
		options->connections = udsc_default_connections();
	if (options->batch_max == 0)
		options->batch_max = 256;
	if (options->batch_delay_us == 0)
		options->batch_delay_us = 100;
	if (options->window == 0)
		options->window = 8;
	if (options->max_pending == 0)
		options->max_pending = 65536;
	if (options->timeout_ms == 0)
		options->timeout_ms = 2000;
}

static bool check_options(const struct udsc_options *options, char *error, size_t error_size)
{
	if ((options->index == NULL) || (options->index[0] == '\0')) {
		udsc_set_error(error, error_size, "no index named");
		return false;
	}
	if ((options->shard_map == NULL) == (options->server == NULL)) {
		udsc_set_error(error, error_size, "give either a shard map or a server");
		return false;
	}
	if ((options->batch_max > 4096) || (options->connections > 64) ||
	    (options->window > 1024)) {
		udsc_set_error(error, error_size,
		               "batch_max is at most 4096, connections 64, window 1024");
		return false;
	}
	return true;
}

/* The route of a client without a shard map: one shard. */
static enum udsc_status single_route(struct udsc_client *client, char *error, size_t error_size)
{
	struct udsc_map_index shards = { .shard_count = 1 };
	struct route *route;

	shards.shards[0] = (struct udsc_map_shard){
		.server = (char *) client->options.server,
		.index = (char *) client->options.index,
	};
	route = build_route(client, &shards, 0, error, error_size);
	if (route == NULL)
		return UDSC_INVALID;
	install_route(client, route);
	return UDSC_OK;
}

enum udsc_status udsc_open(const struct udsc_options *options, struct udsc_client **client_ptr,
                           char *error, size_t error_size)
{
	struct udsc_client *client;
	enum udsc_status status;
	bool copied = true;

	if (!check_options(options, error, error_size))
		return UDSC_INVALID;
	client = calloc(1, sizeof(*client));
	if (client == NULL) {
		udsc_set_error(error, error_size, "out of memory");
		return UDSC_INVALID;
	}
	grpc_init();
	client->options = *options;
	apply_defaults(&client->options);
	client->security = options->security;
	copied &= copy_string(client, &client->options.index);
	copied &= copy_string(client, &client->options.shard_map);
	copied &= copy_string(client, &client->options.server);
	copied &= copy_string(client, &client->security.tls_ca);
	copied &= copy_string(client, &client->security.tls_cert);
	copied &= copy_string(client, &client->security.tls_key);
	copied &= copy_string(client, &client->security.tls_server_name);
	copied &= copy_string(client, &client->security.token);
	pthread_rwlock_init(&client->lock, NULL);
	pthread_mutex_init(&client->watch_mutex, NULL);
	pthread_cond_init(&client->watch_wake, NULL);
	if (!copied) {
		udsc_set_error(error, error_size, "out of memory");
		udsc_close(client);
		return UDSC_INVALID;
	}
	pthread_mutex_lock(&client->watch_mutex);
	status = (client->options.shard_map != NULL) ? load_map(client, error, error_size)
	                                             : single_route(client, error, error_size);
	pthread_mutex_unlock(&client->watch_mutex);
	if (status == UDSC_OK) {
		if (pthread_create(&client->watcher, NULL, watcher_main, client) == 0) {
			client->watcher_started = true;
		} else {
			udsc_set_error(error, error_size, "cannot start a thread");
			status = UDSC_INVALID;
		}
	}
	if (status != UDSC_OK) {
		udsc_close(client);
		return status;
	}
	*client_ptr = client;
	return UDSC_OK;
}

enum udsc_status udsc_submit(struct udsc_client *client, struct udsc_request *request)
{
	struct route *route;
	struct endpoint *endpoint;
	unsigned int shard = 0;
	enum udsc_status status;

	if ((request->callback == NULL) || ((unsigned int) request->type > UDSC_DELETE))
		return UDSC_INVALID;
	pthread_rwlock_rdlock(&client->lock);
	route = client->route;
	if (route->shard_count > 1)
		shard = udsc_route(route->seeds, route->shard_count, request->name);
	endpoint = route->shards[shard];
	/* Names are hashes: any of their bytes spreads them over the connections. */
	status = udsc_connection_submit(
	    endpoint->connections[request->name[UDSC_NAME_BYTES - 1] % endpoint->connection_count],
	    request);
	pthread_rwlock_unlock(&client->lock);
	return status;
}

enum udsc_status udsc_reload_shard_map(struct udsc_client *client, char *error, size_t error_size)
{
	enum udsc_status status = UDSC_OK;

	if (client->options.shard_map == NULL)
		return UDSC_OK;
	pthread_mutex_lock(&client->watch_mutex);
	status = load_map(client, error, error_size);
	pthread_mutex_unlock(&client->watch_mutex);
	return status;
}

uint64_t udsc_shard_map_version(struct udsc_client *client)
{
	uint64_t version;

	pthread_rwlock_rdlock(&client->lock);
	version = client->route->version;
	pthread_rwlock_unlock(&client->lock);
	return version;
}

unsigned int udsc_shard_of(struct udsc_client *client, const uint8_t name[UDSC_NAME_BYTES],
                           const char **server, const char **index)
{
	unsigned int shard = 0;

	pthread_rwlock_rdlock(&client->lock);
	if (client->route->shard_count > 1)
		shard = udsc_route(client->route->seeds, client->route->shard_count, name);
	*server = client->route->shards[shard]->server;
	*index = client->route->shards[shard]->index;
	pthread_rwlock_unlock(&client->lock);
	return shard;
}

void udsc_close(struct udsc_client *client)
{
	struct endpoint *endpoint;

	pthread_mutex_lock(&client->watch_mutex);
	client->stopping = true;
	pthread_cond_broadcast(&client->watch_wake);
	pthread_mutex_unlock(&client->watch_mutex);
	if (client->watcher_started)
		pthread_join(client->watcher, NULL);
	while ((endpoint = client->endpoints) != NULL) {
		client->endpoints = endpoint->next;
		close_endpoint(endpoint);
	}
	free(client->route);
	pthread_rwlock_destroy(&client->lock);
	pthread_mutex_destroy(&client->watch_mutex);
	pthread_cond_destroy(&client->watch_wake);
	for (unsigned int i = 0; i < client->string_count; i++)
		free(client->strings[i]);
	free(client);
	grpc_shutdown();
}
