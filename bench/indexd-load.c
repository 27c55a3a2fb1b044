// SPDX-License-Identifier: GPL-2.0-only
/*
 * indexd-load: a load generator for uds-indexd on libudsclient, and the same workload on the
 * index engine in-process, so that the two rates can be compared in one run.
 *
 *   indexd-load (--server=ADDRESS | --shard-map=FILE | --in-process=PATH) --index=NAME
 *               [--create] [--type=post|query] [--requests=N | --duration=SECONDS]
 *               [--depth=N] [--connections=N] [--unary] [--batch-max=N] [--batch-delay-us=N]
 *               [--zones=N] [--seed=N] [--token=T] [--tls-ca=F --tls-cert=F --tls-key=F]
 *
 * The workload is a stream of distinct random names (XXH3-128 of a seed and a counter): POST
 * adds them, QUERY looks up the names a POST run with the same seed added. --depth requests
 * are kept outstanding (1: one at a time, the round-trip latency). --create makes the index
 * first (256 MB, --zones zones; with --server, through the admin API). It prints one line:
 *
 *   mode=stream connections=1 depth=4096 requests=2000000 seconds=1.52 names_per_s=1315000
 *   p50_us=1510.2 p99_us=2890.1 found=0 errors=0
 *
 * Latencies are measured from submit to callback on the generator's clock. The completion path
 * takes no lock (a slot's busy flag, and a futex wake only when the submitter sleeps on that
 * slot), so that the in-process run measures the engine rather than the harness.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "futex.h"
#include "uds.h"
#include "udsclient.h"

struct settings {
	const char *server;
	const char *shard_map;
	const char *in_process;
	const char *index;
	bool create;
	bool query;
	uint64_t requests;
	double duration;
	unsigned int depth;
	unsigned int zones;
	uint64_t seed;
	struct udsc_options client;
};

/* One request slot; either kind of request, by mode. */
struct slot {
	union {
		struct udsc_request remote;
		struct uds_request local;
	};
	struct load *load;
	uint64_t started_ns;
	uint64_t latency_ns;
	unsigned int number;
	/* 1 while the request is out; cleared by its completion. */
	atomic_uint busy;
};

struct load {
	struct settings *settings;
	struct udsc_client *client;
	struct uds_index *index;
	struct slot *slots;
	/* The slot (number + 1) the submitter sleeps on, or 0. */
	atomic_uint waiter;
	uint64_t *latencies;
	uint64_t latency_count;
	uint64_t latency_room;
	atomic_uint_fast64_t completed;
	atomic_uint_fast64_t found;
	atomic_uint_fast64_t errors;
};

static uint64_t now_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t) now.tv_sec * 1000000000ULL + (uint64_t) now.tv_nsec;
}

static void make_name(uint64_t seed, uint64_t number, uint8_t *name)
{
	uint64_t input[2] = { seed, number };
	XXH128_canonical_t canonical;

	XXH128_canonicalFromHash(&canonical, XXH3_128bits(input, sizeof(input)));
	memcpy(name, canonical.digest, 16);
}

/* A request completed (on a client or zone thread): record it and free its slot. */
static void slot_done(struct slot *slot, bool ok, bool found)
{
	struct load *load = slot->load;

	slot->latency_ns = now_ns() - slot->started_ns;
	atomic_fetch_add_explicit(&load->completed, 1, memory_order_relaxed);
	if (found)
		atomic_fetch_add_explicit(&load->found, 1, memory_order_relaxed);
	if (!ok)
		atomic_fetch_add_explicit(&load->errors, 1, memory_order_relaxed);
	atomic_store(&slot->busy, 0);
	if (atomic_load(&load->waiter) == slot->number + 1)
		dd_futex_wake(&slot->busy);
}

static void remote_done(struct udsc_request *request)
{
	slot_done((struct slot *) request, request->status == UDSC_OK, request->found);
}

static void local_done(struct uds_request *request)
{
	slot_done((struct slot *) request, request->status == DD_SUCCESS, request->found);
}

/* Wait until @slot's request has completed, then record its latency. */
static void reclaim(struct load *load, struct slot *slot)
{
	for (int spins = 0; atomic_load(&slot->busy) != 0; spins++) {
		if (spins < 200)
			continue;
		atomic_store(&load->waiter, slot->number + 1);
		if (atomic_load(&slot->busy) != 0)
			dd_futex_wait(&slot->busy, 1);
		atomic_store(&load->waiter, 0);
	}
	if ((slot->started_ns != 0) && (load->latency_count < load->latency_room))
		load->latencies[load->latency_count++] = slot->latency_ns;
	slot->started_ns = 0;
}

