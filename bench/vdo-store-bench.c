// SPDX-License-Identifier: GPL-2.0-only
/*
 * vdo-store-bench: the data store's throughput on a file, against the file itself.
 *
 *   vdo-store-bench [--path=FILE] [--size=MIB] [--blocks=N] [--depth=N] [--zones=N]
 *                   [--phases=LIST] [--seed=N] [--slab-mib=N] [--ram]
 *                   [--index=none|embedded] [--dedupe=PERCENT]
 *
 * Dedupe. --index=embedded formats the volume with its embedded index (256 MB, in the volume's
 * region; with --ram in FILE.index) and waits for it to be online. --dedupe=P makes P% of the
 * blocks written repeat the data of an earlier write (like fio's dedupe_percentage), the rest
 * new data. The generator knows what each block holds, so each write phase also prints the
 * ideal saving of the volume's live data, 1 - distinct / mapped blocks, next to the saving the
 * store achieved, 1 - data blocks used / logical blocks used, and the store's dedupe counters:
 *
 *   dedupe saving=0.498 ideal=0.500 of_ideal=0.996 advice_valid=... stale=... timeouts=...
 *     data_matches=... collisions=...
 *
 * It formats a volume on FILE (default vdo-store-bench.img, 1024 MiB), opens it, and runs
 * phases of 4 KiB requests, --depth of them in flight: seq-write, seq-read, rand-write (over
 * blocks already written), rand-read. Each write phase ends with a flush, which is timed. The
 * same phase then runs on the raw file, through the same io_uring provider at the same depth,
 * over a region of the file after the volume (write phases end with fdatasync), so the ratio
 * compares the store with the storage under it in one run. Data is random (no zero
 * blocks). Each phase prints one line:
 *
 *   phase=seq-write blocks=65536 seconds=1.234 mib_per_s=207.4 raw_mib_per_s=412.0 ratio=0.50
 *   cpu journal=12% logical=30% physical=18% summary=0% ack=3% submit=20%
 *   journal_entries_per_write=35.2 map_hit_rate=0.99
 *
 * With --ram the volume lives in memory (the RAM provider the tests use) instead of FILE, so
 * that no storage latency hides which of the store's threads is the ceiling.
 *
 * "cpu" is where the store's time went: the CPU time of each of its threads during the phase,
 * as a share of the phase's wall time (a thread at 100% is a ceiling). The journal's batching
 * (entries per journal write) and the block map cache's hit rate come from the store's stats.
 *
 * The "recovery" phase, run last when listed, times the open after a crash:
 *
 *   phase=recovery writes_before_crash=65536 entries_replayed=9000 slabs=15
 *     slabs_recovered_before_online=0 online_seconds=0.051 complete_seconds=0.070
 */
#include <dirent.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "block-device.h"
#include "dedupe-index.h"
#include "errors.h"
#include "format.h"
#include "memory-alloc.h"
#include "uds.h"
#include "vdo-store.h"

struct settings {
	const char *path;
	uint64_t size_mib;
	uint64_t blocks;
	unsigned int depth;
	unsigned int zones;
	const char *phases;
	uint64_t seed;
	uint64_t slab_mib;
	bool ram;
	bool embedded_index;
	unsigned int dedupe_percent;
};

/* What the generator wrote: the content of each block (0: never written), and contents made. */
struct contents {
	uint64_t *of_block;
	uint64_t made;
};

static struct contents contents;

/* Requests in flight, completed by callbacks (store) or io done (raw). */
struct window {
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	unsigned int outstanding;
	unsigned int errors;
};

struct slot {
	struct vdo_request request;
	struct vdo_io io;
	uint8_t *buffer;
	struct window *window;
	bool busy;
};

static double now_seconds(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double) now.tv_sec + (double) now.tv_nsec / 1e9;
}

static uint64_t next_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void finish_slot(struct slot *slot, int result)
{
	struct window *window = slot->window;

	pthread_mutex_lock(&window->mutex);
	window->errors += (result != DD_SUCCESS);
	slot->busy = false;
	window->outstanding--;
	pthread_cond_broadcast(&window->cond);
	pthread_mutex_unlock(&window->mutex);
}

static void request_done(struct vdo_request *request)
{
	finish_slot(request->context, request->result);
}

static void io_done(struct vdo_io *io)
{
	finish_slot(io->context, io->result);
}

