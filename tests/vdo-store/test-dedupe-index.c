// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of the embedded dedupe index (dedupe-index.h) on the index engine, in a region in the
 * middle of a temporary file: the config as the engine gets it, post / update / query, the
 * identity, save and load, rebuild after a crash (a child process killed without closing),
 * queries before the index is online, many queries in flight from several threads, close while
 * queries are in flight or while the index opens, a query asked inside a callback, bad configs
 * and an index that cannot open.
 *
 * uds_open_index() is wrapped with the linker's --wrap (no hook in the code under test): the
 * wrapper records what the engine is asked, gives the engine a small shape instead of the
 * config's memory size, and can hold an open at a gate, so that the OPENING and REBUILDING
 * states last exactly as long as a test needs them, with no timing assumption.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dedupe-queries.h"
#include "memory-alloc.h"

enum {
	RECORD_PAGES = 4,
	CHAPTERS = 16,
	RECORDS_PER_CHAPTER = RECORD_PAGES * 127,
	BLOCK = 4096,
	/* The file: HEAD blocks, the index's region, TAIL blocks. */
	HEAD_BLOCKS = 16,
	TAIL_BLOCKS = 16,
	SUBMITTERS = 4,
	PER_SUBMITTER = 4096,
};

static char file_path[64];
static uint64_t region_blocks;

/* ------------------------------------------------------------------------------------------ */
/* The wrapper of uds_open_index()                                                             */
/* ------------------------------------------------------------------------------------------ */

static struct {
	pthread_mutex_t mutex;
	pthread_cond_t changed;
	/* Opens in these modes (bits 1 << mode) wait at the gate. */
	unsigned int gated;
	/* Opens waiting at the gate now. */
	unsigned int waiting;
	/* The modes asked for since the last reset, and the last parameters. */
	enum uds_open_mode modes[8];
	unsigned int calls;
	struct uds_parameters parameters;
	/* The last index opened. */
	struct uds_index *opened;
} wrap = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER };

int __real_uds_open_index(enum uds_open_mode mode, const struct uds_parameters *parameters,
                          struct uds_index **index_ptr);
int __wrap_uds_open_index(enum uds_open_mode mode, const struct uds_parameters *parameters,
                          struct uds_index **index_ptr);

/** __wrap_uds_open_index() - Record, wait at the gate if it is closed, open a small index. */
int __wrap_uds_open_index(enum uds_open_mode mode, const struct uds_parameters *parameters,
                          struct uds_index **index_ptr)
{
	struct uds_parameters small = *parameters;
	int result;

	pthread_mutex_lock(&wrap.mutex);
	if (wrap.calls < 8)
		wrap.modes[wrap.calls] = mode;
	wrap.calls++;
	wrap.parameters = *parameters;
	while ((wrap.gated & (1u << mode)) != 0) {
		wrap.waiting++;
		pthread_cond_broadcast(&wrap.changed);
		pthread_cond_wait(&wrap.changed, &wrap.mutex);
		wrap.waiting--;
	}
	pthread_mutex_unlock(&wrap.mutex);
	small.record_pages_per_chapter = RECORD_PAGES;
	small.chapters_per_volume = CHAPTERS;
	result = __real_uds_open_index(mode, &small, index_ptr);
	if (result == DD_SUCCESS) {
		pthread_mutex_lock(&wrap.mutex);
		wrap.opened = *index_ptr;
		pthread_mutex_unlock(&wrap.mutex);
	}
	return result;
}

/** reset_wrap() - Forget the calls recorded; hold opens in the modes of @gated. */
static void reset_wrap(unsigned int gated)
{
	pthread_mutex_lock(&wrap.mutex);
	wrap.calls = 0;
	wrap.gated = gated;
	wrap.opened = NULL;
	pthread_mutex_unlock(&wrap.mutex);
}

/** wait_at_gate() - Wait until an open waits at the gate. */
static void wait_at_gate(void)
{
	pthread_mutex_lock(&wrap.mutex);
	while (wrap.waiting == 0)
		pthread_cond_wait(&wrap.changed, &wrap.mutex);
	pthread_mutex_unlock(&wrap.mutex);
}

/** open_gate() - Let every open through. */
static void open_gate(void)
{
	pthread_mutex_lock(&wrap.mutex);
	wrap.gated = 0;
	pthread_cond_broadcast(&wrap.changed);
	pthread_mutex_unlock(&wrap.mutex);
}