/* Slots are used round robin: the next one is free once its last request completed. */
static struct slot *take_slot(struct load *load, uint64_t number)
{
	struct slot *slot = &load->slots[number % load->settings->depth];

	reclaim(load, slot);
	atomic_store(&slot->busy, 1);
	return slot;
}

static void submit(struct load *load, uint64_t number)
{
	struct slot *slot = take_slot(load, number);
	bool query = load->settings->query;

	slot->started_ns = now_ns();
	if (load->index != NULL) {
		struct uds_request *request = &slot->local;

		memset(request, 0, sizeof(*request));
		request->type = query ? UDS_QUERY_NO_UPDATE : UDS_POST;
		make_name(load->settings->seed, number, request->record_name.name);
		memcpy(request->new_data.data, &number, sizeof(number));
		request->callback = local_done;
		request->index = load->index;
		if (uds_launch_request(request) != DD_SUCCESS)
			local_done(request);
	} else {
		struct udsc_request *request = &slot->remote;

		memset(request, 0, sizeof(*request));
		request->type = query ? UDSC_QUERY_NO_UPDATE : UDSC_POST;
		make_name(load->settings->seed, number, request->name);
		memcpy(request->new_data, &number, sizeof(number));
		request->callback = remote_done;
		request->status = udsc_submit(load->client, request);
		if (request->status != UDSC_OK)
			remote_done(request);
	}
}

static void wait_for_all(struct load *load)
{
	for (unsigned int i = 0; i < load->settings->depth; i++)
		reclaim(load, &load->slots[i]);
}

static int compare(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *) a;
	uint64_t y = *(const uint64_t *) b;

	return (x > y) - (x < y);
}

static double percentile_us(struct load *load, double fraction)
{
	if (load->latency_count == 0)
		return 0;
	return (double)
	           load->latencies[(uint64_t) (fraction * (double) (load->latency_count - 1))] /
	       1000.0;
}

static void __attribute__((noreturn)) usage(void)
{
	fprintf(stderr,
	        "usage: indexd-load (--server=ADDRESS | --shard-map=FILE | --in-process=PATH)\n"
	        "       --index=NAME [--create] [--type=post|query]\n"
	        "       [--requests=N | --duration=SECONDS] [--depth=N] [--connections=N]\n"
	        "       [--unary] [--batch-max=N] [--batch-delay-us=N] [--zones=N] [--seed=N]\n"
	        "       [--token=T] [--tls-ca=F] [--tls-cert=F] [--tls-key=F]\n");
	exit(2);
}

