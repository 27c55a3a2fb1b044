// SPDX-License-Identifier: GPL-2.0-only
/*
 * uds-index-bench: the index engine measured phase by phase on one storage file.
 *
 * Every name is derived from a seed and a number (XXH3-128 of both), so two runs with the same
 * seed see the same names. Names 0..N-1 are posted by the fill; names from NEW_NAME_BASE on are
 * never posted. Each phase prints one line:
 *
 *   phase=<name> count=<ops> seconds=<s> rate=<ops/s> cpu_us_per_op=<us> found=<fraction>
 *   anon_mb=<now> file_mb=<now> peak_rss_mb=<peak> ram_bytes_per_record=<anon / records held>
 *
 * The index's memory is its anonymous memory (RssAnon). The chapter ring is read through a
 * shared mapping of the storage, so the pages of it that the OS has cached and the index has
 * touched also count in the RSS, as file pages (RssFile, file_mb): that is the OS cache, which
 * any reader of the file would have, and which the kernel reclaims as it needs. peak_rss_mb
 * (VmHWM) counts both.
 *
 * The requests go through the public API exactly as a user's would: a pool of requests, at most
 * --depth in flight, completed by callbacks on the zone threads which hand them back to the
 * submitting thread through a lock-free stack. The submitter waits as a real client would: it
 * polls briefly when few requests are in flight and otherwise sleeps until a batch is back, so
 * its CPU time goes to the index.
 *
 * Phases (all by default, or a comma-separated --phases list): create, fill, query-open,
 * query-recent, query-old-cached, query-old-cold, query-new, post-old, query-old, update-old,
 * delete-old, depth (1, 8, 64, 2000, each with latency percentiles), save, load, rebuild (a
 * child process loads the index, posts, and is killed with SIGKILL; the rebuild that follows is
 * timed and checked). The locality phase (see locality()) replaces them all when named.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xxhash.h>

#include "futex.h"
#include "logger.h"
#include "memory-alloc.h"
#include "time-utils.h"
#include "uds.h"

#define NEW_NAME_BASE (1ULL << 62)

struct bench_request {
	struct uds_request request;
	struct bench_request *next;
	/* Requests on the returned stack from this one down (this one included). */
	unsigned int stacked;
	dd_ktime_t start;
	/* Part of a rewrite of old data (locality phase). */
	bool rewrite;
};

/* Latencies in a log-linear histogram: 16 buckets per power of two of nanoseconds. */
enum {
	LATENCY_SUB_BUCKETS = 16,
	LATENCY_BUCKETS = 64 * LATENCY_SUB_BUCKETS,
};

struct latency_histogram {
	uint64_t counts[LATENCY_BUCKETS];
	uint64_t total;
	uint64_t max_ns;
};

struct bench {
	struct uds_parameters parameters;
	struct uds_index *index;
	uint64_t seed;
	uint64_t fill_count;
	uint64_t sample_count;
	unsigned int depth;
	const char *phases;
	uint64_t records_per_chapter;
	uint64_t records_per_volume;
	uint64_t records_held;
	/* The newest run of consecutively numbered names posted: [recent_low, recent_high). */
	uint64_t recent_low;
	uint64_t recent_high;
	/* Requests handed back by callbacks (pushed by zone threads, taken all at once). */
	_Atomic(struct bench_request *) returned;
	/* The futex word of a sleeping submitter: wake it when this many requests are back. */
	atomic_uint wake_at;
	struct bench_request *pool;
	struct bench_request *free_list;
	unsigned int in_flight;
	uint64_t found;
	uint64_t random_state;
	/* Locality phase: the shape of the stream, and what the rewrites found. */
	uint64_t segment;
	unsigned int rewrite_percent;
	uint64_t rewrite_window;
	bool marking_rewrites;
	uint64_t rewrites;
	uint64_t rewrites_found;
	/* Latency of each request, when tracked. */
	bool track_latency;
	struct latency_histogram latency;
};

/* ------------------------------------------------------------------------------------------ */

static void make_name(uint64_t seed, uint64_t number, struct dd_record_name *name)
{
	uint64_t input[2] = { seed, number };
	XXH128_canonical_t canonical;

	XXH128_canonicalFromHash(&canonical, XXH3_128bits(input, sizeof(input)));
	memcpy(name->name, canonical.digest, sizeof(name->name));
}