/* Wait for a free slot (round robin) and mark it busy. */
static struct slot *take_slot(struct slot *slots, unsigned int depth, uint64_t n)
{
	struct slot *slot = &slots[n % depth];
	struct window *window = slot->window;

	pthread_mutex_lock(&window->mutex);
	while (slot->busy)
		pthread_cond_wait(&window->cond, &window->mutex);
	slot->busy = true;
	window->outstanding++;
	pthread_mutex_unlock(&window->mutex);
	return slot;
}

static void wait_all(struct window *window)
{
	pthread_mutex_lock(&window->mutex);
	while (window->outstanding > 0)
		pthread_cond_wait(&window->cond, &window->mutex);
	pthread_mutex_unlock(&window->mutex);
}

/* Per-thread CPU, from /proc: each thread's id, name and CPU seconds. */
struct cpu_sample {
	long ids[64];
	char names[64][16];
	double seconds[64];
	unsigned int count;
};

static void sample_cpu(struct cpu_sample *sample)
{
	DIR *tasks = opendir("/proc/self/task");
	struct dirent *entry;
	long ticks = sysconf(_SC_CLK_TCK);

	sample->count = 0;
	while ((tasks != NULL) && ((entry = readdir(tasks)) != NULL) && (sample->count < 64)) {
		char path[64];
		char line[512];
		FILE *file;
		unsigned long utime = 0;
		unsigned long stime = 0;
		char *close_paren;

		if (entry->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%.20s/stat", entry->d_name);
		file = fopen(path, "r");
		if (file == NULL)
			continue;
		if (fgets(line, sizeof(line), file) == NULL) {
			fclose(file);
			continue;
		}
		fclose(file);
		close_paren = strrchr(line, ')');
		if ((close_paren == NULL) ||
		    (sscanf(close_paren + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		            &utime, &stime) != 2))
			continue;
		*close_paren = '\0';
		snprintf(sample->names[sample->count], sizeof(sample->names[0]), "%s",
		         strchr(line, '(') + 1);
		sample->ids[sample->count] = strtol(entry->d_name, NULL, 10);
		sample->seconds[sample->count++] = (double) (utime + stime) / (double) ticks;
	}
	if (tasks != NULL)
		closedir(tasks);
}

/* CPU of the threads whose names start with @prefix, between two samples. */
static double cpu_of(const struct cpu_sample *before, const struct cpu_sample *after,
                     const char *prefix)
{
	double total = 0;

	for (unsigned int a = 0; a < after->count; a++) {
		if (strncmp(after->names[a], prefix, strlen(prefix)) != 0)
			continue;
		total += after->seconds[a];
		for (unsigned int b = 0; b < before->count; b++) {
			if (before->ids[b] == after->ids[a])
				total -= before->seconds[b];
		}
	}
	return total;
}

enum phase_kind {
	SEQ_WRITE,
	SEQ_READ,
	RAND_WRITE,
	RAND_READ
};

/* Fill a 4 KiB block with random data (never a zero block). */
static void fill_random(uint8_t *block, uint64_t *random)
{
	for (int i = 0; i < 4096; i += 8)
		memcpy(block + i, &(uint64_t){ next_random(random) }, 8);
}

/*
 * Fill the block written to @lbn: with --dedupe=P, P% of the time the data of a content made
 * before, otherwise a new one; contents are numbered from 1 and their data follows from it.
 */
static void fill_for_write(uint8_t *block, uint64_t lbn, uint64_t *random,
                           const struct settings *settings)
{
	uint64_t content;
	uint64_t seed;

	if ((settings->dedupe_percent == 0) && (contents.of_block == NULL)) {
		fill_random(block, random);
		return;
	}
	if ((contents.made > 0) && (next_random(random) % 100 < settings->dedupe_percent))
		content = 1 + next_random(random) % contents.made;
	else
		content = ++contents.made;
	contents.of_block[lbn] = content;
	seed = content * 0x9e3779b97f4a7c15ULL;
	fill_random(block, &seed);
}

/* 1 - distinct contents / blocks holding data: the most a perfect dedupe saves now. */
static double ideal_saving(uint64_t blocks)
{
	uint8_t *seen = calloc(contents.made + 1, 1);
	uint64_t mapped = 0;
	uint64_t distinct = 0;

	for (uint64_t b = 0; b < blocks; b++) {
		uint64_t content = contents.of_block[b];

		if (content == 0)
			continue;
		mapped++;
		if (!seen[content]) {
			seen[content] = 1;
			distinct++;
		}
	}
	free(seen);
	return (mapped == 0) ? 0.0 : 1.0 - (double) distinct / (double) mapped;
}

static bool is_write(enum phase_kind kind)
{
	return (kind == SEQ_WRITE) || (kind == RAND_WRITE);
}

static uint64_t block_number(enum phase_kind kind, uint64_t n, uint64_t blocks, uint64_t *random)
{
	return ((kind == SEQ_WRITE) || (kind == SEQ_READ)) ? n : next_random(random) % blocks;
}

/* Run one phase on the store; return its seconds. */
static double run_store_phase(struct vdo_store *store, enum phase_kind kind, struct slot *slots,
                              const struct settings *settings)
{
	struct window *window = slots[0].window;
	uint64_t random = settings->seed + (uint64_t) kind;
	double start = now_seconds();

	for (uint64_t n = 0; n < settings->blocks; n++) {
		struct slot *slot = take_slot(slots, settings->depth, n);
		uint64_t lbn = block_number(kind, n, settings->blocks, &random);

		if (is_write(kind))
			fill_for_write(slot->buffer, lbn, &random, settings);
		slot->request = (struct vdo_request){
			.operation = is_write(kind) ? VDO_REQUEST_WRITE : VDO_REQUEST_READ,
			.offset = lbn * 4096,
			.length = 4096,
			.buffer = slot->buffer,
			.callback = request_done,
			.context = slot,
		};
		vdo_store_submit(store, &slot->request);
	}
	wait_all(window);
	if (is_write(kind)) {
		struct slot *slot = take_slot(slots, settings->depth, 0);

		slot->request = (struct vdo_request){ .operation = VDO_REQUEST_FLUSH,
			                              .callback = request_done,
			                              .context = slot };
		vdo_store_submit(store, &slot->request);
		wait_all(window);
	}
	return now_seconds() - start;
}

/* The same phase on the raw device, past @first_block. */
static double run_raw_phase(struct block_device *device, uint64_t first_block, enum phase_kind kind,
                            struct slot *slots, const struct settings *settings)
{
	struct window *window = slots[0].window;
	uint64_t random = settings->seed + (uint64_t) kind;
	double start = now_seconds();

	for (uint64_t n = 0; n < settings->blocks; n++) {
		struct slot *slot = take_slot(slots, settings->depth, n);

		if (is_write(kind))
			fill_random(slot->buffer, &random);
		slot->io = (struct vdo_io){
			.operation = is_write(kind) ? VDO_IO_WRITE : VDO_IO_READ,
			.block = first_block + block_number(kind, n, settings->blocks, &random),
			.count = 1,
			.buffer = slot->buffer,
			.done = io_done,
			.context = slot,
		};
		vdo_submit_io(device, &slot->io);
	}
	wait_all(window);
	if (is_write(kind) && (vdo_sync_io(device, VDO_IO_FLUSH, 0, 0, 0, NULL) != DD_SUCCESS))
		window->errors++;
	return now_seconds() - start;
}

static void print_dedupe(const struct settings *settings, const struct vdo_store_stats *before,
                         const struct vdo_store_stats *after)
{
	double saving =
	    (after->logical_blocks_used == 0)
	        ? 0.0
	        : 1.0 - (double) after->data_blocks_used / (double) after->logical_blocks_used;
	double ideal = ideal_saving(settings->blocks);

	printf(
	    "  dedupe saving=%.3f ideal=%.3f of_ideal=%.3f advice_valid=%llu stale=%llu "
	    "timeouts=%llu data_matches=%llu collisions=%llu index=%s\n",
	    saving, ideal, (ideal > 0) ? saving / ideal : 1.0,
	    (unsigned long long) (after->dedupe_advice_valid - before->dedupe_advice_valid),
	    (unsigned long long) (after->dedupe_advice_stale - before->dedupe_advice_stale),
	    (unsigned long long) (after->dedupe_advice_timeouts - before->dedupe_advice_timeouts),
	    (unsigned long long) (after->concurrent_data_matches - before->concurrent_data_matches),
	    (unsigned long long) (after->concurrent_hash_collisions -
	                          before->concurrent_hash_collisions),
	    after->index_state);
}

static void print_phase(const char *name, const struct settings *settings, double seconds,
                        double raw_seconds, const struct cpu_sample *before,
                        const struct cpu_sample *after, const struct vdo_store_stats *stats_before,
                        const struct vdo_store_stats *stats_after)
{
	double mib = (double) settings->blocks * 4096 / 1048576.0;
	uint64_t entries = stats_after->journal_entries - stats_before->journal_entries;
	uint64_t writes = stats_after->journal_writes - stats_before->journal_writes;
	uint64_t hits = stats_after->block_map_hits - stats_before->block_map_hits;
	uint64_t misses = stats_after->block_map_misses - stats_before->block_map_misses;

	printf("phase=%s blocks=%llu seconds=%.3f mib_per_s=%.1f raw_mib_per_s=%.1f ratio=%.2f\n",
	       name, (unsigned long long) settings->blocks, seconds, mib / seconds,
	       mib / raw_seconds, raw_seconds / seconds);
	printf("  cpu journal=%.0f%% logical=%.0f%% physical=%.0f%% summary=%.0f%% ack=%.0f%% "
	       "io=%.0f%% submit=%.0f%%\n",
	       100 * cpu_of(before, after, "vdojournal") / seconds,
	       100 * cpu_of(before, after, "vdolog") / seconds,
	       100 * cpu_of(before, after, "vdophys") / seconds,
	       100 * cpu_of(before, after, "vdosummary") / seconds,
	       100 * cpu_of(before, after, "vdoack") / seconds,
	       100 * cpu_of(before, after, "filedev") / seconds,
	       100 * cpu_of(before, after, "vdo-store-bench") / seconds);
	printf("  journal_entries_per_write=%.1f map_hit_rate=%.3f\n",
	       (writes == 0) ? 0.0 : (double) entries / (double) writes,
	       (hits + misses == 0) ? 0.0 : (double) hits / (double) (hits + misses));
	if (stats_after->dedupe_enabled)
		printf("  cpu hash=%.0f%% hashing=%.0f%%\n",
		       100 * cpu_of(before, after, "vdohash") / seconds,
		       100 * cpu_of(before, after, "vdocpu") / seconds);
	if (stats_after->dedupe_enabled || (contents.of_block != NULL))
		print_dedupe(settings, stats_before, stats_after);
	fflush(stdout);
}

/*
 * The recovery phase: a child process opens the volume, overwrites random blocks, flushes and
 * dies without closing (a crash that loses nothing flushed); then the volume is opened again,
 * which recovers it. Times: until the volume is open for requests, and until every slab it
 * left to recover in the background is done.
 */
static bool crash_after_writes(const struct settings *settings, uint64_t device_blocks,
                               const struct vdo_store_config *config, struct slot *slots)
{
	pid_t child = fork();
	int status = 0;

	if (child == 0) {
		struct block_device *device;
		struct vdo_store *store;

		if ((vdo_open_file_device(settings->path, device_blocks, &device) != DD_SUCCESS) ||
		    (vdo_store_open(device, config, &store) != DD_SUCCESS))
			_exit(1);
		run_store_phase(store, RAND_WRITE, slots, settings);
		_exit((slots[0].window->errors == 0) ? 0 : 1);
	}
	return (child > 0) && (waitpid(child, &status, 0) == child) && WIFEXITED(status) &&
	       (WEXITSTATUS(status) == 0);
}

static int run_recovery_phase(const struct settings *settings, uint64_t device_blocks,
                              const struct vdo_store_config *config, struct slot *slots)
{
	struct block_device *device;
	struct vdo_store_stats stats;
	struct vdo_store *store;
	double start;
	double online;
	double done;

	if (!crash_after_writes(settings, device_blocks, config, slots)) {
		fprintf(stderr, "vdo-store-bench: the writer before the crash failed\n");
		return 1;
	}
	if (vdo_open_file_device(settings->path, device_blocks, &device) != DD_SUCCESS)
		return 1;
	start = now_seconds();
	if (vdo_store_open(device, config, &store) != DD_SUCCESS)
		return 1;
	online = now_seconds() - start;
	for (;;) {
		vdo_store_get_stats(store, &stats);
		if (stats.slabs_recovering == 0)
			break;
		usleep(1000);
	}
	done = now_seconds() - start;
	printf("phase=recovery writes_before_crash=%llu entries_replayed=%llu slabs=%llu "
	       "slabs_recovered_before_online=%llu online_seconds=%.3f complete_seconds=%.3f\n",
	       (unsigned long long) settings->blocks, (unsigned long long) stats.recovery_entries,
	       (unsigned long long) stats.slab_count,
	       (unsigned long long) stats.slabs_recovered_before_online, online, done);
	fflush(stdout);
	if (vdo_store_close(store) != DD_SUCCESS)
		return 1;
	vdo_close_device(device);
	return 0;
}

/* The blocks of the bench's index: 256 MB dense. */
static uint64_t index_blocks(void)
{
	struct uds_parameters shape = { .memory_mb = 256 };
	uint64_t bytes = 0;

	if (uds_compute_index_size(&shape, &bytes) != DD_SUCCESS)
		exit(1);
	return (bytes + 4095) / 4096;
}

/* With --ram, the embedded index lives in a file of its own beside FILE. */
static const struct vdo_index_config *ram_index_config(const struct settings *settings,
                                                       struct vdo_index_config *config)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s.index", settings->path);
	unlink(path);
	*config = (struct vdo_index_config){
		.kind = VDO_INDEX_EMBEDDED, .path = path, .memory_mb = 256, .create = true
	};
	return config;
}

