// SPDX-License-Identifier: GPL-2.0-only
/*
 * uds-indexd: the deduplication index as a gRPC service.
 *
 *   uds-indexd [--listen=ADDRESS]... [--data-dir=DIR] [--workers=N] [--log-level=LEVEL]
 *
 * ADDRESS is host:port or unix:PATH; without TLS only loopback and unix sockets are accepted.
 * The main thread starts the indexes of the catalog and the rpc workers, then waits for
 * signals: SIGTERM and SIGINT stop the server (calls in progress are cancelled), save every
 * index and exit 0.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "indexd.h"
#include "logger.h"
#include "memory-alloc.h"

enum {
	MAX_ADDRESSES = 16,
};

struct options {
	const char *addresses[MAX_ADDRESSES];
	unsigned int address_count;
	const char *data_dir;
	unsigned int workers;
};

static void usage(void)
{
	fprintf(stderr, "usage: uds-indexd [--listen=HOST:PORT|unix:PATH]... [--data-dir=DIR]\n"
	                "                  [--workers=N] [--log-level=error|warning|info|debug]\n");
	exit(2);
}

/* Whether an address may be served without TLS: loopback or a unix socket. */
static bool is_local_address(const char *address)
{
	return (strncmp(address, "unix:", 5) == 0) || (strncmp(address, "127.", 4) == 0) ||
	       (strncmp(address, "localhost:", 10) == 0) || (strncmp(address, "[::1]:", 6) == 0);
}

static void parse_options(int argc, char **argv, struct options *options)
{
	static const struct option long_options[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "workers", required_argument, NULL, 'w' },
		{ "log-level", required_argument, NULL, 'L' },
		{ NULL, 0, NULL, 0 },
	};
	enum dd_log_level level;
	int option;

	while ((option = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		switch (option) {
		case 'l':
			if (options->address_count == MAX_ADDRESSES)
				usage();
			options->addresses[options->address_count++] = optarg;
			break;
		case 'd':
			options->data_dir = optarg;
			break;
		case 'w':
			options->workers = (unsigned int) strtoul(optarg, NULL, 0);
			break;
		case 'L':
			if (dd_log_parse_level(optarg, &level) != DD_SUCCESS)
				usage();
			dd_log_set_level(level);
			break;
		default:
			usage();
		}
	}
	if ((optind != argc) || (options->workers == 0) || (options->workers > 64))
		usage();
	if (options->address_count == 0)
		options->addresses[options->address_count++] = "127.0.0.1:7400";
	for (unsigned int a = 0; a < options->address_count; a++) {
		if (!is_local_address(options->addresses[a])) {
			fprintf(stderr,
			        "uds-indexd: %s is not loopback or a unix socket: without TLS, "
			        "only those are served\n",
			        options->addresses[a]);
			exit(2);
		}
	}
}

static int start_admin_thread(struct indexd *daemon)
{
	struct dd_thread_set_config config = dd_default_thread_set_config("udsadmin", 1);

	config.spin_ns = 0;
	return dd_make_thread_set(&config, &daemon->admin_thread);
}

/* Wait for SIGTERM or SIGINT (blocked in every thread, so that only this one takes them). */
static void wait_for_stop(const sigset_t *signals)
{
	for (;;) {
		int signal_number;

		if ((sigwait(signals, &signal_number) == 0) &&
		    ((signal_number == SIGTERM) || (signal_number == SIGINT))) {
			dd_log_info("signal %d: stopping", signal_number);
			return;
		}
	}
}

int main(int argc, char **argv)
{
	struct options options = { .data_dir = "uds-indexd-data", .workers = 2 };
	struct rpc_method methods[16];
	struct rpc_server_config config;
	struct rpc_server *server;
	struct indexd daemon = { 0 };
	const struct rpc_method *table;
	size_t method_count = 0;
	size_t count;
	sigset_t signals;
	int result;

	dd_log_set_thread_name("main");
	parse_options(argc, argv, &options);
	sigemptyset(&signals);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);
	signal(SIGPIPE, SIG_IGN);

	result = start_admin_thread(&daemon);
	if (result == DD_SUCCESS)
		result = registry_open(options.data_dir, &daemon.registry);
	if (result != DD_SUCCESS)
		return 1;
	table = indexd_admin_methods(&daemon, &count);
	memcpy(methods, table, count * sizeof(*table));
	method_count = count;
	table = indexd_advice_methods(&daemon, &count);
	if (method_count + count > sizeof(methods) / sizeof(methods[0]))
		return 1;
	memcpy(methods + method_count, table, count * sizeof(*table));
	method_count += count;
	config = (struct rpc_server_config){
		.addresses = options.addresses,
		.address_count = options.address_count,
		.workers = options.workers,
		.max_message_bytes = 4 * 1024 * 1024,
	};
	result = rpc_server_start(&config, methods, method_count, &server);
	if (result != DD_SUCCESS) {
		registry_close(daemon.registry);
		dd_free_thread_set(daemon.admin_thread);
		return 1;
	}
	dd_log_info("uds-indexd serving (data directory %s)", options.data_dir);
	wait_for_stop(&signals);
	atomic_store(&daemon.stopping, true);
	rpc_server_stop(server);
	dd_free_thread_set(daemon.admin_thread);
	registry_close(daemon.registry);
	dd_log_info("uds-indexd stopped; every index saved");
	return 0;
}