static uint64_t next_random(struct bench *bench)
{
	uint64_t z = (bench->random_state += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static double rss_mb(const char *field)
{
	FILE *status = fopen("/proc/self/status", "r");
	char line[256];
	double kb = 0;

	if (status == NULL)
		return 0;
	while (fgets(line, sizeof(line), status) != NULL) {
		if (strncmp(line, field, strlen(field)) == 0) {
			kb = strtod(line + strlen(field) + 1, NULL);
			break;
		}
	}
	fclose(status);
	return kb / 1024.0;
}

static double cpu_seconds(void)
{
	struct rusage usage;

	getrusage(RUSAGE_SELF, &usage);
	return (double) usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 +
	       (double) usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

static unsigned int latency_bucket(uint64_t ns)
{
	unsigned int power;

	if (ns < LATENCY_SUB_BUCKETS)
		return (unsigned int) ns;
	power = 63 - (unsigned int) __builtin_clzll(ns);
	return (power - 3) * LATENCY_SUB_BUCKETS +
	       (unsigned int) ((ns >> (power - 4)) & (LATENCY_SUB_BUCKETS - 1));
}

/* The smallest latency of a bucket, in ns. */
static uint64_t latency_bucket_floor(unsigned int bucket)
{
	unsigned int power = bucket / LATENCY_SUB_BUCKETS + 3;

	if (bucket < LATENCY_SUB_BUCKETS)
		return bucket;
	return (1ULL << power) | ((uint64_t) (bucket % LATENCY_SUB_BUCKETS) << (power - 4));
}

static void record_latency(struct latency_histogram *histogram, uint64_t ns)
{
	unsigned int bucket = latency_bucket(ns);

	histogram->counts[(bucket < LATENCY_BUCKETS) ? bucket : LATENCY_BUCKETS - 1]++;
	histogram->total++;
	if (ns > histogram->max_ns)
		histogram->max_ns = ns;
}

static double latency_percentile_us(const struct latency_histogram *histogram, double percentile)
{
	uint64_t wanted = (uint64_t) (histogram->total * percentile / 100.0);
	uint64_t seen = 0;

	for (unsigned int bucket = 0; bucket < LATENCY_BUCKETS; bucket++) {
		seen += histogram->counts[bucket];
		if (seen > wanted)
			return latency_bucket_floor(bucket) / 1000.0;
	}
	return histogram->max_ns / 1000.0;
}

/* ------------------------------------------------------------------------------------------ */
/* Submitting                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/*
 * A zone thread hands a finished request back. The push and the load of wake_at are sequentially
 * consistent, as are the submitter's store of wake_at and its look at the stack before it
 * sleeps, so either the submitter sees the request or this sees the submitter asleep.
 */
static void request_done(struct uds_request *request)
{
	struct bench_request *br = (struct bench_request *) request;
	struct bench *bench = request->context;
	struct bench_request *head = atomic_load_explicit(&bench->returned, memory_order_relaxed);
	unsigned int wake_at;

	do {
		br->next = head;
		br->stacked = (head == NULL) ? 1 : head->stacked + 1;
	} while (!atomic_compare_exchange_weak(&bench->returned, &head, br));
	wake_at = atomic_load(&bench->wake_at);
	if ((wake_at != 0) && (br->stacked >= wake_at)) {
		atomic_store(&bench->wake_at, 0);
		dd_futex_wake(&bench->wake_at);
	}
}

/*
 * Wait until requests come back. With few in flight, poll for a while (an answer is due in
 * microseconds, sooner than a futex wake-up); with many, sleep until an eighth of them are back,
 * so that the submitting thread does not take CPU time from the index.
 */
static void wait_for_returns(struct bench *bench)
{
	unsigned int threshold = bench->in_flight / 8 + 1;

	if (bench->in_flight < 64) {
		dd_ktime_t deadline = dd_monotonic_ns() + 20 * 1000;

		for (unsigned int spins = 1;; spins++) {
			if (atomic_load_explicit(&bench->returned, memory_order_relaxed) != NULL)
				return;
			if ((spins % 64) == 0) {
				if (dd_monotonic_ns() > deadline)
					break;
				sched_yield();
			}
		}
	}
	atomic_store(&bench->wake_at, threshold);
	for (;;) {
		struct bench_request *head = atomic_load(&bench->returned);

		if ((head != NULL) && (head->stacked >= threshold))
			break;
		dd_futex_wait(&bench->wake_at, threshold);
		if (atomic_load(&bench->wake_at) == 0)
			break;
	}
	atomic_store(&bench->wake_at, 0);
}

/* Take back every returned request; wait for some if @wait and none are back. */
static void reap(struct bench *bench, bool wait)
{
	for (;;) {
		struct bench_request *list =
		    atomic_exchange_explicit(&bench->returned, NULL, memory_order_acquire);

		while (list != NULL) {
			struct bench_request *br = list;

			list = br->next;
			if (br->request.status != DD_SUCCESS) {
				fprintf(stderr, "request failed: %s\n",
				        dd_strerror(br->request.status));
				exit(1);
			}
			bench->found += br->request.found;
			if (br->rewrite) {
				bench->rewrites++;
				bench->rewrites_found += br->request.found;
			}
			if (bench->track_latency)
				record_latency(&bench->latency, dd_monotonic_ns() - br->start);
			br->next = bench->free_list;
			bench->free_list = br;
			bench->in_flight--;
			wait = false;
		}
		if (!wait)
			return;
		wait_for_returns(bench);
	}
}

static void submit(struct bench *bench, enum uds_request_type type, uint64_t number,
                   unsigned int depth)
{
	struct bench_request *br;

	while (bench->in_flight >= depth)
		reap(bench, true);
	br = bench->free_list;
	bench->free_list = br->next;
	bench->in_flight++;
	memset(&br->request, 0, sizeof(br->request));
	make_name(bench->seed, number, &br->request.record_name);
	memcpy(br->request.new_data.data, &number, sizeof(number));
	br->request.type = type;
	br->request.callback = request_done;
	br->request.index = bench->index;
	br->request.context = bench;
	br->rewrite = bench->marking_rewrites;
	br->start = dd_monotonic_ns();
	if (uds_launch_request(&br->request) != DD_SUCCESS)
		exit(1);
}

static void drain(struct bench *bench)
{
	while (bench->in_flight > 0)
		reap(bench, true);
}

/* ------------------------------------------------------------------------------------------ */
/* Phases                                                                                      */
/* ------------------------------------------------------------------------------------------ */

struct phase {
	const char *name;
	dd_ktime_t start;
	double cpu_start;
	uint64_t found_start;
};

static void begin_phase(struct bench *bench, struct phase *phase, const char *name)
{
	phase->name = name;
	phase->found_start = bench->found;
	phase->cpu_start = cpu_seconds();
	phase->start = dd_monotonic_ns();
}

static void end_phase(struct bench *bench, struct phase *phase, uint64_t count)
{
	double seconds = (double) (dd_monotonic_ns() - phase->start) / 1e9;
	double cpu = cpu_seconds() - phase->cpu_start;
	double anon = rss_mb("RssAnon:");
	uint64_t held = bench->records_held ?: 1;

	printf("phase=%s count=%" PRIu64 " seconds=%.3f rate=%.0f cpu_us_per_op=%.3f "
	       "found=%.4f anon_mb=%.1f file_mb=%.1f peak_rss_mb=%.1f "
	       "ram_bytes_per_record=%.3f\n",
	       phase->name, count, seconds, (seconds > 0) ? count / seconds : 0,
	       count ? cpu * 1e6 / count : 0,
	       count ? (double) (bench->found - phase->found_start) / count : 0, anon,
	       rss_mb("RssFile:"), rss_mb("VmHWM:"), anon * 1024 * 1024 / held);
	fflush(stdout);
}

/* Whether the --phases list names a phase. */
static bool wants_explicitly(const struct bench *bench, const char *name)
{
	const char *p = bench->phases;
	size_t length = strlen(name);

	while ((p = strstr(p, name)) != NULL) {
		if (((p == bench->phases) || (p[-1] == ',')) &&
		    ((p[length] == ',') || (p[length] == '\0')))
			return true;
		p += length;
	}
	return false;
}

static bool wants(const struct bench *bench, const char *name)
{
	return (strcmp(bench->phases, "all") == 0) || wants_explicitly(bench, name);
}

/* Run @count requests of @type on numbers chosen by @pick. */
static void run_requests(struct bench *bench, const char *name, enum uds_request_type type,
                         uint64_t count, uint64_t low, uint64_t high, unsigned int depth)
{
	struct phase phase;

	if ((high <= low) || !wants(bench, name))
		return;
	begin_phase(bench, &phase, name);
	for (uint64_t i = 0; i < count; i++)
		submit(bench, type, low + next_random(bench) % (high - low), depth);
	drain(bench);
	end_phase(bench, &phase, count);
}

static void fill(struct bench *bench)
{
	uint64_t tenth = bench->fill_count / 10;
	uint64_t edge = (tenth < 10000000) ? tenth : 10000000;
	struct phase phase;
	struct phase part;

	begin_phase(bench, &phase, "fill");
	for (uint64_t i = 0; i < bench->fill_count; i++) {
		if ((i == 0) || (i == bench->fill_count - edge))
			begin_phase(bench, &part, (i == 0) ? "fill-first" : "fill-last");
		submit(bench, UDS_POST, i, bench->depth);
		if ((i + 1 == edge) || (i + 1 == bench->fill_count)) {
			drain(bench);
			bench->records_held =
			    (i + 1 < bench->records_per_volume) ? i + 1 : bench->records_per_volume;
			end_phase(bench, &part, edge);
		}
	}
	drain(bench);
	end_phase(bench, &phase, bench->fill_count);
	bench->recent_low = 0;
	bench->recent_high = bench->fill_count;
}

static void open_index(struct bench *bench, enum uds_open_mode mode, const char *phase_name)
{
	struct phase phase;

	begin_phase(bench, &phase, phase_name);
	if (uds_open_index(mode, &bench->parameters, &bench->index) != DD_SUCCESS) {
		fprintf(stderr, "cannot open the index\n");
		exit(1);
	}
	end_phase(bench, &phase, 1);
}

static void print_stats(struct bench *bench)
{
	struct uds_index_stats stats;

	if (uds_get_index_stats(bench->index, &stats) != DD_SUCCESS)
		return;
	printf("stats entries=%" PRIu64 " collisions=%" PRIu64 " discarded=%" PRIu64
	       " early_flushes=%" PRIu64 " overflows=%" PRIu64 " rebalances=%" PRIu64
	       " cache_hits=%" PRIu64 " cache_misses=%" PRIu64 " reads_queued=%" PRIu64
	       " read_errors=%" PRIu64 " chapters_written=%" PRIu64 " open_chapter=%" PRIu64
	       " volume_index_mb=%.1f memory_mb=%.1f chapters_dropped=%" PRIu64
	       " sparse_cache_hits=%" PRIu64 " sparse_cache_misses=%" PRIu64
	       " sparse_chapters_loaded=%" PRIu64 "\n",
	       stats.entries_indexed, stats.collisions, stats.entries_discarded,
	       stats.early_flushes, stats.overflows, stats.rebalances, stats.cache_hits,
	       stats.cache_misses, stats.reads_queued, stats.read_errors, stats.chapters_written,
	       stats.open_chapter, stats.volume_index_memory / 1048576.0,
	       stats.memory_used / 1048576.0, stats.chapters_dropped, stats.sparse_cache_hits,
	       stats.sparse_cache_misses, stats.sparse_chapters_loaded);
	fflush(stdout);
}

static void depth_sweep(struct bench *bench)
{
	static const unsigned int depths[] = { 1, 8, 64, 2000 };
	uint64_t next = NEW_NAME_BASE / 2;

	if (!wants(bench, "depth"))
		return;
	for (size_t d = 0; d < sizeof(depths) / sizeof(depths[0]); d++) {
		uint64_t count = (depths[d] == 1) ? bench->sample_count / 4 : bench->sample_count;
		char name[32];
		struct phase phase;

		snprintf(name, sizeof(name), "post-depth-%u", depths[d]);
		memset(&bench->latency, 0, sizeof(bench->latency));
		bench->track_latency = true;
		begin_phase(bench, &phase, name);
		bench->recent_low = next;
		for (uint64_t i = 0; i < count; i++)
			submit(bench, UDS_POST, next++, depths[d]);
		drain(bench);
		bench->recent_high = next;
		end_phase(bench, &phase, count);
		bench->track_latency = false;
		printf("latency phase=%s p50_us=%.2f p90_us=%.2f p99_us=%.2f p999_us=%.2f "
		       "max_us=%.2f\n",
		       name, latency_percentile_us(&bench->latency, 50),
		       latency_percentile_us(&bench->latency, 90),
		       latency_percentile_us(&bench->latency, 99),
		       latency_percentile_us(&bench->latency, 99.9),
		       bench->latency.max_ns / 1000.0);
	}
}

/*
 * Kill a child mid-fill, then time the rebuild and check it: the child posts three chapters of
 * fresh names and is killed without saving; the first two chapters of them are certainly in
 * closed chapters, so the rebuilt index must find every one.
 */
static void rebuild(struct bench *bench)
{
	uint64_t first = NEW_NAME_BASE + (NEW_NAME_BASE / 4);
	uint64_t closed = 2 * bench->records_per_chapter;
	struct phase phase;
	pid_t child;
	int status;

	if (!wants(bench, "rebuild"))
		return;
	uds_free_index(bench->index);
	bench->index = NULL;
	fflush(stdout);
	child = fork();
	if (child == 0) {
		open_index(bench, UDS_LOAD, "child-open");
		for (uint64_t i = 0; i < 3 * bench->records_per_chapter; i++)
			submit(bench, UDS_POST, first + i, bench->depth);
		drain(bench);
		/* The chapters closed so far are on storage: those are what rebuild must find. */
		uds_flush_index(bench->index);
		raise(SIGKILL);
	}
	waitpid(child, &status, 0);
	if (!WIFSIGNALED(status)) {
		fprintf(stderr, "the child was not killed\n");
		exit(1);
	}
	open_index(bench, UDS_LOAD, "rebuild");
	begin_phase(bench, &phase, "rebuild-check");
	for (uint64_t i = 0; i < closed; i++)
		submit(bench, UDS_QUERY_NO_UPDATE, first + i, bench->depth);
	drain(bench);
	end_phase(bench, &phase, closed);
	print_stats(bench);
}

/*
 * A stream with temporal locality, as storage sees when data is rewritten: --records names in
 * segments of --segment consecutive names; each segment is new data, or, for --rewrite-percent
 * of them, a rewrite of a segment of new data written within the last --rewrite-window new
 * names. All are POSTs. What matters is the fraction of rewritten names found: run it on a dense
 * and on a sparse index to compare them.
 */
static void locality(struct bench *bench)
{
	uint64_t window_segments = bench->rewrite_window / bench->segment;
	uint64_t new_names = 0;
	uint64_t posted = 0;
	struct phase phase;

	bench->rewrites = 0;
	bench->rewrites_found = 0;
	begin_phase(bench, &phase, "locality");
	while (posted < bench->fill_count) {
		uint64_t segments = new_names / bench->segment;
		bool rewrite =
		    (segments > 0) && (next_random(bench) % 100 < bench->rewrite_percent);
		uint64_t first = new_names;

		if (rewrite) {
			uint64_t span = (segments < window_segments) ? segments : window_segments;

			first = (segments - 1 - next_random(bench) % span) * bench->segment;
		} else {
			new_names += bench->segment;
		}
		bench->marking_rewrites = rewrite;
		for (uint64_t i = 0; i < bench->segment; i++)
			submit(bench, UDS_POST, first + i, bench->depth);
		posted += bench->segment;
	}
	drain(bench);
	bench->marking_rewrites = false;
	end_phase(bench, &phase, posted);
	printf("locality segment=%" PRIu64 " rewrite_percent=%u rewrite_window=%" PRIu64
	       " rewrites=%" PRIu64 " rewrite_found=%.4f\n",
	       bench->segment, bench->rewrite_percent, bench->rewrite_window, bench->rewrites,
	       bench->rewrites ? (double) bench->rewrites_found / bench->rewrites : 0);
	fflush(stdout);
}

static void run(struct bench *bench)
{
	uint64_t n = bench->fill_count;
	uint64_t chapter = bench->records_per_chapter;
	uint64_t window_low = (n > bench->records_per_volume) ? n - bench->records_per_volume : 0;
	uint64_t samples = bench->sample_count;
	uint64_t size = 0;
	struct phase phase;

	if (uds_compute_index_size(&bench->parameters, &size) != DD_SUCCESS)
		exit(1);
	printf("config memory_mb=%u sparse=%d zones=%u page_bytes=%u records_per_chapter=%" PRIu64
	       " records_per_volume=%" PRIu64 " storage_bytes=%" PRIu64
	       " disk_bytes_per_record=%.2f allocator=%s\n",
	       bench->parameters.memory_mb, bench->parameters.sparse, bench->parameters.zone_count,
	       bench->parameters.bytes_per_page ?: 4096, chapter, bench->records_per_volume, size,
	       (double) size / bench->records_per_volume, dd_allocator_name());
	open_index(bench, UDS_CREATE, "create");
	if (wants_explicitly(bench, "locality")) {
		locality(bench);
		print_stats(bench);
		uds_free_index(bench->index);
		return;
	}
	fill(bench);
	print_stats(bench);
	/* Leave a margin of two chapters at the old end: they may expire during the phase. */
	window_low += 2 * chapter;
	run_requests(bench, "query-open", UDS_QUERY_NO_UPDATE, samples, n - n % chapter, n,
	             bench->depth);
	run_requests(bench, "query-recent", UDS_QUERY_NO_UPDATE, samples,
	             (n > 7 * chapter) ? n - n % chapter - 7 * chapter : 0, n - n % chapter,
	             bench->depth);
	run_requests(bench, "query-old-cached", UDS_QUERY_NO_UPDATE, samples, window_low,
	             n - n % chapter, bench->depth);
	if (wants(bench, "query-old-cold")) {
		uds_drop_index_os_cache(bench->index);
		run_requests(bench, "query-old-cold", UDS_QUERY_NO_UPDATE, samples / 4, window_low,
		             n - n % chapter, bench->depth);
	}
	run_requests(bench, "query-new", UDS_QUERY_NO_UPDATE, samples, NEW_NAME_BASE,
	             NEW_NAME_BASE * 2, bench->depth);
	run_requests(bench, "post-old", UDS_POST, samples, window_low, n, bench->depth);
	run_requests(bench, "query-old", UDS_QUERY, samples, window_low, n, bench->depth);
	run_requests(bench, "update-old", UDS_UPDATE, samples, window_low, n, bench->depth);
	run_requests(bench, "delete-old", UDS_DELETE, samples, window_low, n, bench->depth);
	depth_sweep(bench);
	print_stats(bench);
	if (wants(bench, "save")) {
		begin_phase(bench, &phase, "save");
		if (uds_save_index(bench->index) != DD_SUCCESS)
			exit(1);
		end_phase(bench, &phase, 1);
	}
	if (wants(bench, "load")) {
		uds_free_index(bench->index);
		open_index(bench, UDS_NO_REBUILD, "load");
		run_requests(bench, "query-after-load", UDS_QUERY_NO_UPDATE, samples,
		             bench->recent_low, bench->recent_high, bench->depth);
	}
	rebuild(bench);
	uds_free_index(bench->index);
}

static void usage(void)
{
	fprintf(
	    stderr,
	    "usage: uds-index-bench --path=FILE [--memory=MB] [--sparse] [--zones=N]\n"
	    "       [--readers=N] [--disk-threads=N]\n"
	    "       [--records=N] [--samples=N] [--depth=N] [--seed=N] [--page-size=BYTES]\n"
	    "       [--phases=all|name,...] [--chapters=N --record-pages=N [--sparse-chapters=N]]\n"
	    "       [--segment=N] [--rewrite-percent=P] [--rewrite-window=N]\n"
	    "The locality phase runs only when named: --phases=create,locality.\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "path", required_argument, NULL, 'p' },
		{ "memory", required_argument, NULL, 'm' },
		{ "sparse", no_argument, NULL, 's' },
		{ "zones", required_argument, NULL, 'z' },
		{ "readers", required_argument, NULL, 'R' },
		{ "disk-threads", required_argument, NULL, 'D' },
		{ "records", required_argument, NULL, 'n' },
		{ "samples", required_argument, NULL, 'q' },
		{ "depth", required_argument, NULL, 'd' },
		{ "seed", required_argument, NULL, 'S' },
		{ "page-size", required_argument, NULL, 'P' },
		{ "phases", required_argument, NULL, 'f' },
		{ "chapters", required_argument, NULL, 'c' },
		{ "record-pages", required_argument, NULL, 'r' },
		{ "sparse-chapters", required_argument, NULL, 'C' },
		{ "segment", required_argument, NULL, 'g' },
		{ "rewrite-percent", required_argument, NULL, 'w' },
		{ "rewrite-window", required_argument, NULL, 'W' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench bench = {
		.parameters = { .memory_mb = 256, .zone_count = 1 },
		.seed = 1,
		.fill_count = 70000000,
		.sample_count = 1000000,
		.depth = 2000,
		.phases = "all",
		.random_state = 42,
		.segment = 4096,
		.rewrite_percent = 30,
		.rewrite_window = 40000000,
	};
	struct uds_index *probe;
	int option;

	while ((option = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (option) {
		case 'p':
			bench.parameters.path = optarg;
			break;
		case 'm':
			bench.parameters.memory_mb = (uint32_t) strtoul(optarg, NULL, 0);
			break;
		case 's':
			bench.parameters.sparse = true;
			break;
		case 'z':
			bench.parameters.zone_count = (unsigned int) strtoul(optarg, NULL, 0);
			break;
		case 'R':
			bench.parameters.reader_threads = (unsigned int) strtoul(optarg, NULL, 0);
			break;
		case 'D':
			bench.parameters.disk_threads = (unsigned int) strtoul(optarg, NULL, 0);
			break;
		case 'n':
			bench.fill_count = strtoull(optarg, NULL, 0);
			break;
		case 'q':
			bench.sample_count = strtoull(optarg, NULL, 0);
			break;
		case 'd':
			bench.depth = (unsigned int) strtoul(optarg, NULL, 0);
			break;
		case 'S':
			bench.seed = strtoull(optarg, NULL, 0);
			break;
		case 'P':
			bench.parameters.bytes_per_page = (uint32_t) strtoul(optarg, NULL, 0);
			break;
		case 'f':
			bench.phases = optarg;
			break;
		case 'c':
			bench.parameters.chapters_per_volume = (uint32_t) strtoul(optarg, NULL, 0);
			break;
		case 'r':
			bench.parameters.record_pages_per_chapter =
			    (uint32_t) strtoul(optarg, NULL, 0);
			break;
		case 'C':
			bench.parameters.sparse_chapters_per_volume =
			    (uint32_t) strtoul(optarg, NULL, 0);
			break;
		case 'g':
			bench.segment = strtoull(optarg, NULL, 0);
			break;
		case 'w':
			bench.rewrite_percent = (unsigned int) strtoul(optarg, NULL, 0);
			break;
		case 'W':
			bench.rewrite_window = strtoull(optarg, NULL, 0);
			break;
		default:
			usage();
		}
	}
	if ((bench.parameters.path == NULL) || (bench.depth == 0) || (bench.fill_count == 0) ||
	    (bench.sample_count == 0) || (bench.segment == 0) || (bench.rewrite_percent > 100) ||
	    (bench.rewrite_window < bench.segment))
		usage();
	if (bench.depth > 2000)
		bench.depth = 2000;
	if (DD_ALLOCATE(2000, struct bench_request, "requests", &bench.pool) != DD_SUCCESS)
		return 1;
	for (int i = 0; i < 2000; i++) {
		bench.pool[i].next = bench.free_list;
		bench.free_list = &bench.pool[i];
	}
	/* Learn the geometry from a throwaway open. */
	if (uds_open_index(UDS_CREATE, &bench.parameters, &probe) != DD_SUCCESS)
		return 1;
	{
		struct uds_index_stats stats;

		if (uds_get_index_stats(probe, &stats) != DD_SUCCESS)
			return 1;
		bench.records_per_volume = stats.records_per_volume;
		bench.records_per_chapter = stats.records_per_chapter;
	}
	uds_free_index(probe);
	run(&bench);
	dd_free(bench.pool);
	return 0;
}
