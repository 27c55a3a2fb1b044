// SPDX-License-Identifier: GPL-2.0-only
/*
 * uds-indexd: the deduplication index as a gRPC service.
 *
 *   uds-indexd [--config=FILE] [--listen=ADDRESS]... [--data-dir=DIR] [--workers=N]
 *              [--tls-cert=FILE --tls-key=FILE [--tls-client-ca=FILE]] [--insecure]
 *              [--tokens=FILE] [--metrics=HOST:PORT] [--stream-window=N] [--log-level=LEVEL]
 *
 * ADDRESS is HOST:PORT or unix:PATH. With a certificate every listener speaks TLS (mutual TLS
 * with a client CA); without one, --insecure must be given and only loopback addresses and
 * unix sockets are accepted. The config file holds the same settings, one "name = value" (or
 * "name" for a switch) per line; flags on the command line take precedence, and --listen flags
 * replace the file's listen lines. deploy/uds-indexd.conf is a documented example.
 *
 * The main thread opens the indexes of the catalog, starts the rpc workers and the metrics
 * server, then waits for signals: SIGHUP reloads the tokens and TLS files; SIGTERM and SIGINT
 * stop the server (calls in progress are cancelled), save every index and exit 0.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "indexd.h"
#include "logger.h"
#include "memory-alloc.h"
#include "metrics.h"
#include "tls.h"

enum {
	MAX_ADDRESSES = 16,
	CONFIG_LINE_MAX = 4096,
	/* Options without a short form. */
	OPTION_LISTEN = 256,
	OPTION_DATA_DIR,
	OPTION_WORKERS,
	OPTION_LOG_LEVEL,
	OPTION_TLS_CERT,
	OPTION_TLS_KEY,
	OPTION_TLS_CLIENT_CA,
	OPTION_INSECURE,
	OPTION_TOKENS,
	OPTION_METRICS,
	OPTION_STREAM_WINDOW,
	OPTION_CONFIG,
};

struct options {
	const char *addresses[MAX_ADDRESSES];
	unsigned int address_count;
	/* The addresses came from the command line (which then replaces the config file's). */
	bool addresses_from_command_line;
	const char *data_dir;
	unsigned int workers;
	const char *tls_cert;
	const char *tls_key;
	const char *tls_client_ca;
	bool insecure;
	const char *tokens;
	const char *metrics;
	unsigned int stream_window;
	/* Strings read from the config file, freed at exit. */
	char *config_strings[64];
	unsigned int config_string_count;
};

static const struct option long_options[] = {
	{ "config", required_argument, NULL, OPTION_CONFIG },
	{ "listen", required_argument, NULL, OPTION_LISTEN },
	{ "data-dir", required_argument, NULL, OPTION_DATA_DIR },
	{ "workers", required_argument, NULL, OPTION_WORKERS },
	{ "log-level", required_argument, NULL, OPTION_LOG_LEVEL },
	{ "tls-cert", required_argument, NULL, OPTION_TLS_CERT },
	{ "tls-key", required_argument, NULL, OPTION_TLS_KEY },
	{ "tls-client-ca", required_argument, NULL, OPTION_TLS_CLIENT_CA },
	{ "insecure", no_argument, NULL, OPTION_INSECURE },
	{ "tokens", required_argument, NULL, OPTION_TOKENS },
	{ "metrics", required_argument, NULL, OPTION_METRICS },
	{ "stream-window", required_argument, NULL, OPTION_STREAM_WINDOW },
	{ NULL, 0, NULL, 0 },
};

static void __attribute__((noreturn)) usage(void)
{
	fprintf(stderr,
	        "usage: uds-indexd [--config=FILE] [--listen=HOST:PORT|unix:PATH]...\n"
	        "                  [--data-dir=DIR] [--workers=N]\n"
	        "                  [--tls-cert=FILE --tls-key=FILE [--tls-client-ca=FILE]]\n"
	        "                  [--insecure] [--tokens=FILE] [--metrics=HOST:PORT]\n"
	        "                  [--stream-window=N] [--log-level=error|warning|info|debug]\n");
	exit(2);
}

static void __attribute__((noreturn, format(printf, 1, 2))) refuse(const char *format, ...)
{
	va_list args;

	fputs("uds-indexd: ", stderr);
	va_start(args, format);
	vfprintf(stderr, format, args);
	va_end(args);
	fputc('\n', stderr);
	exit(2);
}

static unsigned int parse_count(const char *name, const char *value, unsigned int most)
{
	char *end;
	unsigned long number = strtoul(value, &end, 10);

	if ((*value == '\0') || (*end != '\0') || (number == 0) || (number > most))
		refuse("--%s must be a number from 1 to %u, not \"%s\"", name, most, value);
	return (unsigned int) number;
}