/** modes_asked() - How many opens were asked since the reset; the first two modes. */
static unsigned int modes_asked(enum uds_open_mode *first, enum uds_open_mode *second)
{
	unsigned int calls;

	pthread_mutex_lock(&wrap.mutex);
	calls = wrap.calls;
	*first = wrap.modes[0];
	*second = wrap.modes[1];
	pthread_mutex_unlock(&wrap.mutex);
	return calls;
}

/**
 * settle() - Wait until the engine of the open index has answered everything and written every
 *            chapter it closed. The engine's stats read the discard count of the chapter being
 *            written without the lock its writer changes it under (a race of the engine's own,
 *            which ThreadSanitizer reports): tests read stats only when no chapter is written.
 */
static void settle(void)
{
	struct uds_index *engine;

	pthread_mutex_lock(&wrap.mutex);
	engine = wrap.opened;
	pthread_mutex_unlock(&wrap.mutex);
	uds_flush_index(engine);
}

/* ------------------------------------------------------------------------------------------ */
/* The file and the index                                                                      */
/* ------------------------------------------------------------------------------------------ */

/** pattern_of() - The byte the test writes at @offset outside the region. */
static uint8_t pattern_of(uint64_t offset)
{
	return (uint8_t) (offset * 31 + offset / BLOCK + 7);
}

/** fill_blocks() - Write the pattern over blocks [first, first + count) of the file. */
static void fill_blocks(int fd, uint64_t first, uint64_t count)
{
	uint8_t block[BLOCK];

	for (uint64_t b = first; b < first + count; b++) {
		for (unsigned int i = 0; i < BLOCK; i++)
			block[i] = pattern_of(b * BLOCK + i);
		assert_int_equal(pwrite(fd, block, BLOCK, (off_t) (b * BLOCK)), BLOCK);
	}
}

/** check_blocks() - The pattern is still over blocks [first, first + count). */
static void check_blocks(int fd, uint64_t first, uint64_t count)
{
	uint8_t block[BLOCK];

	for (uint64_t b = first; b < first + count; b++) {
		assert_int_equal(pread(fd, block, BLOCK, (off_t) (b * BLOCK)), BLOCK);
		for (unsigned int i = 0; i < BLOCK; i++)
			assert_int_equal(block[i], pattern_of(b * BLOCK + i));
	}
}

/** check_outside_region() - Nothing outside the index's region changed. */
static void check_outside_region(void)
{
	int fd = open(file_path, O_RDONLY);

	assert_true(fd >= 0);
	check_blocks(fd, 0, HEAD_BLOCKS);
	check_blocks(fd, HEAD_BLOCKS + region_blocks, TAIL_BLOCKS);
	close(fd);
}

static int setup(void **state)
{
	struct uds_parameters shape = {
		.record_pages_per_chapter = RECORD_PAGES,
		.chapters_per_volume = CHAPTERS,
	};
	uint64_t bytes;
	int fd;

	(void) state;
	snprintf(file_path, sizeof(file_path), "/tmp/test-dedupe-index-XXXXXX");
	fd = mkstemp(file_path);
	if (fd < 0)
		return -1;
	if (uds_compute_index_size(&shape, &bytes) != DD_SUCCESS)
		return -1;
	/* A little more than the index needs: it must keep to its first bytes. */
	region_blocks = (bytes + BLOCK - 1) / BLOCK + 3;
	fill_blocks(fd, 0, HEAD_BLOCKS);
	fill_blocks(fd, HEAD_BLOCKS + region_blocks, TAIL_BLOCKS);
	close(fd);
	reset_wrap(0);
	return 0;
}

static int teardown(void **state)
{
	(void) state;
	open_gate();
	unlink(file_path);
	return 0;
}

/** config_of() - The config of the test's index: create it, or load what is there. */
static struct vdo_index_config config_of(bool create)
{
	return (struct vdo_index_config){
		.kind = VDO_INDEX_EMBEDDED,
		.path = file_path,
		.region_start = HEAD_BLOCKS,
		.region_blocks = region_blocks,
		.memory_mb = 256,
		.create = create,
	};
}

/** open_index() - Open the test's index and wait until it is online. */
static struct vdo_dedupe_index *open_index(bool create)
{
	struct vdo_index_config config = config_of(create);
	struct vdo_dedupe_index *index;

	assert_success(vdo_open_dedupe_index(&config, &index));
	assert_int_equal(wait_opened(index), VDO_INDEX_ONLINE);
	return index;
}

