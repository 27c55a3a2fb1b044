// SPDX-License-Identifier: GPL-2.0-only
/*
 * volume-index-bench: the volume index alone, filled the way the engine's zone thread fills it.
 *
 * One zone, the real geometry (0.25 GB dense by default). Names are random 16-byte values from a
 * seeded generator, so two runs see the same names. The fill does what a POST of a new name does
 * in the engine: a search, then a put (an ordinary entry, or a collision entry when the search
 * found another name's entry, which in the engine would also cost a chapter lookup: counted as a
 * false match). Every records_per_chapter names the zone's open chapter advances, so a fill of
 * more than records_per_volume names runs past the window and expires the oldest chapters.
 *
 * Printed, one "key=value" per line:
 *  - ns per search+put for the first and the last WINDOW names of the fill (7M by default);
 *  - ns per search of never-posted names and of recently posted names at the end;
 *  - memory: bytes the index allocated (every per-list array included) and bits per record
 *    held, and the process's RSS growth; the save bound and the size of a real save;
 *  - counters: records, collisions, false matches, discards, rebalances, early flushes,
 *    overflows.
 *
 * Times are the thread's CPU time (steadier than wall time on a shared machine).
 * With --prefetch the loops call uds_prefetch_volume_index_name() for the names 8 (stage 0) and
 * 4 (stage 1) ahead, as a zone thread with a batch of requests would.
 *
 * Usage: volume-index-bench [--names N] [--window N] [--gb G] [--seed S] [--save-file PATH]
 *                           [--prefetch]
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buffered-io.h"
#include "geometry.h"
#include "volume-index.h"

struct options {
	uint64_t names;
	uint64_t window;
	uint32_t memory_mb;
	uint64_t seed;
	const char *save_file;
	bool prefetch;
};

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ULL;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	return x ^ (x >> 31);
}

/* Name @i of the stream @seed: 16 bytes derived from both. */
static void make_name(uint64_t seed, uint64_t i, struct dd_record_name *name)
{
	uint64_t a = splitmix64(seed * 0x100000001B3ULL + 2 * i);
	uint64_t b = splitmix64(seed * 0x100000001B3ULL + 2 * i + 1);

	memcpy(name->name, &a, sizeof(a));
	memcpy(name->name + sizeof(a), &b, sizeof(b));
}

/*
 * The thread's CPU time: the machine is shared, and CPU time is far steadier than wall time
 * when other work competes for the cores (cache effects remain: compare ratios of runs made
 * side by side).
 */
static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

static double wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

static long rss_kb(void)
{
	FILE *file = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (file == NULL)
		return -1;
	while (fgets(line, sizeof(line), file) != NULL) {
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = strtol(line + 6, NULL, 10);
	}
	fclose(file);
	return kb;
}

static void check(int result, const char *what)
{
	if (result != DD_SUCCESS) {
		fprintf(stderr, "%s failed: %d\n", what, result);
		exit(1);
	}
}

struct fill_state {
	struct uds_volume_index *index;
	const struct uds_geometry *geometry;
	uint64_t chapter;
	uint64_t false_matches;
	uint64_t overflows;
	bool prefetch;
};

/* Prefetch for name @i + PREFETCH_AHEAD (stage 0) and @i + PREFETCH_AHEAD / 2 (stage 1). */
enum {
	PREFETCH_AHEAD = 8
};

static void prefetch(struct uds_volume_index *index, uint64_t seed, uint64_t i)
{
	struct dd_record_name name;

	make_name(seed, i + PREFETCH_AHEAD, &name);
	uds_prefetch_volume_index_name(index, &name, 0);
	make_name(seed, i + PREFETCH_AHEAD / 2, &name);
	uds_prefetch_volume_index_name(index, &name, 1);
}