/* Apply one setting, from the command line or the config file. */
static void apply_option(struct options *options, int option, char *value, bool command_line)
{
	enum dd_log_level level;

	switch (option) {
	case OPTION_LISTEN:
		if (command_line && !options->addresses_from_command_line) {
			options->address_count = 0;
			options->addresses_from_command_line = true;
		}
		if (options->address_count == MAX_ADDRESSES)
			refuse("at most %u listen addresses", MAX_ADDRESSES);
		options->addresses[options->address_count++] = value;
		break;
	case OPTION_DATA_DIR:
		options->data_dir = value;
		break;
	case OPTION_WORKERS:
		options->workers = parse_count("workers", value, 64);
		break;
	case OPTION_LOG_LEVEL:
		if (dd_log_parse_level(value, &level) != DD_SUCCESS)
			refuse("unknown log level \"%s\"", value);
		dd_log_set_level(level);
		break;
	case OPTION_TLS_CERT:
		options->tls_cert = value;
		break;
	case OPTION_TLS_KEY:
		options->tls_key = value;
		break;
	case OPTION_TLS_CLIENT_CA:
		options->tls_client_ca = value;
		break;
	case OPTION_INSECURE:
		options->insecure = (value == NULL) || (strcmp(value, "true") == 0) ||
		                    (strcmp(value, "yes") == 0) || (strcmp(value, "1") == 0);
		break;
	case OPTION_TOKENS:
		options->tokens = value;
		break;
	case OPTION_METRICS:
		options->metrics = value;
		break;
	case OPTION_STREAM_WINDOW:
		options->stream_window = parse_count("stream-window", value, 1024);
		break;
	default:
		usage();
	}
}

static char *trim(char *text)
{
	char *end;

	while ((*text == ' ') || (*text == '\t'))
		text++;
	end = text + strlen(text);
	while ((end > text) &&
	       ((end[-1] == ' ') || (end[-1] == '\t') || (end[-1] == '\n') || (end[-1] == '\r')))
		*--end = '\0';
	return text;
}

/* Apply one "name = value" or "name" line of the config file. */
static void apply_config_line(struct options *options, const char *path, unsigned int number,
                              char *line)
{
	char *equals = strchr(line, '=');
	char *name = line;
	char *value = NULL;
	const struct option *known;

	if (equals != NULL) {
		*equals = '\0';
		value = trim(equals + 1);
	}
	name = trim(name);
	for (known = long_options; known->name != NULL; known++) {
		if (strcmp(known->name, name) == 0)
			break;
	}
	if ((known->name == NULL) || (known->val == OPTION_CONFIG))
		refuse("%s:%u: unknown setting \"%s\"", path, number, name);
	if ((known->has_arg == required_argument) && ((value == NULL) || (*value == '\0')))
		refuse("%s:%u: \"%s\" needs a value", path, number, name);
	if (value != NULL) {
		if (options->config_string_count ==
		    sizeof(options->config_strings) / sizeof(options->config_strings[0]))
			refuse("%s: too many settings", path);
		value = strdup(value);
		if (value == NULL)
			refuse("out of memory");
		options->config_strings[options->config_string_count++] = value;
	}
	apply_option(options, known->val, value, false);
}

static void read_config(struct options *options, const char *path)
{
	char line[CONFIG_LINE_MAX];
	unsigned int number = 0;
	FILE *file = fopen(path, "re");

	if (file == NULL)
		refuse("cannot open config file %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), file) != NULL) {
		char *text = trim(line);

		number++;
		if ((*text == '\0') || (*text == '#'))
			continue;
		apply_config_line(options, path, number, text);
	}
	fclose(file);
}

/* Whether an address may be served without TLS: loopback or a unix socket. */
static bool is_local_address(const char *address)
{
	return (strncmp(address, "unix:", 5) == 0) || (strncmp(address, "127.", 4) == 0) ||
	       (strncmp(address, "localhost:", 10) == 0) || (strncmp(address, "[::1]:", 6) == 0);
}

static void check_options(const struct options *options)
{
	if ((options->tls_cert == NULL) != (options->tls_key == NULL))
		refuse("--tls-cert and --tls-key go together");
	if ((options->tls_client_ca != NULL) && (options->tls_cert == NULL))
		refuse("--tls-client-ca needs --tls-cert and --tls-key");
	if ((options->tls_cert != NULL) && options->insecure)
		refuse("--insecure and --tls-cert exclude each other");
	if ((options->tls_cert == NULL) && !options->insecure)
		refuse("give a TLS certificate (--tls-cert, --tls-key), or --insecure to serve "
		       "loopback and unix sockets in plain text");
	for (unsigned int a = 0; a < options->address_count; a++) {
		if (options->insecure && !is_local_address(options->addresses[a]))
			refuse("%s is not loopback or a unix socket: without TLS only those are "
			       "served",
			       options->addresses[a]);
	}
}

static void parse_options(int argc, char **argv, struct options *options)
{
	int option;

	/* The config file first, wherever --config is, so that flags override it. */
	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--config=", 9) == 0)
			read_config(options, argv[i] + 9);
		else if ((strcmp(argv[i], "--config") == 0) && (i + 1 < argc))
			read_config(options, argv[++i]);
	}
	while ((option = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		if (option == OPTION_CONFIG)
			continue;
		if (option == '?')
			usage();
		apply_option(options, option, optarg, true);
	}
	if (optind != argc)
		usage();
	if (options->address_count == 0)
		options->addresses[options->address_count++] = "127.0.0.1:7400";
	check_options(options);
}