/** make_index() - Create the index in the file, save and close it. */
static void make_index(void)
{
	assert_success(vdo_close_dedupe_index(open_index(true)));
}

/* ------------------------------------------------------------------------------------------ */
/* Tests                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void test_bad_configs(void **state)
{
	struct vdo_index_config config = config_of(true);
	struct vdo_dedupe_index *index = NULL;

	(void) state;
	config.path = NULL;
	assert_int_equal(vdo_open_dedupe_index(&config, &index), DD_INVALID_ARGUMENT);
	config = config_of(true);
	config.zone_count = 17;
	assert_int_equal(vdo_open_dedupe_index(&config, &index), DD_INVALID_ARGUMENT);
	config = config_of(true);
	config.region_start = UINT64_MAX / 2;
	assert_int_equal(vdo_open_dedupe_index(&config, &index), DD_INVALID_ARGUMENT);
	config = (struct vdo_index_config){ .kind = VDO_INDEX_REMOTE, .server = "unix:/none" };
	assert_int_equal(vdo_open_dedupe_index(&config, &index), DD_INVALID_ARGUMENT);
	config.index_name = "vol";
	config.shard_map = "/none";
	assert_int_equal(vdo_open_dedupe_index(&config, &index), DD_INVALID_ARGUMENT);
	config = config_of(true);
	config.kind = (enum vdo_index_kind) 7;
	assert_int_equal(vdo_open_dedupe_index(&config, &index), DD_INVALID_ARGUMENT);
	assert_null(index);
	assert_success(vdo_close_dedupe_index(NULL));
	assert_string_equal(vdo_index_state_name(VDO_INDEX_REBUILDING), "rebuilding");
}

static void test_post_update_query_and_reload(void **state)
{
	struct vdo_dedupe_index_stats stats;
	struct vdo_dedupe_index *index;
	enum uds_open_mode first, second;
	uint64_t identity;

	(void) state;
	index = open_index(true);
	/* The engine got the config's region in bytes, its memory and one zone. */
	assert_int_equal(modes_asked(&first, &second), 1);
	assert_int_equal(first, UDS_CREATE);
	assert_string_equal(wrap.parameters.path, file_path);
	assert_int_equal(wrap.parameters.offset, HEAD_BLOCKS * BLOCK);
	assert_int_equal(wrap.parameters.size, region_blocks * BLOCK);
	assert_int_equal(wrap.parameters.memory_mb, 256);
	assert_false(wrap.parameters.sparse);
	assert_int_equal(wrap.parameters.zone_count, 1);
	identity = vdo_dedupe_index_identity(index);
	assert_true(identity != 0);

	assert_answer(run_query(index, VDO_INDEX_POST, 1, 100), VDO_INDEX_OK, false, 0);
	assert_answer(run_query(index, VDO_INDEX_POST, 1, 101), VDO_INDEX_OK, true, 100);
	assert_answer(run_query(index, VDO_INDEX_UPDATE, 1, 102), VDO_INDEX_OK, true, 100);
	assert_answer(run_query(index, VDO_INDEX_QUERY, 1, 0), VDO_INDEX_OK, true, 102);
	assert_answer(run_query(index, VDO_INDEX_QUERY, 2, 0), VDO_INDEX_OK, false, 0);
	assert_answer(run_query(index, VDO_INDEX_UPDATE, 2, 200), VDO_INDEX_OK, false, 0);
	assert_answer(run_query(index, VDO_INDEX_QUERY, 2, 0), VDO_INDEX_OK, true, 200);
	vdo_get_dedupe_index_stats(index, &stats);
	assert_int_equal(stats.state, VDO_INDEX_ONLINE);
	assert_int_equal(stats.posts_found, 1);
	assert_int_equal(stats.posts_not_found, 1);
	assert_int_equal(stats.updates_found, 1);
	assert_int_equal(stats.updates_not_found, 1);
	assert_int_equal(stats.queries_found, 2);
	assert_int_equal(stats.queries_not_found, 1);
	assert_int_equal(stats.unavailable + stats.timed_out + stats.failed, 0);
	assert_int_equal(stats.in_flight, 0);
	assert_int_equal(stats.entries_indexed, 2);
	assert_true(stats.memory_bytes > 0);
	assert_success(vdo_close_dedupe_index(index));
	check_outside_region();

	/* Saved: the next open loads (no rebuild), and the same index answers. */
	reset_wrap(0);
	index = open_index(false);
	assert_int_equal(modes_asked(&first, &second), 1);
	assert_int_equal(first, UDS_NO_REBUILD);
	assert_int_equal(vdo_dedupe_index_identity(index), identity);
	assert_answer(run_query(index, VDO_INDEX_QUERY, 1, 0), VDO_INDEX_OK, true, 102);
	assert_answer(run_query(index, VDO_INDEX_QUERY, 2, 0), VDO_INDEX_OK, true, 200);
	assert_success(vdo_close_dedupe_index(index));
	check_outside_region();
	assert_int_equal(atomic_load(&callbacks_on_caller_stack), 0);
}

