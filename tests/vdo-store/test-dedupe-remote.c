// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of the remote dedupe index (dedupe-index.h) and of libudsclient's fail_fast option
 * against the real uds-indexd, which each test starts (fork and exec) in a temporary directory
 * of its own, plain text on a unix socket: answers through the daemon (many in flight from
 * several threads, and a close while they are), the index's identity (a wrong nonce, no such
 * index, a server that is not there, one that comes up after the open), a daemon killed
 * (queries answer UNAVAILABLE at once; after a restart the client reconnects on its own), a
 * daemon stopped (queries answer TIMED_OUT after their timeout; then it continues), and
 * libudsclient with and without fail_fast while its reconnects hang.
 *
 * Clients reach the daemon through a symbolic link to its socket, so that a test can put a
 * "black hole" (a socket that accepts connections and never speaks) in its place before it kills
 * the daemon: every reconnect then hangs, which shows what fail_fast changes without depending
 * on when the client's reconnects happen.
 *
 * Waits are for conditions (an answer, a state, a daemon that serves) with a deadline only a
 * hang reaches; the only times asserted are bounds far from what they separate (an answer "at
 * once" within a second, against a timeout of five or two seconds).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dedupe-queries.h"
#include "udsclient.h"

enum {
	/* A remote query's timeout in the tests that do not wait for one, ms. */
	LONG_TIMEOUT_MS = 5000,
	/* In the test of a stopped daemon. */
	SHORT_TIMEOUT_MS = 300,
	/* The libudsclient tests' timeout. */
	CLIENT_TIMEOUT_MS = 2000,
	/* An answer "at once": far below the timeouts above. */
	AT_ONCE_MS = 1000,
	SUBMITTERS = 3,
	PER_SUBMITTER = 2000,
};

struct daemon {
	char dir[64];
	/* The daemon's socket, the link clients use, and the address of the link. */
	char socket[128];
	char link[128];
	char server[160];
	pid_t pid;
	/* A black hole in the daemon's place, or -1. */
	int hole;
};

static struct daemon daemon_;

/* ------------------------------------------------------------------------------------------ */
/* The daemon                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/** format_path() - Format a path (or an argument holding one) into @buffer; it must fit. */
static void __attribute__((format(printf, 3, 4)))
format_path(char *buffer, size_t size, const char *format, ...)
{
	va_list args;
	int length;

	va_start(args, format);
	length = vsnprintf(buffer, size, format, args);
	va_end(args);
	if ((length < 0) || ((size_t) length >= size))
		abort();
}

/** exec_daemon() - The child: become uds-indexd on the test's socket and data directory. */
static void exec_daemon(const struct daemon *d)
{
	char listen[160], data_dir[96], log_path[96];
	int log_fd;

	/* Never outlive the test, whatever happens to it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	format_path(listen, sizeof(listen), "--listen=unix:%s", d->socket);
	format_path(data_dir, sizeof(data_dir), "--data-dir=%s/data", d->dir);
	format_path(log_path, sizeof(log_path), "%s/indexd.log", d->dir);
	log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (log_fd >= 0) {
		dup2(log_fd, STDOUT_FILENO);
		dup2(log_fd, STDERR_FILENO);
	}
	/* The daemon is not under test here; its own reports would only stop it. */
	setenv("TSAN_OPTIONS", "report_bugs=0", 1);
	execl(UDS_INDEXD, "uds-indexd", listen, data_dir, "--insecure", "--log-level=info",
	      (char *) NULL);
	_exit(127);
}

/** is_serving() - One look: does the daemon answer its health check? */
static bool is_serving(const struct daemon *d)
{
	struct udsc_error error;
	struct udsc_admin *admin;
	bool serving = false;

	if (udsc_admin_open(d->server, NULL, 1000, &admin, &error) != UDSC_OK)
		return false;
	if (udsc_admin_health(admin, NULL, &serving, &error) != UDSC_OK)
		serving = false;
	udsc_admin_close(admin);
	return serving;
}

/** start_daemon() - Start (or restart) the daemon and wait until it serves. */
static void start_daemon(struct daemon *d)
{
	dd_ktime_t deadline = dd_monotonic_ns() + WAIT_SECONDS * 1000000000LL;

	d->pid = fork();
	assert_true(d->pid >= 0);
	if (d->pid == 0)
		exec_daemon(d);
	while (!is_serving(d)) {
		int status;

		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			d->pid = 0;
			fail_msg("uds-indexd exited (status %#x): see %s/indexd.log", status,
			         d->dir);
		}
		if (dd_monotonic_ns() > deadline)
			fail_msg("uds-indexd did not serve in %d s", WAIT_SECONDS);
		dd_sleep_ns(50 * 1000 * 1000);
	}
}