static void parse(int argc, char **argv, struct settings *s)
{
	static const struct option options[] = {
		{ "server", required_argument, NULL, 's' },
		{ "shard-map", required_argument, NULL, 'm' },
		{ "in-process", required_argument, NULL, 'i' },
		{ "index", required_argument, NULL, 'x' },
		{ "create", no_argument, NULL, 'c' },
		{ "type", required_argument, NULL, 't' },
		{ "requests", required_argument, NULL, 'n' },
		{ "duration", required_argument, NULL, 'd' },
		{ "depth", required_argument, NULL, 'D' },
		{ "connections", required_argument, NULL, 'C' },
		{ "unary", no_argument, NULL, 'u' },
		{ "batch-max", required_argument, NULL, 'b' },
		{ "batch-delay-us", required_argument, NULL, 'B' },
		{ "zones", required_argument, NULL, 'z' },
		{ "seed", required_argument, NULL, 'S' },
		{ "token", required_argument, NULL, 'T' },
		{ "tls-ca", required_argument, NULL, 'a' },
		{ "tls-cert", required_argument, NULL, 'e' },
		{ "tls-key", required_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	int option;

	while ((option = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (option) {
		case 's':
			s->server = optarg;
			break;
		case 'm':
			s->shard_map = optarg;
			break;
		case 'i':
			s->in_process = optarg;
			break;
		case 'x':
			s->index = optarg;
			break;
		case 'c':
			s->create = true;
			break;
		case 't':
			s->query = (strcmp(optarg, "query") == 0);
			break;
		case 'n':
			s->requests = strtoull(optarg, NULL, 10);
			break;
		case 'd':
			s->duration = strtod(optarg, NULL);
			break;
		case 'D':
			s->depth = (unsigned int) strtoul(optarg, NULL, 10);
			break;
		case 'C':
			s->client.connections = (unsigned int) strtoul(optarg, NULL, 10);
			break;
		case 'u':
			s->client.unary = true;
			break;
		case 'b':
			s->client.batch_max = (unsigned int) strtoul(optarg, NULL, 10);
			break;
		case 'B':
			s->client.batch_delay_us = (unsigned int) strtoul(optarg, NULL, 10);
			break;
		case 'z':
			s->zones = (unsigned int) strtoul(optarg, NULL, 10);
			break;
		case 'S':
			s->seed = strtoull(optarg, NULL, 10);
			break;
		case 'T':
			s->client.security.token = optarg;
			break;
		case 'a':
			s->client.security.tls_ca = optarg;
			break;
		case 'e':
			s->client.security.tls_cert = optarg;
			break;
		case 'k':
			s->client.security.tls_key = optarg;
			break;
		default:
			usage();
		}
	}
	if ((s->index == NULL) || (s->depth == 0) ||
	    ((s->server != NULL) + (s->shard_map != NULL) + (s->in_process != NULL) != 1) ||
	    ((s->requests == 0) && (s->duration <= 0)))
		usage();
}

static void create_remote_index(struct settings *s)
{
	struct udsc_admin *admin;
	struct udsc_error error = { 0 };

	if ((s->server == NULL) ||
	    (udsc_admin_open(s->server, &s->client.security, 60000, &admin, &error) != UDSC_OK)) {
		fprintf(stderr, "indexd-load: --create needs --server: %s\n", error.message);
		exit(1);
	}
	if (udsc_admin_create(admin, s->index, 256, false, s->zones, NULL, NULL, &error) !=
	    UDSC_OK) {
		fprintf(stderr, "indexd-load: cannot create %s: %s\n", s->index, error.message);
		exit(1);
	}
	udsc_admin_close(admin);
}

static void open_target(struct load *load)
{
	struct settings *s = load->settings;
	char error[256];

	if (s->in_process != NULL) {
		struct uds_parameters parameters = {
			.path = s->in_process,
			.memory_mb = 256,
			.zone_count = s->zones,
		};

		if (uds_open_index(s->create ? UDS_CREATE : UDS_LOAD, &parameters, &load->index) !=
		    DD_SUCCESS) {
			fprintf(stderr, "indexd-load: cannot open %s\n", s->in_process);
			exit(1);
		}
		return;
	}
	if (s->create)
		create_remote_index(s);
	s->client.index = s->index;
	s->client.server = s->server;
	s->client.shard_map = s->shard_map;
	if (udsc_open(&s->client, &load->client, error, sizeof(error)) != UDSC_OK) {
		fprintf(stderr, "indexd-load: %s\n", error);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	struct settings settings = { .depth = 1, .zones = 1, .seed = 1 };
	struct load load = { .settings = &settings };
	uint64_t start;
	uint64_t stop_at;
	uint64_t number = 0;
	double seconds;

	parse(argc, argv, &settings);
	open_target(&load);
	load.slots = calloc(settings.depth, sizeof(*load.slots));
	load.latency_room = (settings.requests > 0) ? settings.requests : 20000000;
	load.latencies = malloc(load.latency_room * sizeof(uint64_t));
	if ((load.slots == NULL) || (load.latencies == NULL))
		return 1;
	for (unsigned int i = 0; i < settings.depth; i++) {
		load.slots[i].load = &load;
		load.slots[i].number = i;
	}
	start = now_ns();
	stop_at =
	    (settings.duration > 0) ? start + (uint64_t) (settings.duration * 1e9) : UINT64_MAX;
	while (((settings.requests == 0) || (number < settings.requests)) &&
	       (((number & 1023) != 0) || (now_ns() < stop_at)))
		submit(&load, number++);
	wait_for_all(&load);
	seconds = (double) (now_ns() - start) / 1e9;
	qsort(load.latencies, load.latency_count, sizeof(uint64_t), compare);
	printf("mode=%s connections=%u depth=%u requests=%llu seconds=%.3f names_per_s=%.0f "
	       "p50_us=%.1f p99_us=%.1f found=%llu errors=%llu\n",
	       (load.index != NULL)    ? "in-process"
	       : settings.client.unary ? "unary"
	                               : "stream",
	       (load.index != NULL) ? 0
	                            : (settings.client.connections ?: udsc_default_connections()),
	       settings.depth, (unsigned long long) load.completed, seconds,
	       (double) load.completed / seconds, percentile_us(&load, 0.5),
	       percentile_us(&load, 0.99), (unsigned long long) load.found,
	       (unsigned long long) load.errors);
	if (load.index != NULL)
		uds_close_index(load.index);
	else
		udsc_close(load.client);
	free(load.slots);
	free(load.latencies);
	return (load.errors > 0) ? 1 : 0;
}