static int start_admin_thread(struct indexd *daemon)
{
	struct dd_thread_set_config config = dd_default_thread_set_config("udsadmin", 1);

	config.spin_ns = 0;
	return dd_make_thread_set(&config, &daemon->admin_thread);
}

/* Gather the methods of every service into the daemon's table. */
static int gather_methods(struct indexd *daemon)
{
	const struct rpc_method *(*services[])(struct indexd *, size_t *) = {
		indexd_admin_methods,
		indexd_advice_methods,
	};

	for (size_t s = 0; s < sizeof(services) / sizeof(services[0]); s++) {
		size_t count;
		const struct rpc_method *table = services[s](daemon, &count);

		if (daemon->method_count + count > INDEXD_MAX_METHODS)
			return DD_OUT_OF_RANGE;
		memcpy(daemon->methods + daemon->method_count, table, count * sizeof(*table));
		daemon->method_count += count;
	}
	return DD_SUCCESS;
}

static int start_rpc(struct indexd *daemon, const struct options *options, struct tls_identity *tls)
{
	struct rpc_listener listeners[MAX_ADDRESSES];
	struct rpc_server_config config = {
		.listeners = listeners,
		.listener_count = options->address_count,
		.workers = options->workers,
		.max_message_bytes = 4 * 1024 * 1024,
		.stream_window = options->stream_window,
	};

	for (unsigned int a = 0; a < options->address_count; a++) {
		listeners[a] = (struct rpc_listener){ .address = options->addresses[a] };
		if (tls != NULL) {
			listeners[a].credentials = tls_credentials(tls);
			if (listeners[a].credentials == NULL)
				return DD_INVALID_ARGUMENT;
		}
	}
	return rpc_server_start(&config, daemon->methods, daemon->method_count, &daemon->server);
}

/* Serve until SIGTERM or SIGINT; SIGHUP reloads tokens and certificates. */
static void serve_signals(const sigset_t *signals, struct indexd *daemon, struct tls_identity *tls)
{
	for (;;) {
		int signal_number;

		if (sigwait(signals, &signal_number) != 0)
			continue;
		if ((signal_number == SIGTERM) || (signal_number == SIGINT)) {
			dd_log_info("signal %d: stopping", signal_number);
			return;
		}
		if (signal_number == SIGHUP) {
			dd_log_info("SIGHUP: reloading tokens and TLS files");
			access_reload(daemon->access);
			if (tls != NULL)
				tls_reload(tls);
		}
	}
}

static void free_options(struct options *options)
{
	for (unsigned int i = 0; i < options->config_string_count; i++)
		free(options->config_strings[i]);
}

int main(int argc, char **argv)
{
	struct options options = { .data_dir = "uds-indexd-data",
		                   .workers = 2,
		                   .stream_window = 16 };
	struct metrics_server *metrics = NULL;
	struct tls_identity *tls = NULL;
	struct indexd daemon = { 0 };
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

	result = gather_methods(&daemon);
	if (result == DD_SUCCESS)
		result = access_open(options.tokens, &daemon.access);
	if ((result == DD_SUCCESS) && (options.tls_cert != NULL))
		result = tls_open(options.tls_cert, options.tls_key, options.tls_client_ca, &tls);
	if (result == DD_SUCCESS)
		result = start_admin_thread(&daemon);
	if (result == DD_SUCCESS)
		result = registry_open(options.data_dir, &daemon.registry);
	if (result == DD_SUCCESS)
		result = start_rpc(&daemon, &options, tls);
	if ((result == DD_SUCCESS) && (options.metrics != NULL))
		result = metrics_start(options.metrics, &daemon, &metrics);
	if (result != DD_SUCCESS) {
		dd_log_error("uds-indexd cannot start");
		if (daemon.server != NULL)
			rpc_server_stop(daemon.server);
		if (daemon.registry != NULL)
			registry_close(daemon.registry);
		if (daemon.admin_thread != NULL)
			dd_free_thread_set(daemon.admin_thread);
		tls_close(tls);
		access_close(daemon.access);
		free_options(&options);
		return 1;
	}
	if (!access_enabled(daemon.access))
		dd_log_warning("no tokens file: every client may use and manage every index");
	dd_log_info("uds-indexd serving (data directory %s)", options.data_dir);
	serve_signals(&signals, &daemon, tls);
	atomic_store(&daemon.stopping, true);
	metrics_stop(metrics);
	rpc_server_stop(daemon.server);
	dd_free_thread_set(daemon.admin_thread);
	registry_close(daemon.registry);
	tls_close(tls);
	access_close(daemon.access);
	free_options(&options);
	dd_log_info("uds-indexd stopped; every index saved");
	return 0;
}