/**
 * signal_daemon() - Send @signal and wait until it took effect: the daemon is gone (SIGKILL,
 *                   SIGTERM), stopped (every thread: SIGSTOP) or running again (SIGCONT).
 */
static void signal_daemon(struct daemon *d, int signal)
{
	int status;

	assert_true(d->pid > 0);
	assert_int_equal(kill(d->pid, signal), 0);
	if (signal == SIGSTOP) {
		assert_int_equal(waitpid(d->pid, &status, WUNTRACED), d->pid);
		assert_true(WIFSTOPPED(status));
	} else if (signal == SIGCONT) {
		assert_int_equal(waitpid(d->pid, &status, WCONTINUED), d->pid);
		assert_true(WIFCONTINUED(status));
	} else {
		assert_int_equal(waitpid(d->pid, NULL, 0), d->pid);
		d->pid = 0;
	}
}

/** create_index() - Create index @name on the daemon; return its nonce. */
static uint64_t create_index(const struct daemon *d, const char *name)
{
	struct udsc_index_info info;
	struct udsc_error error;
	struct udsc_admin *admin;

	assert_int_equal(udsc_admin_open(d->server, NULL, 30000, &admin, &error), UDSC_OK);
	if (udsc_admin_create(admin, name, 256, false, 1, NULL, &info, &error) != UDSC_OK)
		fail_msg("cannot create index %s: %s", name, error.message);
	udsc_admin_close(admin);
	assert_true(info.nonce != 0);
	return info.nonce;
}

/** point_link() - Point the clients' link at @target, atomically. */
static void point_link(const struct daemon *d, const char *target)
{
	char temporary[160];

	format_path(temporary, sizeof(temporary), "%s.new", d->link);
	unlink(temporary);
	assert_int_equal(symlink(target, temporary), 0);
	assert_int_equal(rename(temporary, d->link), 0);
}

/** open_hole() - Put a socket that accepts connections and never speaks behind the link. */
static void open_hole(struct daemon *d)
{
	struct sockaddr_un address = { .sun_family = AF_UNIX };

	format_path(address.sun_path, sizeof(address.sun_path), "%s/hole.sock", d->dir);
	d->hole = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(d->hole >= 0);
	assert_int_equal(bind(d->hole, (struct sockaddr *) &address, sizeof(address)), 0);
	assert_int_equal(listen(d->hole, 64), 0);
	point_link(d, address.sun_path);
}

/** close_hole() - Close the black hole (its waiting connections fail); link to the daemon. */
static void close_hole(struct daemon *d)
{
	char path[96];

	close(d->hole);
	d->hole = -1;
	format_path(path, sizeof(path), "%s/hole.sock", d->dir);
	unlink(path);
	point_link(d, d->socket);
}

static int remove_entry(const char *path, const struct stat *status, int flag, struct FTW *ftw)
{
	(void) status;
	(void) flag;
	(void) ftw;
	remove(path);
	return 0;
}