/** answer_unavailable() - Queries of every kind answer UNAVAILABLE, once, elsewhere. */
static void answer_unavailable(struct vdo_dedupe_index *index, uint64_t count)
{
	struct vdo_dedupe_index_stats before, after;

	vdo_get_dedupe_index_stats(index, &before);
	for (uint64_t n = 0; n < count; n++)
		assert_answer(run_query(index, (enum vdo_index_operation)(n % 3), n, n),
		              VDO_INDEX_UNAVAILABLE, false, 0);
	vdo_get_dedupe_index_stats(index, &after);
	assert_int_equal(after.unavailable - before.unavailable, count);
	assert_int_equal(after.in_flight, 0);
	assert_int_equal(after.entries_indexed, 0);
	assert_int_equal(vdo_dedupe_index_identity(index), 0);
}

static void test_unavailable_while_opening(void **state)
{
	struct vdo_index_config config = config_of(true);
	struct vdo_dedupe_index *index;

	(void) state;
	reset_wrap(1u << UDS_CREATE);
	assert_success(vdo_open_dedupe_index(&config, &index));
	wait_at_gate();
	assert_int_equal(vdo_get_dedupe_index_state(index), VDO_INDEX_OPENING);
	answer_unavailable(index, 30);
	open_gate();
	assert_int_equal(wait_opened(index), VDO_INDEX_ONLINE);
	assert_answer(run_query(index, VDO_INDEX_POST, 5, 55), VDO_INDEX_OK, false, 0);
	assert_success(vdo_close_dedupe_index(index));
	assert_int_equal(atomic_load(&callbacks_on_caller_stack), 0);
}

struct closer {
	struct vdo_dedupe_index *index;
	int result;
	atomic_bool done;
};

static void *close_index(void *argument)
{
	struct closer *closer = argument;

	closer->result = vdo_close_dedupe_index(closer->index);
	atomic_store(&closer->done, true);
	return NULL;
}

static void test_close_waits_for_open(void **state)
{
	struct vdo_index_config config = config_of(true);
	struct closer closer = { 0 };
	pthread_t thread;

	(void) state;
	reset_wrap(1u << UDS_CREATE);
	assert_success(vdo_open_dedupe_index(&config, &closer.index));
	wait_at_gate();
	assert_int_equal(pthread_create(&thread, NULL, close_index, &closer), 0);
	/* Close cannot be done while the open it waits for is held at the gate. */
	dd_sleep_ns(50 * 1000 * 1000);
	assert_false(atomic_load(&closer.done));
	open_gate();
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_true(atomic_load(&closer.done));
	assert_success(closer.result);
	/* The index it made was saved as it closed. */
	reset_wrap(0);
	assert_success(vdo_close_dedupe_index(open_index(false)));
}

static void test_open_failure(void **state)
{
	struct vdo_index_config config = config_of(false);
	struct vdo_dedupe_index *index;

	(void) state;
	/* Nothing was ever created in the region: the open fails, dedupe is off. */
	assert_success(vdo_open_dedupe_index(&config, &index));
	assert_int_equal(wait_opened(index), VDO_INDEX_ERROR);
	answer_unavailable(index, 10);
	assert_success(vdo_close_dedupe_index(index));
	config.path = "/nonexistent/dedupe-index";
	assert_success(vdo_open_dedupe_index(&config, &index));
	assert_int_equal(wait_opened(index), VDO_INDEX_ERROR);
	assert_success(vdo_close_dedupe_index(index));
	check_outside_region();
}