/* Search and post names [first, last) of the fill, advancing the chapter as the engine would. */
static void fill(struct fill_state *state, uint64_t seed, uint64_t first, uint64_t last)
{
	for (uint64_t i = first; i < last; i++) {
		struct uds_volume_index_record record;
		struct dd_record_name name;
		int result;

		if ((i > 0) && ((i % state->geometry->records_per_chapter) == 0)) {
			state->chapter++;
			uds_set_volume_index_zone_open_chapter(state->index, 0, state->chapter);
		}
		if (state->prefetch)
			prefetch(state->index, seed, i);
		make_name(seed, i, &name);
		check(uds_get_volume_index_record(state->index, &name, &record), "search");
		if (record.is_found) {
			if (record.is_collision)
				continue;
			state->false_matches++;
		}
		result = uds_put_volume_index_record(&record, state->chapter);
		if (result == DD_OVERFLOW)
			state->overflows++;
		else
			check(result, "put");
	}
}

/* Time searches of names [first, first + count) of stream @seed; returns ns per search. */
static double time_searches(struct uds_volume_index *index, uint64_t seed, uint64_t first,
                            uint64_t count, bool prefetching, uint64_t *found)
{
	double start = now_ns();

	*found = 0;
	for (uint64_t i = first; i < first + count; i++) {
		struct uds_volume_index_record record;
		struct dd_record_name name;

		if (prefetching)
			prefetch(index, seed, i);
		make_name(seed, i, &name);
		check(uds_get_volume_index_record(index, &name, &record), "search");
		*found += record.is_found;
	}
	return (now_ns() - start) / (double) count;
}

/* Save the zone to @path, report its size, load it into a fresh index and compare. */
static void save_and_load(struct uds_volume_index *index, const struct uds_geometry *geometry,
                          const char *path)
{
	size_t bound = uds_compute_volume_index_save_bytes(geometry, 1);
	size_t region = dd_buffered_stream_size(bound);
	struct dd_buffered_writer *writer;
	struct dd_buffered_reader *reader;
	struct uds_volume_index *copy;
	struct uds_volume_index_stats before;
	struct uds_volume_index_stats after;
	struct stat st;
	double start;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	if (fd < 0) {
		perror(path);
		return;
	}
	start = now_ns();
	check(dd_make_buffered_writer(fd, 0, region, 42, &writer), "writer");
	check(uds_save_volume_index_zone(index, 0, writer), "save");
	check(dd_finish_buffered_writer(writer, false), "finish");
	dd_free_buffered_writer(writer);
	fstat(fd, &st);
	printf("save_seconds=%.2f\n", (now_ns() - start) / 1e9);
	printf("save_bytes=%lld\n", (long long) st.st_size);
	printf("save_bound_bytes=%zu\n", bound);
	printf("save_bound_slack_percent=%.2f\n",
	       100.0 * ((double) bound - (double) st.st_size) / (double) st.st_size);

	check(uds_make_volume_index(geometry, 1, &copy), "make copy");
	start = now_ns();
	check(dd_make_buffered_reader(fd, 0, region, 42, &reader), "reader");
	check(uds_load_volume_index(copy, &reader, 1), "load");
	dd_free_buffered_reader(reader);
	printf("load_seconds=%.2f\n", (now_ns() - start) / 1e9);
	uds_get_volume_index_stats(index, &before);
	uds_get_volume_index_stats(copy, &after);
	printf("load_matches=%s\n", ((before.record_count == after.record_count) &&
	                             (before.collision_count == after.collision_count))
	                                ? "yes"
	                                : "NO");
	uds_free_volume_index(copy);
	close(fd);
	unlink(path);
}