/* Wait until the store's index (if any) answers; false if it cannot. */
static bool wait_for_index(struct vdo_store *store)
{
	struct vdo_store_stats stats;

	for (;;) {
		vdo_store_get_stats(store, &stats);
		if (!stats.dedupe_enabled || (strcmp(stats.index_state, "online") == 0))
			return true;
		if (strcmp(stats.index_state, "error") == 0) {
			fprintf(stderr, "vdo-store-bench: the dedupe index did not open\n");
			return false;
		}
		usleep(10000);
	}
}

static void __attribute__((noreturn)) usage(void)
{
	fprintf(stderr,
	        "usage: vdo-store-bench [--path=FILE] [--size=MIB] [--blocks=N] "
	        "[--depth=N] [--zones=N] [--phases=LIST] [--seed=N] [--slab-mib=N] [--ram]\n"
	        "                       [--index=none|embedded] [--dedupe=PERCENT]\n");
	exit(2);
}

static void parse(int argc, char **argv, struct settings *settings)
{
	static const struct option options[] = {
		{ "path", required_argument, NULL, 'p' },
		{ "size", required_argument, NULL, 's' },
		{ "blocks", required_argument, NULL, 'b' },
		{ "depth", required_argument, NULL, 'd' },
		{ "zones", required_argument, NULL, 'z' },
		{ "phases", required_argument, NULL, 'P' },
		{ "seed", required_argument, NULL, 'S' },
		{ "slab-mib", required_argument, NULL, 'M' },
		{ "ram", no_argument, NULL, 'R' },
		{ "index", required_argument, NULL, 'i' },
		{ "dedupe", required_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	int option;

	while ((option = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (option) {
		case 'p':
			settings->path = optarg;
			break;
		case 's':
			settings->size_mib = strtoull(optarg, NULL, 10);
			break;
		case 'b':
			settings->blocks = strtoull(optarg, NULL, 10);
			break;
		case 'd':
			settings->depth = (unsigned int) strtoul(optarg, NULL, 10);
			break;
		case 'z':
			settings->zones = (unsigned int) strtoul(optarg, NULL, 10);
			break;
		case 'P':
			settings->phases = optarg;
			break;
		case 'S':
			settings->seed = strtoull(optarg, NULL, 10);
			break;
		case 'M':
			settings->slab_mib = strtoull(optarg, NULL, 10);
			break;
		case 'R':
			settings->ram = true;
			break;
		case 'i':
			if (strcmp(optarg, "embedded") == 0)
				settings->embedded_index = true;
			else if (strcmp(optarg, "none") != 0)
				usage();
			break;
		case 'D':
			settings->dedupe_percent = (unsigned int) strtoul(optarg, NULL, 10);
			break;
		default:
			usage();
		}
	}
	if ((optind != argc) || (settings->depth == 0) || (settings->depth > 1024) ||
	    (settings->dedupe_percent > 100) || (settings->blocks == 0) || (settings->zones == 0) ||
	    (settings->ram && (strstr(settings->phases, "recovery") != NULL)))
		usage();
}

int main(int argc, char **argv)
{
	static const char *const names[] = { "seq-write", "seq-read", "rand-write", "rand-read" };
	struct settings settings = { .path = "vdo-store-bench.img",
		                     .size_mib = 1024,
		                     .blocks = 65536,
		                     .depth = 64,
		                     .zones = 1,
		                     .phases = "seq-write,seq-read,rand-write,rand-read",
		                     .seed = 1 };
	struct window window = { .mutex = PTHREAD_MUTEX_INITIALIZER,
		                 .cond = PTHREAD_COND_INITIALIZER };
	struct vdo_format_config format = { 0 };
	struct vdo_index_record index_record = { .memory_mb = 256 };
	struct vdo_index_config ram_index;
	uint64_t volume_blocks;
	struct vdo_store_config config;
	struct vdo_super_block super;
	struct block_device *device;
	struct vdo_store *store;
	struct slot *slots;
	uint64_t raw_first;

	parse(argc, argv, &settings);
	config = (struct vdo_store_config){ .logical_zones = settings.zones,
		                            .physical_zones = settings.zones,
		                            .hash_zones = settings.zones };
	unlink(settings.path);
	/* The volume (its index region first), then the raw region. */
	if (settings.embedded_index && !settings.ram) {
		index_record.kind = VDO_INDEX_RECORD_EMBEDDED;
		format.index_blocks = index_blocks();
	}
	volume_blocks = settings.size_mib * 256 + format.index_blocks;
	format.physical_blocks = volume_blocks;
	format.slab_blocks = (uint32_t) (settings.slab_mib * 256);
	raw_first = volume_blocks;
	if (settings.embedded_index && settings.ram)
		config.index = ram_index_config(&settings, &ram_index);
	if (((settings.ram ? vdo_make_ram_device(volume_blocks + settings.blocks, &device)
	                   : vdo_open_file_device(settings.path, volume_blocks + settings.blocks,
	                                          &device)) != DD_SUCCESS) ||
	    (vdo_format_with_index(device, &format, &index_record, &super) != DD_SUCCESS) ||
	    (vdo_store_open(device, &config, &store) != DD_SUCCESS) || !wait_for_index(store))
		return 1;
	if (settings.embedded_index || (settings.dedupe_percent > 0))
		contents.of_block = calloc(super.layout.logical_blocks, sizeof(uint64_t));
	if (settings.blocks > super.layout.logical_blocks) {
		fprintf(stderr, "vdo-store-bench: %llu blocks do not fit in %llu MiB\n",
		        (unsigned long long) settings.blocks,
		        (unsigned long long) settings.size_mib);
		return 2;
	}
	slots = calloc(settings.depth, sizeof(*slots));
	for (unsigned int s = 0; s < settings.depth; s++) {
		slots[s].window = &window;
		if (dd_allocate_aligned(4096, 4096, "bench buffer", &slots[s].buffer) != DD_SUCCESS)
			return 1;
	}
	printf("path=%s size_mib=%llu blocks=%llu depth=%u zones=%u index=%s dedupe=%u%%\n",
	       settings.path, (unsigned long long) settings.size_mib,
	       (unsigned long long) settings.blocks, settings.depth, settings.zones,
	       settings.embedded_index ? "embedded" : "none", settings.dedupe_percent);
	for (enum phase_kind kind = SEQ_WRITE; kind <= RAND_READ; kind++) {
		struct vdo_store_stats stats_before;
		struct vdo_store_stats stats_after;
		struct cpu_sample before;
		struct cpu_sample after;
		double seconds;
		double raw_seconds;

		if (strstr(settings.phases, names[kind]) == NULL)
			continue;
		vdo_store_wait_for_idle(store);
		vdo_store_get_stats(store, &stats_before);
		sample_cpu(&before);
		seconds = run_store_phase(store, kind, slots, &settings);
		sample_cpu(&after);
		vdo_store_wait_for_idle(store);
		vdo_store_get_stats(store, &stats_after);
		raw_seconds = run_raw_phase(device, raw_first, kind, slots, &settings);
		print_phase(names[kind], &settings, seconds, raw_seconds, &before, &after,
		            &stats_before, &stats_after);
	}
	if (window.errors > 0)
		fprintf(stderr, "vdo-store-bench: %u requests failed\n", window.errors);
	if (vdo_store_close(store) != DD_SUCCESS)
		return 1;
	vdo_close_device(device);
	if ((strstr(settings.phases, "recovery") != NULL) &&
	    (run_recovery_phase(&settings, volume_blocks + settings.blocks, &config, slots) != 0))
		return 1;
	unlink(settings.path);
	if (config.index != NULL)
		unlink(config.index->path);
	free(contents.of_block);
	for (unsigned int s = 0; s < settings.depth; s++)
		dd_free(slots[s].buffer);
	free(slots);
	return (window.errors == 0) ? 0 : 1;
}