/** crash_child() - A child process: load the index, post @count names, flush, die unsaved. */
static void crash_child(uint64_t count)
{
	struct test_query *queries = calloc(count, sizeof(*queries));
	struct vdo_index_config config = config_of(false);
	struct vdo_dedupe_index *index;
	struct uds_index *engine;

	if ((queries == NULL) || (vdo_open_dedupe_index(&config, &index) != DD_SUCCESS))
		_exit(2);
	while (vdo_get_dedupe_index_state(index) == VDO_INDEX_OPENING)
		dd_sleep_ns(WAIT_POLL_NS);
	if (vdo_get_dedupe_index_state(index) != VDO_INDEX_ONLINE)
		_exit(3);
	for (uint64_t n = 0; n < count; n++)
		submit_query(index, &queries[n], VDO_INDEX_POST, n, n + 1000);
	for (uint64_t n = 0; n < count; n++) {
		while (atomic_load(&queries[n].calls) == 0)
			dd_sleep_ns(WAIT_POLL_NS);
		if ((queries[n].query.status != VDO_INDEX_OK) || queries[n].query.found)
			_exit(4);
	}
	pthread_mutex_lock(&wrap.mutex);
	engine = wrap.opened;
	pthread_mutex_unlock(&wrap.mutex);
	/* The chapters the posts closed reach the file; the open chapter is lost. */
	uds_flush_index(engine);
	/* Crash: no close, no exit handler (nor a sanitizer's report of the threads left). */
	kill(getpid(), SIGKILL);
	_exit(5);
}

static void test_rebuild_after_crash(void **state)
{
	const uint64_t count = 3 * RECORDS_PER_CHAPTER + 10;
	struct vdo_dedupe_index_stats stats;
	struct vdo_index_config config = config_of(false);
	struct vdo_dedupe_index *index;
	enum uds_open_mode first, second;
	uint64_t found = 0;
	int status;
	pid_t child;

	(void) state;
	make_index();
	child = fork();
	assert_true(child >= 0);
	if (child == 0)
		crash_child(count);
	assert_int_equal(waitpid(child, &status, 0), child);
	if (WIFEXITED(status))
		fail_msg("the child failed with status %d", WEXITSTATUS(status));
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);

	/* No clean save: the index says it rebuilds, and answers nothing until it is online. */
	reset_wrap(1u << UDS_LOAD);
	assert_success(vdo_open_dedupe_index(&config, &index));
	wait_at_gate();
	assert_int_equal(vdo_get_dedupe_index_state(index), VDO_INDEX_REBUILDING);
	answer_unavailable(index, 12);
	open_gate();
	assert_int_equal(wait_opened(index), VDO_INDEX_ONLINE);
	assert_int_equal(modes_asked(&first, &second), 2);
	assert_int_equal(first, UDS_NO_REBUILD);
	assert_int_equal(second, UDS_LOAD);
	/* The first chapter was closed and written before the crash: every name of it is back. */
	for (uint64_t n = 0; n < RECORDS_PER_CHAPTER; n++) {
		struct answer answer = run_query(index, VDO_INDEX_QUERY, n, 0);

		assert_int_equal(answer.status, VDO_INDEX_OK);
		if (answer.found) {
			assert_int_equal(answer.old_data, n + 1000);
			found++;
		}
	}
	assert_int_equal(found, RECORDS_PER_CHAPTER);
	settle();
	vdo_get_dedupe_index_stats(index, &stats);
	assert_true(stats.entries_indexed >= RECORDS_PER_CHAPTER);
	assert_success(vdo_close_dedupe_index(index));
	check_outside_region();
}

struct submitter {
	struct vdo_dedupe_index *index;
	struct test_query *queries;
	unsigned int number;
	pthread_t thread;
};

/** submit_many() - A submitter thread: PER_SUBMITTER queries of all kinds, none waited for. */
static void *submit_many(void *argument)
{
	struct submitter *submitter = argument;

	for (unsigned int i = 0; i < PER_SUBMITTER; i++) {
		uint64_t number = submitter->number * 1000000ULL + i / 3;

		submit_query(submitter->index, &submitter->queries[i],
		             (enum vdo_index_operation)(i % 3), number, number);
	}
	return NULL;
}

/**
 * run_submitters() - SUBMITTERS threads submit their queries at once; return when all are
 *                    submitted (not answered).
 */
static void run_submitters(struct vdo_dedupe_index *index, struct submitter *submitters,
                           unsigned int round)
{
	for (unsigned int s = 0; s < SUBMITTERS; s++) {
		submitters[s].index = index;
		submitters[s].number = round * SUBMITTERS + s;
		assert_int_equal(
		    pthread_create(&submitters[s].thread, NULL, submit_many, &submitters[s]), 0);
	}
	for (unsigned int s = 0; s < SUBMITTERS; s++)
		assert_int_equal(pthread_join(submitters[s].thread, NULL), 0);
}