static int setup(void **state)
{
	struct daemon *d = &daemon_;

	(void) state;
	memset(d, 0, sizeof(*d));
	d->hole = -1;
	format_path(d->dir, sizeof(d->dir), "/tmp/test-dedupe-remote-XXXXXX");
	if (mkdtemp(d->dir) == NULL)
		return -1;
	format_path(d->socket, sizeof(d->socket), "%s/indexd.sock", d->dir);
	format_path(d->link, sizeof(d->link), "%s/link.sock", d->dir);
	format_path(d->server, sizeof(d->server), "unix:%s", d->link);
	if (symlink(d->socket, d->link) != 0)
		return -1;
	start_daemon(d);
	return 0;
}

static int teardown(void **state)
{
	struct daemon *d = &daemon_;

	(void) state;
	if (d->hole >= 0)
		close(d->hole);
	if (d->pid > 0) {
		kill(d->pid, SIGCONT);
		kill(d->pid, SIGTERM);
		waitpid(d->pid, NULL, 0);
	}
	nftw(d->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The dedupe index through the daemon                                                         */
/* ------------------------------------------------------------------------------------------ */

/** remote_config() - The config of index @name on the test's daemon. */
static struct vdo_index_config remote_config(const char *name, uint64_t nonce,
                                             unsigned int timeout_ms)
{
	return (struct vdo_index_config){
		.kind = VDO_INDEX_REMOTE,
		.index_name = name,
		.server = daemon_.server,
		.index_nonce = nonce,
		.timeout_ms = timeout_ms,
	};
}

/** open_remote() - Open a remote index and wait until it leaves the opening state. */
static struct vdo_dedupe_index *open_remote(const struct vdo_index_config *config,
                                            enum vdo_index_state expected)
{
	struct vdo_dedupe_index *index;

	assert_success(vdo_open_dedupe_index(config, &index));
	assert_int_equal(wait_opened(index), expected);
	return index;
}

/** wait_answers_ok() - Post new names until one is answered; return how many were not. */
static uint64_t wait_answers_ok(struct vdo_dedupe_index *index, uint64_t number)
{
	dd_ktime_t deadline = dd_monotonic_ns() + WAIT_SECONDS * 1000000000LL;
	uint64_t refused = 0;

	for (;;) {
		struct answer answer = run_query(index, VDO_INDEX_POST, number + refused, 1);

		if (answer.status == VDO_INDEX_OK)
			return refused;
		refused++;
		if (dd_monotonic_ns() > deadline)
			fail_msg("the index did not answer again in %d s", WAIT_SECONDS);
		dd_sleep_ns(100 * 1000 * 1000);
	}
}

struct submitter {
	struct vdo_dedupe_index *index;
	struct test_query *queries;
	unsigned int number;
	pthread_t thread;
};

/** submit_many() - A submitter thread: POST, QUERY, UPDATE of each of its names, unwaited. */
static void *submit_many(void *argument)
{
	struct submitter *submitter = argument;

	for (unsigned int i = 0; i < PER_SUBMITTER; i++) {
		uint64_t number = (submitter->number + 1) * 1000000ULL + i / 3;

		submit_query(submitter->index, &submitter->queries[i],
		             (enum vdo_index_operation)(i % 3), number, number);
	}
	return NULL;
}

/**
 * run_many() - Queries from several threads at once; close the index as soon as they are
 *              submitted if @then_close. Each is answered once: as it should be, or (closed)
 *              UNAVAILABLE.
 */
static void run_many(struct vdo_dedupe_index *index, unsigned int round, bool then_close)
{
	struct submitter submitters[SUBMITTERS];
	uint64_t before = atomic_load(&callbacks_run);

	for (unsigned int s = 0; s < SUBMITTERS; s++) {
		submitters[s] =
		    (struct submitter){ .index = index, .number = round * SUBMITTERS + s };
		submitters[s].queries = calloc(PER_SUBMITTER, sizeof(struct test_query));
		assert_non_null(submitters[s].queries);
		assert_int_equal(
		    pthread_create(&submitters[s].thread, NULL, submit_many, &submitters[s]), 0);
	}
	for (unsigned int s = 0; s < SUBMITTERS; s++)
		assert_int_equal(pthread_join(submitters[s].thread, NULL), 0);
	if (then_close) {
		assert_success(vdo_close_dedupe_index(index));
		assert_int_equal(atomic_load(&callbacks_run) - before, SUBMITTERS * PER_SUBMITTER);
	}
	for (unsigned int s = 0; s < SUBMITTERS; s++) {
		for (unsigned int i = 0; i < PER_SUBMITTER; i++) {
			uint64_t number = (submitters[s].number + 1) * 1000000ULL + i / 3;
			struct answer answer = wait_answered(&submitters[s].queries[i]);

			if (then_close && (answer.status == VDO_INDEX_UNAVAILABLE))
				continue;
			/* POST, QUERY, UPDATE of a name: QUERY and UPDATE find the POST's data. */
			assert_answer(answer, VDO_INDEX_OK, (i % 3) != 0, number);
		}
		free(submitters[s].queries);
	}
	assert_int_equal(atomic_load(&callbacks_run) - before, SUBMITTERS * PER_SUBMITTER);
}

static void test_remote_answers(void **state)
{
	uint64_t nonce = create_index(&daemon_, "vol");
	struct vdo_index_config config = remote_config("vol", nonce, 0);
	struct vdo_dedupe_index_stats stats;
	struct vdo_dedupe_index *index;

	(void) state;
	index = open_remote(&config, VDO_INDEX_ONLINE);
	assert_int_equal(vdo_dedupe_index_identity(index), nonce);
	assert_answer(run_query(index, VDO_INDEX_POST, 1, 100), VDO_INDEX_OK, false, 0);
	assert_answer(run_query(index, VDO_INDEX_POST, 1, 101), VDO_INDEX_OK, true, 100);
	assert_answer(run_query(index, VDO_INDEX_UPDATE, 1, 102), VDO_INDEX_OK, true, 100);
	assert_answer(run_query(index, VDO_INDEX_QUERY, 1, 0), VDO_INDEX_OK, true, 102);
	assert_answer(run_query(index, VDO_INDEX_QUERY, 2, 0), VDO_INDEX_OK, false, 0);
	run_many(index, 0, false);
	vdo_get_dedupe_index_stats(index, &stats);
	assert_int_equal(stats.state, VDO_INDEX_ONLINE);
	assert_int_equal(stats.posts_found, 1);
	assert_int_equal(stats.posts_not_found, 1 + SUBMITTERS * ((PER_SUBMITTER + 2) / 3));
	assert_int_equal(stats.updates_found, 1 + SUBMITTERS * (PER_SUBMITTER / 3));
	assert_int_equal(stats.queries_found, 1 + SUBMITTERS * ((PER_SUBMITTER + 1) / 3));
	assert_int_equal(stats.queries_not_found, 1);
	assert_int_equal(stats.unavailable + stats.timed_out + stats.failed, 0);
	assert_int_equal(stats.in_flight, 0);
	assert_success(vdo_close_dedupe_index(index));

	/* Without a recorded nonce, the one found is the identity. */
	config.index_nonce = 0;
	index = open_remote(&config, VDO_INDEX_ONLINE);
	assert_int_equal(vdo_dedupe_index_identity(index), nonce);
	assert_answer(run_query(index, VDO_INDEX_QUERY, 1, 0), VDO_INDEX_OK, true, 102);
	/* Closed with queries in flight: each calls back once before close returns. */
	run_many(index, 1, true);
	assert_int_equal(atomic_load(&callbacks_on_caller_stack), 0);
}

/** assert_unavailable() - A few queries answer UNAVAILABLE, at once. */
static void assert_unavailable(struct vdo_dedupe_index *index, unsigned int count)
{
	for (unsigned int n = 0; n < count; n++) {
		struct answer answer = run_query(index, (enum vdo_index_operation)(n % 3), n, n);

		assert_answer(answer, VDO_INDEX_UNAVAILABLE, false, 0);
		assert_true(answer.ms < AT_ONCE_MS);
	}
}

static void test_remote_identity(void **state)
{
	uint64_t nonce = create_index(&daemon_, "vol");
	struct vdo_index_config config = remote_config("vol", nonce + 1, 0);
	struct vdo_index_config nowhere = remote_config("vol", 0, 0);
	struct vdo_dedupe_index *index;
	char missing[160];

	(void) state;
	/* Another index under the same name: dedupe is off. */
	index = open_remote(&config, VDO_INDEX_ERROR);
	assert_int_equal(vdo_dedupe_index_identity(index), 0);
	assert_unavailable(index, 6);
	assert_success(vdo_close_dedupe_index(index));
	/* No such index on the server. */
	config = remote_config("other", 0, 0);
	index = open_remote(&config, VDO_INDEX_ERROR);
	assert_success(vdo_close_dedupe_index(index));

	/* A server that is not there: the open keeps trying, and close gives up on it. */
	format_path(missing, sizeof(missing), "unix:%s/missing.sock", daemon_.dir);
	nowhere.server = missing;
	assert_success(vdo_open_dedupe_index(&nowhere, &index));
	dd_sleep_ns(300 * 1000 * 1000);
	assert_int_equal(vdo_get_dedupe_index_state(index), VDO_INDEX_OPENING);
	assert_unavailable(index, 3);
	assert_success(vdo_close_dedupe_index(index));

	/* A server that comes up after the open: the index goes online then. */
	signal_daemon(&daemon_, SIGTERM);
	config = remote_config("vol", nonce, 0);
	assert_success(vdo_open_dedupe_index(&config, &index));
	assert_int_equal(vdo_get_dedupe_index_state(index), VDO_INDEX_OPENING);
	start_daemon(&daemon_);
	assert_int_equal(wait_opened(index), VDO_INDEX_ONLINE);
	assert_int_equal(vdo_dedupe_index_identity(index), nonce);
	assert_answer(run_query(index, VDO_INDEX_POST, 7, 70), VDO_INDEX_OK, false, 0);
	assert_success(vdo_close_dedupe_index(index));
}

/**
 * check_killed() - The daemon is gone: every query answers UNAVAILABLE at once, one by one or
 *                  many at a time, and the index stays online.
 */
static void check_killed(struct vdo_dedupe_index *index, struct test_query *queries)
{
	for (unsigned int i = 0; i < 40; i++) {
		assert_unavailable(index, 1);
		dd_sleep_ns(40 * 1000 * 1000);
	}
	for (unsigned int i = 0; i < PER_SUBMITTER; i++)
		submit_query(index, &queries[i], VDO_INDEX_POST, i, i);
	for (unsigned int i = 0; i < PER_SUBMITTER; i++) {
		struct answer answer = wait_answered(&queries[i]);

		assert_int_equal(answer.status, VDO_INDEX_UNAVAILABLE);
		assert_true(answer.ms < AT_ONCE_MS);
	}
	assert_int_equal(vdo_get_dedupe_index_state(index), VDO_INDEX_ONLINE);
}

static void test_remote_killed(void **state)
{
	uint64_t nonce = create_index(&daemon_, "vol");
	struct vdo_index_config config = remote_config("vol", nonce, LONG_TIMEOUT_MS);
	struct test_query *queries = calloc(PER_SUBMITTER, sizeof(struct test_query));
	struct vdo_dedupe_index_stats stats;
	struct vdo_dedupe_index *index;

	(void) state;
	assert_non_null(queries);
	index = open_remote(&config, VDO_INDEX_ONLINE);
	assert_answer(run_query(index, VDO_INDEX_POST, 1, 100), VDO_INDEX_OK, false, 0);
	/* Killed, and the client's reconnects hang (as with a host that does not answer). */
	open_hole(&daemon_);
	signal_daemon(&daemon_, SIGKILL);
	check_killed(index, queries);
	/* The daemon comes back: the client reconnects by itself and queries are answered. */
	close_hole(&daemon_);
	start_daemon(&daemon_);
	wait_answers_ok(index, 100);
	assert_answer(run_query(index, VDO_INDEX_POST, 2, 200), VDO_INDEX_OK, false, 0);
	assert_answer(run_query(index, VDO_INDEX_POST, 2, 201), VDO_INDEX_OK, true, 200);
	/* Killed, and its socket refuses connections. */
	signal_daemon(&daemon_, SIGKILL);
	check_killed(index, queries);
	start_daemon(&daemon_);
	wait_answers_ok(index, 200);
	vdo_get_dedupe_index_stats(index, &stats);
	assert_true(stats.unavailable >= 2 * (40 + PER_SUBMITTER));
	assert_int_equal(stats.timed_out, 0);
	assert_success(vdo_close_dedupe_index(index));
	free(queries);
}

static void test_remote_stopped(void **state)
{
	uint64_t nonce = create_index(&daemon_, "vol");
	struct vdo_index_config config = remote_config("vol", nonce, SHORT_TIMEOUT_MS);
	struct vdo_dedupe_index_stats stats;
	struct vdo_dedupe_index *index;
	struct answer answer;

	(void) state;
	index = open_remote(&config, VDO_INDEX_ONLINE);
	assert_answer(run_query(index, VDO_INDEX_POST, 1, 100), VDO_INDEX_OK, false, 0);
	signal_daemon(&daemon_, SIGSTOP);
	/* There, but not answering: the query costs its timeout. */
	answer = run_query(index, VDO_INDEX_QUERY, 1, 0);
	assert_answer(answer, VDO_INDEX_TIMED_OUT, false, 0);
	assert_true(answer.ms >= SHORT_TIMEOUT_MS - 1);
	assert_true(answer.ms < LONG_TIMEOUT_MS);
	/* The next ones time out too, or find the stream the client gave up on reconnecting. */
	for (unsigned int i = 0; i < 4; i++) {
		answer = run_query(index, VDO_INDEX_QUERY, 1, 0);
		assert_true((answer.status == VDO_INDEX_TIMED_OUT) ||
		            (answer.status == VDO_INDEX_UNAVAILABLE));
		assert_true(answer.ms < LONG_TIMEOUT_MS);
	}
	signal_daemon(&daemon_, SIGCONT);
	wait_answers_ok(index, 100);
	assert_answer(run_query(index, VDO_INDEX_QUERY, 1, 0), VDO_INDEX_OK, true, 100);
	vdo_get_dedupe_index_stats(index, &stats);
	assert_true(stats.timed_out >= 1);
	assert_success(vdo_close_dedupe_index(index));
}

/* ------------------------------------------------------------------------------------------ */
/* libudsclient: fail_fast                                                                     */
/* ------------------------------------------------------------------------------------------ */

struct probe {
	struct udsc_request request;
	atomic_bool done;
};

static void probe_done(struct udsc_request *request)
{
	atomic_store(&((struct probe *) request)->done, true);
}

/** probe() - POST one name; its status (at submit or from its callback) and how long it took. */
static enum udsc_status probe(struct udsc_client *client, uint64_t number, double *ms)
{
	dd_ktime_t start = dd_monotonic_ns();
	dd_ktime_t deadline = start + WAIT_SECONDS * 1000000000LL;
	struct probe probe;
	enum udsc_status status;

	memset(&probe, 0, sizeof(probe));
	probe.request.type = UDSC_POST;
	make_query_name(number, (struct dd_record_name *) probe.request.name);
	probe.request.callback = probe_done;
	status = udsc_submit(client, &probe.request);
	while ((status == UDSC_OK) && !atomic_load(&probe.done)) {
		if (dd_monotonic_ns() > deadline)
			fail_msg("a request was not completed in %d s", WAIT_SECONDS);
		dd_sleep_ns(WAIT_POLL_NS);
	}
	if (status == UDSC_OK)
		status = probe.request.status;
	*ms = (double) (dd_monotonic_ns() - start) / 1e6;
	return status;
}

/** open_client() - A client of index "vol" with one connection, already answering. */
static struct udsc_client *open_client(bool fail_fast)
{
	struct udsc_options options = {
		.index = "vol",
		.server = daemon_.server,
		.connections = 1,
		.timeout_ms = CLIENT_TIMEOUT_MS,
		.fail_fast = fail_fast,
	};
	struct udsc_client *client;
	char error[256];
	double ms;

	assert_int_equal(udsc_open(&options, &client, error, sizeof(error)), UDSC_OK);
	assert_int_equal(probe(client, 1, &ms), UDSC_OK);
	return client;
}

/**
 * kill_behind_hole() - Put the black hole behind the link, then kill the daemon: the stream
 *                      fails, and every reconnect hangs in the hole.
 */
static void kill_behind_hole(void)
{
	open_hole(&daemon_);
	signal_daemon(&daemon_, SIGKILL);
}

/** come_back() - Close the hole, restart the daemon, and wait until the client answers. */
static void come_back(struct udsc_client *client)
{
	dd_ktime_t deadline = dd_monotonic_ns() + WAIT_SECONDS * 1000000000LL;
	double ms;

	close_hole(&daemon_);
	start_daemon(&daemon_);
	for (uint64_t n = 1000; probe(client, n, &ms) != UDSC_OK; n++) {
		if (dd_monotonic_ns() > deadline)
			fail_msg("the client did not reconnect in %d s", WAIT_SECONDS);
		dd_sleep_ns(100 * 1000 * 1000);
	}
}

static void test_client_without_fail_fast(void **state)
{
	dd_ktime_t deadline = dd_monotonic_ns() + WAIT_SECONDS * 1000000000LL;
	struct udsc_client *client;
	bool timed_out = false;

	(void) state;
	create_index(&daemon_, "vol");
	client = open_client(false);
	kill_behind_hole();
	/* Today's behaviour, kept by default: requests wait for a reconnect that hangs. */
	for (uint64_t n = 2; !timed_out; n++) {
		double ms;
		enum udsc_status status = probe(client, n, &ms);

		assert_true((status == UDSC_UNAVAILABLE) || (status == UDSC_TIMEOUT));
		if (status == UDSC_TIMEOUT) {
			assert_true(ms >= CLIENT_TIMEOUT_MS - 1);
			timed_out = true;
		}
		if (dd_monotonic_ns() > deadline)
			fail_msg("no request waited for the reconnect in %d s", WAIT_SECONDS);
		dd_sleep_ns(20 * 1000 * 1000);
	}
	come_back(client);
	udsc_close(client);
}

static void test_client_fail_fast(void **state)
{
	struct udsc_client *client;

	(void) state;
	create_index(&daemon_, "vol");
	client = open_client(true);
	kill_behind_hole();
	/* Known down: refused at once, through several reconnects that hang. */
	for (uint64_t n = 2; n < 80; n++) {
		double ms;

		assert_int_equal(probe(client, n, &ms), UDSC_UNAVAILABLE);
		assert_true(ms < AT_ONCE_MS);
		dd_sleep_ns(30 * 1000 * 1000);
	}
	come_back(client);
	udsc_close(client);
}

#ifdef __SANITIZE_THREAD__
/*
 * gRPC and abseil are not built with ThreadSanitizer: it sees some of their memory accesses
 * (through its interceptors: memmove...) but not the atomics that order them, and reports races
 * between two of their own threads. Those are not this code's: suppressed by library.
 */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
	return "race:libabsl_\n"
	       "race:libgrpc.so\n"
	       "race:libgpr.so\n";
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_remote_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remote_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remote_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remote_stopped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_without_fail_fast, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_fail_fast, setup, teardown),
	};

	/* A write to a connection the daemon dropped must not kill the test. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