static void parse_options(int argc, char **argv, struct options *options)
{
	static const struct option long_options[] = {
		{ "names", required_argument, NULL, 'n' },
		{ "window", required_argument, NULL, 'w' },
		{ "gb", required_argument, NULL, 'g' },
		{ "seed", required_argument, NULL, 's' },
		{ "save-file", required_argument, NULL, 'f' },
		{ "prefetch", no_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*options = (struct options){
		.names = 70000000,
		.window = 7000000,
		.memory_mb = 256,
		.seed = 1,
		.save_file = NULL,
	};
	while ((c = getopt_long(argc, argv, "n:w:g:s:f:p", long_options, NULL)) != -1) {
		switch (c) {
		case 'n':
			options->names = strtoull(optarg, NULL, 0);
			break;
		case 'w':
			options->window = strtoull(optarg, NULL, 0);
			break;
		case 'g':
			options->memory_mb = (uint32_t) (strtod(optarg, NULL) * 1024);
			break;
		case 's':
			options->seed = strtoull(optarg, NULL, 0);
			break;
		case 'f':
			options->save_file = optarg;
			break;
		case 'p':
			options->prefetch = true;
			break;
		default:
			fprintf(stderr,
			        "usage: %s [--names N] [--window N] [--gb G] [--seed S] "
			        "[--save-file PATH] [--prefetch]\n",
			        argv[0]);
			exit(2);
		}
	}
	if (options->window * 2 > options->names)
		options->window = options->names / 2;
}

int main(int argc, char **argv)
{
	struct uds_volume_index_stats stats;
	struct options options;
	struct uds_geometry geometry;
	struct fill_state state = { 0 };
	uint64_t found;
	double start;
	double wall;
	long rss_before;
	long rss_after;

	parse_options(argc, argv, &options);
	check(uds_make_geometry(options.memory_mb, false, 0, &geometry), "geometry");
	rss_before = rss_kb();
	check(uds_make_volume_index(&geometry, 1, &state.index), "make");
	state.geometry = &geometry;
	state.prefetch = options.prefetch;
	uds_set_volume_index_open_chapter(state.index, 0);
	printf("records_per_chapter=%u\nchapters=%u\nnames=%" PRIu64 "\n",
	       geometry.records_per_chapter, geometry.chapters_per_volume, options.names);

	wall = wall_ns();
	start = now_ns();
	fill(&state, options.seed, 0, options.window);
	printf("ns_per_get_put_first=%.1f\n", (now_ns() - start) / (double) options.window);
	fill(&state, options.seed, options.window, options.names - options.window);
	start = now_ns();
	fill(&state, options.seed, options.names - options.window, options.names);
	printf("ns_per_get_put_last=%.1f\n", (now_ns() - start) / (double) options.window);
	printf("fill_wall_seconds=%.1f\n", (wall_ns() - wall) / 1e9);
	rss_after = rss_kb();

	printf("ns_per_get_new=%.1f\n",
	       time_searches(state.index, options.seed + 1000, 0, options.window / 7,
	                     options.prefetch, &found));
	printf("new_found_fraction=%.6f\n", (double) found / (double) (options.window / 7));
	printf("ns_per_get_recent=%.1f\n",
	       time_searches(state.index, options.seed, options.names - options.window / 7,
	                     options.window / 7, options.prefetch, &found));

	uds_get_volume_index_stats(state.index, &stats);
	printf("memory_allocated=%zu\n", stats.memory_allocated);
	printf("memory_computed=%zu\n", uds_compute_volume_index_memory(&geometry));
	printf("records=%" PRIu64 "\n", stats.record_count);
	printf("bits_per_record=%.3f\n",
	       (double) stats.memory_allocated * 8 / (double) stats.record_count);
	printf("bytes_per_record_full_window=%.3f\n",
	       (double) stats.memory_allocated / (double) geometry.records_per_volume);
	printf("rss_growth_mib=%.1f\n", (double) (rss_after - rss_before) / 1024);
	printf("lists=%u\n", stats.list_count);
	printf("used_percent_of_capacity=%.2f\n",
	       100.0 * (double) stats.used_bits / (double) stats.capacity_bits);
	printf("collisions=%" PRIu64 "\n", stats.collision_count);
	printf("false_matches=%" PRIu64 "\n", state.false_matches);
	printf("false_match_rate=%.6f\n", (double) state.false_matches / (double) options.names);
	printf("discards=%" PRIu64 "\n", stats.discard_count);
	printf("rebalances=%" PRIu64 "\n", stats.rebalance_count);
	printf("rebalance_ms=%.1f\n", (double) stats.rebalance_time / 1e6);
	printf("early_flushes=%" PRIu64 "\n", stats.early_flushes);
	printf("overflows=%" PRIu64 "\n", stats.overflow_count);
	if (options.save_file != NULL)
		save_and_load(state.index, &geometry, options.save_file);
	uds_free_volume_index(state.index);
	return 0;
}