/** check_submitted() - Every query called back once, answered, with the data it should find. */
static void check_submitted(struct submitter *submitters)
{
	for (unsigned int s = 0; s < SUBMITTERS; s++) {
		for (unsigned int i = 0; i < PER_SUBMITTER; i++) {
			struct test_query *tq = &submitters[s].queries[i];
			uint64_t number = submitters[s].number * 1000000ULL + i / 3;
			struct answer answer = wait_answered(tq);

			assert_int_equal(answer.status, VDO_INDEX_OK);
			/* POST first (not found), then QUERY and UPDATE of the same name. */
			assert_int_equal(answer.found, (i % 3) != 0);
			if (answer.found)
				assert_int_equal(answer.old_data, number);
		}
	}
}

static void test_many_in_flight_and_close(void **state)
{
	struct submitter submitters[SUBMITTERS];
	struct vdo_dedupe_index_stats stats;
	struct vdo_dedupe_index *index;
	uint64_t before = atomic_load(&callbacks_run);
	const uint64_t total = SUBMITTERS * PER_SUBMITTER;
	/* Each submitter's queries go POST, QUERY, UPDATE, POST...: a POST first. */
	const uint64_t posts = SUBMITTERS * ((PER_SUBMITTER + 2) / 3);

	(void) state;
	for (unsigned int s = 0; s < SUBMITTERS; s++) {
		submitters[s].queries = calloc(PER_SUBMITTER, sizeof(struct test_query));
		assert_non_null(submitters[s].queries);
	}
	index = open_index(true);
	run_submitters(index, submitters, 0);
	check_submitted(submitters);
	assert_int_equal(atomic_load(&callbacks_run) - before, total);
	settle();
	vdo_get_dedupe_index_stats(index, &stats);
	assert_int_equal(stats.posts_not_found, posts);
	assert_int_equal(stats.posts_found, 0);
	assert_int_equal(stats.queries_found + stats.updates_found, total - posts);
	assert_int_equal(stats.queries_not_found + stats.updates_not_found, 0);
	assert_int_equal(stats.in_flight, 0);

	/* Close as soon as the second round is submitted: close waits for every callback. */
	run_submitters(index, submitters, 1);
	assert_success(vdo_close_dedupe_index(index));
	assert_int_equal(atomic_load(&callbacks_run) - before, 2 * total);
	check_submitted(submitters);
	for (unsigned int s = 0; s < SUBMITTERS; s++)
		free(submitters[s].queries);
	assert_int_equal(atomic_load(&callbacks_on_caller_stack), 0);
	check_outside_region();
}

/* A query asked from inside another's callback (on an index zone thread). */
static struct test_query inner_query;
static _Thread_local unsigned int in_outer_callback;
static atomic_bool inner_nested;

static void inner_done(struct vdo_index_query *query)
{
	if (in_outer_callback > 0)
		atomic_store(&inner_nested, true);
	query_done(query);
}

static void outer_done(struct vdo_index_query *query)
{
	struct vdo_dedupe_index *index = query->index;

	in_outer_callback++;
	memset(&inner_query, 0, sizeof(inner_query));
	/* The same name: the same zone, whose thread this is. */
	inner_query.query.name = query->name;
	inner_query.query.operation = VDO_INDEX_QUERY;
	inner_query.query.callback = inner_done;
	vdo_query_index(index, &inner_query.query);
	in_outer_callback--;
	query_done(query);
}

static void test_query_from_callback(void **state)
{
	struct vdo_dedupe_index *index;
	struct test_query outer;

	(void) state;
	index = open_index(true);
	assert_answer(run_query(index, VDO_INDEX_POST, 9, 99), VDO_INDEX_OK, false, 0);
	memset(&outer, 0, sizeof(outer));
	make_query_name(9, &outer.query.name);
	outer.query.operation = VDO_INDEX_QUERY;
	outer.query.callback = outer_done;
	submitting++;
	vdo_query_index(index, &outer.query);
	submitting--;
	assert_answer(wait_answered(&outer), VDO_INDEX_OK, true, 99);
	assert_answer(wait_answered(&inner_query), VDO_INDEX_OK, true, 99);
	/* The inner query's callback did not run inside the outer one's. */
	assert_false(atomic_load(&inner_nested));
	assert_success(vdo_close_dedupe_index(index));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bad_configs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_update_query_and_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unavailable_while_opening, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_waits_for_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rebuild_after_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_in_flight_and_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query_from_callback, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
