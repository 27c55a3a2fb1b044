// SPDX-License-Identifier: GPL-2.0-only
/*
 * vdo-store: the data store's program.
 *
 *   vdo-store format [OPTIONS] DEVICE     lay out a new volume on a file or block device
 *   vdo-store stats [--json] DEVICE        vdostats-style figures of a stopped volume
 *   vdo-store check DEVICE                 audit a stopped volume (exit 1 on any problem)
 *   vdo-store rebuild DEVICE               read-only rebuild: recompute every reference count
 *   vdo-store grow-logical --size=SIZE DEVICE
 *                                          make the volume larger as hosts see it
 *   vdo-store grow-physical DEVICE         use storage the device has gained
 *
 * Sizes take a suffix K, M, G or T (powers of 1024) and must be whole 4 KiB blocks. Exit
 * status: 0 on success, 1 when the operation failed, 2 for bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "block-device.h"
#include "format.h"
#include "logger.h"
#include "super-block.h"
#include "uds.h"
#include "vdo-store.h"

static void __attribute__((noreturn)) usage(void)
{
	fprintf(stderr,
	        "usage: vdo-store stats [--json] DEVICE\n"
	        "       vdo-store check DEVICE\n"
	        "       vdo-store rebuild DEVICE\n"
	        "       vdo-store grow-logical --size=SIZE DEVICE\n"
	        "       vdo-store grow-physical DEVICE\n"
	        "       vdo-store format [--create=SIZE] [--physical-size=SIZE] "
	        "[--logical-size=SIZE]\n"
	        "                        [--slab-size=SIZE] [--slab-journal-blocks=N]\n"
	        "                        [--journal-size=SIZE] [--force]\n"
	        "                        [--index=none|embedded|remote [--index-memory=MB] "
	        "[--sparse]\n"
	        "                        [--index-name=NAME]] DEVICE\n"
	        "  --create=SIZE         create (or extend) a regular file of SIZE\n"
	        "  --physical-size=SIZE  use only SIZE of the device (default: all of it)\n"
	        "  --logical-size=SIZE   the volume's size as hosts see it (default: the data "
	        "space)\n"
	        "  --slab-size=SIZE      a power of two from 512K to 32G (default: scaled to the "
	        "device)\n"
	        "  --journal-size=SIZE   the recovery journal (default: 1/64 of the device)\n"
	        "  --force               format over an existing volume\n"
	        "  --index=KIND          the dedupe index: none (default), embedded (in a region "
	        "of the\n"
	        "                        volume, created on first use) or remote (uds-indexd)\n"
	        "  --index-memory=MB     an embedded index's memory: 256, 512, 768 or N*1024 "
	        "(default 256)\n"
	        "  --sparse              a sparse embedded index (10x the window, same memory)\n"
	        "  --index-name=NAME     the remote index's name\n");
	exit(2);
}

static void __attribute__((noreturn, format(printf, 1, 2))) die_usage(const char *format, ...)
{
	va_list args;

	fprintf(stderr, "vdo-store: ");
	va_start(args, format);
	vfprintf(stderr, format, args);
	va_end(args);
	fprintf(stderr, "\n");
	exit(2);
}

/* A size in bytes with an optional K/M/G/T suffix, as whole blocks. */
static uint64_t parse_blocks(const char *option, const char *text)
{
	char *end;
	uint64_t value;
	unsigned int shift = 0;

	errno = 0;
	value = strtoull(text, &end, 10);
	if ((errno != 0) || (end == text))
		die_usage("%s: \"%s\" is not a size", option, text);
	switch (*end) {
	case 'T':
	case 't':
		shift += 10;
		/* fall through */
	case 'G':
	case 'g':
		shift += 10;
		/* fall through */
	case 'M':
	case 'm':
		shift += 10;
		/* fall through */
	case 'K':
	case 'k':
		shift += 10;
		end++;
		break;
	default:
		break;
	}
	if ((*end != '\0') || (value > (UINT64_MAX >> shift)))
		die_usage("%s: \"%s\" is not a size", option, text);
	value <<= shift;
	if ((value == 0) || (value % VDO_BLOCK_SIZE != 0))
		die_usage("%s: %s is not a positive multiple of 4K", option, text);
	return value / VDO_BLOCK_SIZE;
}

static uint32_t to_u32(const char *option, uint64_t value)
{
	if (value > UINT32_MAX)
		die_usage("%s is too large", option);
	return (uint32_t) value;
}

static void print_index(const struct vdo_index_record *index, const struct vdo_layout *layout)
{
	switch (index->kind) {
	case VDO_INDEX_RECORD_NONE:
		printf("  dedupe index        none\n");
		return;
	case VDO_INDEX_RECORD_EMBEDDED:
		printf("  dedupe index        embedded, %u MB%s, %" PRIu64 " blocks at %" PRIu64
		       "\n",
		       index->memory_mb, index->sparse ? " sparse" : "", layout->index_blocks,
		       layout->index_origin);
		return;
	case VDO_INDEX_RECORD_REMOTE:
		printf("  dedupe index        remote, \"%s\"\n", index->name);
		return;
	}
}

static void print_layout(const char *path, const struct vdo_super_block *super)
{
	const struct vdo_layout *layout = &super->layout;

	printf("%s: formatted\n", path);
	printf("  logical size        %" PRIu64 " blocks (%.2f GiB)\n", layout->logical_blocks,
	       layout->logical_blocks / 262144.0);
	printf("  physical size       %" PRIu64 " blocks (%.2f GiB)\n", layout->physical_blocks,
	       layout->physical_blocks / 262144.0);
	printf("  slabs               %u of %u blocks (%u data, %u reference count, %u journal)\n",
	       layout->slab_count, layout->slab_blocks, layout->slab_data_blocks,
	       layout->slab_ref_blocks, layout->slab_journal_blocks);
	printf("  data blocks         %" PRIu64 "\n", vdo_data_blocks(layout));
	printf("  recovery journal    %u blocks\n", layout->journal_blocks);
	printf("  overhead            %" PRIu64 " blocks\n", vdo_overhead_blocks(layout));
	print_index(&super->index, layout);
}

static enum vdo_index_record_kind parse_index_kind(const char *text)
{
	if (strcmp(text, "none") == 0)
		return VDO_INDEX_RECORD_NONE;
	if (strcmp(text, "embedded") == 0)
		return VDO_INDEX_RECORD_EMBEDDED;
	if (strcmp(text, "remote") == 0)
		return VDO_INDEX_RECORD_REMOTE;
	die_usage("--index takes none, embedded or remote, not %s", text);
}

/* The blocks an embedded index of @index's shape needs. */
static uint64_t index_region_blocks(const struct vdo_index_record *index)
{
	struct uds_parameters parameters = { .memory_mb = index->memory_mb,
		                             .sparse = index->sparse };
	uint64_t bytes;

	if (uds_compute_index_size(&parameters, &bytes) != DD_SUCCESS)
		die_usage("an index of %u MB cannot be made; use 256, 512, 768 or a multiple of "
		          "1024",
		          index->memory_mb);
	return (bytes + VDO_BLOCK_SIZE - 1) / VDO_BLOCK_SIZE;
}

static int format_command(int argc, char **argv)
{
	static const struct option options[] = {
		{ "create", required_argument, NULL, 'c' },
		{ "physical-size", required_argument, NULL, 'p' },
		{ "logical-size", required_argument, NULL, 'l' },
		{ "slab-size", required_argument, NULL, 's' },
		{ "slab-journal-blocks", required_argument, NULL, 'J' },
		{ "journal-size", required_argument, NULL, 'j' },
		{ "force", no_argument, NULL, 'f' },
		{ "index", required_argument, NULL, 'i' },
		{ "index-memory", required_argument, NULL, 'm' },
		{ "sparse", no_argument, NULL, 'S' },
		{ "index-name", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	struct vdo_format_config config = { 0 };
	struct vdo_index_record index = { .kind = VDO_INDEX_RECORD_NONE, .memory_mb = 256 };
	struct vdo_super_block super;
	struct block_device *device;
	uint64_t create_blocks = 0;
	bool force = false;
	int option;
	int result;

	while ((option = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (option) {
		case 'c':
			create_blocks = parse_blocks("--create", optarg);
			break;
		case 'p':
			config.physical_blocks = parse_blocks("--physical-size", optarg);
			break;
		case 'l':
			config.logical_blocks = parse_blocks("--logical-size", optarg);
			break;
		case 's':
			config.slab_blocks =
			    to_u32("--slab-size", parse_blocks("--slab-size", optarg));
			break;
		case 'J':
			config.slab_journal_blocks =
			    to_u32("--slab-journal-blocks", strtoull(optarg, NULL, 10));
			if (config.slab_journal_blocks == 0)
				die_usage("--slab-journal-blocks must be a positive number");
			break;
		case 'j':
			config.recovery_journal_blocks =
			    to_u32("--journal-size", parse_blocks("--journal-size", optarg));
			break;
		case 'f':
			force = true;
			break;
		case 'i':
			index.kind = parse_index_kind(optarg);
			break;
		case 'm':
			index.memory_mb = to_u32("--index-memory", strtoull(optarg, NULL, 10));
			break;
		case 'S':
			index.sparse = true;
			break;
		case 'n':
			if (strlen(optarg) > VDO_INDEX_NAME_BYTES)
				die_usage("--index-name takes at most %d characters",
				          VDO_INDEX_NAME_BYTES);
			snprintf(index.name, sizeof(index.name), "%s", optarg);
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1)
		usage();
	result = vdo_open_file_device(argv[optind], create_blocks, &device);
	if (result != DD_SUCCESS)
		return 1;
	if (!force && (vdo_load_super_block(device, &super) == DD_SUCCESS)) {
		fprintf(
		    stderr,
		    "vdo-store: %s already holds a volume (%s); use --force to format over it\n",
		    argv[optind], vdo_state_name(super.state));
		vdo_close_device(device);
		return 1;
	}
	if ((index.kind == VDO_INDEX_RECORD_REMOTE) && (index.name[0] == '\0'))
		die_usage("--index=remote needs --index-name");
	if (index.kind == VDO_INDEX_RECORD_EMBEDDED)
		config.index_blocks = index_region_blocks(&index);
	result = vdo_format_with_index(device, &config, &index, &super);
	vdo_close_device(device);
	if (result != DD_SUCCESS)
		return 1;
	print_layout(argv[optind], &super);
	return 0;
}

/* The device of a command that takes only a device (and the options it lists). */
static const char *device_argument(int argc, char **argv, const struct option *options,
                                   void (*take)(int option, const char *argument))
{
	int option;

	while ((option = getopt_long(argc, argv, "", options, NULL)) != -1) {
		if ((option == '?') || (take == NULL))
			usage();
		take(option, optarg);
	}
	if (optind != argc - 1)
		usage();
	return argv[optind];
}

static struct block_device *open_device(const char *path)
{
	struct block_device *device;

	if (vdo_open_file_device(path, 0, &device) != DD_SUCCESS)
		exit(1);
	return device;
}

static struct vdo_store *open_volume(struct block_device *device)
{
	struct vdo_store_config config = { .no_dedupe = true };
	struct vdo_store *store;

	if (vdo_store_open(device, &config, &store) != DD_SUCCESS) {
		vdo_close_device(device);
		exit(1);
	}
	return store;
}

static bool json;

static void take_json(int option, const char *argument)
{
	(void) option;
	(void) argument;
	json = true;
}

static void print_stats(const char *path, const struct vdo_store_stats *s)
{
	uint64_t used = s->data_blocks_used + s->overhead_blocks_used;
	uint64_t saving = (s->logical_blocks_used == 0)
	                      ? 0
	                      : ((s->logical_blocks_used > s->data_blocks_used)
	                             ? 100 * (s->logical_blocks_used - s->data_blocks_used) /
	                                   s->logical_blocks_used
	                             : 0);
	const struct {
		const char *name;
		uint64_t value;
	} fields[] = {
		{ "physical blocks", s->physical_blocks },
		{ "logical blocks", s->logical_blocks },
		{ "1K-blocks", s->physical_blocks * 4 },
		{ "1K-blocks used", used * 4 },
		{ "1K-blocks available", (s->physical_blocks - used) * 4 },
		{ "data blocks used", s->data_blocks_used },
		{ "overhead blocks used", s->overhead_blocks_used },
		{ "logical blocks used", s->logical_blocks_used },
		{ "saving percent", saving },
		{ "block map data blocks", s->block_map_data_blocks },
		{ "recovery count", s->recovery_count },
		{ "slab count", s->slab_count },
		{ "slabs recovering", s->slabs_recovering },
		{ "journal entries replayed", s->recovery_entries },
		{ "read-only rebuild count", s->read_only_rebuild_count },
		{ "journal head", s->journal_head },
		{ "journal tail", s->journal_tail },
		{ "journal entries", s->journal_entries },
		{ "journal blocks written", s->journal_writes },
		{ "slab journal blocks written", s->slab_journal_blocks_written },
		{ "reference blocks written", s->ref_blocks_written },
		{ "block map pages written", s->block_map_writes },
		{ "dedupe advice valid", s->dedupe_advice_valid },
		{ "dedupe advice stale", s->dedupe_advice_stale },
		{ "dedupe advice timeouts", s->dedupe_advice_timeouts },
		{ "concurrent data matches", s->concurrent_data_matches },
		{ "concurrent hash collisions", s->concurrent_hash_collisions },
		{ "current dedupe queries", s->curr_dedupe_queries },
		{ "invalid advice PBN count", s->invalid_advice_pbn_count },
		{ "dedupe queries skipped", s->dedupe_context_busy },
		{ "entries indexed", s->entries_indexed },
		{ "posts found", s->posts_found },
		{ "posts not found", s->posts_not_found },
		{ "queries found", s->queries_found },
		{ "queries not found", s->queries_not_found },
		{ "updates found", s->updates_found },
		{ "updates not found", s->updates_not_found },
	};
	size_t count = sizeof(fields) / sizeof(fields[0]);

	if (json) {
		printf("{\"device\": \"%s\", \"operating mode\": \"%s\", \"index state\": \"%s\"",
		       path, s->operating_mode, s->index_state);
		for (size_t i = 0; i < count; i++)
			printf(", \"%s\": %" PRIu64, fields[i].name, fields[i].value);
		printf("}\n");
		return;
	}
	printf("%s:\n", path);
	printf("  %-26s : %s\n", "operating mode", s->operating_mode);
	printf("  %-26s : %s\n", "index state", s->index_state);
	for (size_t i = 0; i < count; i++)
		printf("  %-26s : %" PRIu64 "\n", fields[i].name, fields[i].value);
}

static int stats_command(int argc, char **argv)
{
	static const struct option options[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = device_argument(argc, argv, options, take_json);
	struct block_device *device = open_device(path);
	struct vdo_store *store = open_volume(device);
	struct vdo_store_stats stats;
	int result;

	vdo_store_get_stats(store, &stats);
	result = vdo_store_close(store);
	vdo_close_device(device);
	print_stats(path, &stats);
	return ((result == DD_SUCCESS) || (result == DD_READ_ONLY)) ? 0 : 1;
}

static int check_command(int argc, char **argv)
{
	static const struct option options[] = { { NULL, 0, NULL, 0 } };
	const char *path = device_argument(argc, argv, options, NULL);
	struct block_device *device = open_device(path);
	struct vdo_audit_report report;
	int result = vdo_check_volume(device, stdout, &report);

	vdo_close_device(device);
	if (result != DD_SUCCESS) {
		fprintf(stderr, "vdo-store: cannot check %s: %s\n", path, dd_strerror(result));
		return 1;
	}
	printf("%s: %" PRIu64 " tree pages, %" PRIu64 " mapped blocks, %" PRIu64
	       " zero blocks; %" PRIu64 " damaged pages, %" PRIu64 " bad mappings, %" PRIu64
	       " leaked blocks, %" PRIu64 " undercounted blocks\n",
	       path, report.tree_pages, report.mapped_blocks, report.zero_blocks, report.bad_pages,
	       report.bad_mappings, report.leaked_blocks, report.undercounted_blocks);
	return (vdo_audit_problems(&report) == 0) ? 0 : 1;
}

static int rebuild_command(int argc, char **argv)
{
	static const struct option options[] = { { NULL, 0, NULL, 0 } };
	const char *path = device_argument(argc, argv, options, NULL);
	struct block_device *device = open_device(path);
	struct vdo_audit_report report;
	int result = vdo_rebuild_volume(device, &report);

	vdo_close_device(device);
	if (result != DD_SUCCESS) {
		fprintf(stderr, "vdo-store: the rebuild of %s failed: %s\n", path,
		        dd_strerror(result));
		return 1;
	}
	printf("%s: rebuilt; %" PRIu64 " mapped blocks kept, %" PRIu64 " damaged pages and %" PRIu64
	       " bad mappings dropped\n",
	       path, report.mapped_blocks, report.bad_pages, report.bad_mappings);
	return 0;
}

static uint64_t new_logical_blocks;

static void take_size(int option, const char *argument)
{
	(void) option;
	new_logical_blocks = parse_blocks("--size", argument);
}

static int grow_logical_command(int argc, char **argv)
{
	static const struct option options[] = {
		{ "size", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = device_argument(argc, argv, options, take_size);
	struct block_device *device;
	struct vdo_store *store;
	int result;

	if (new_logical_blocks == 0)
		die_usage("grow-logical needs --size");
	device = open_device(path);
	store = open_volume(device);
	result = vdo_store_grow_logical(store, new_logical_blocks);
	if (vdo_store_close(store) != DD_SUCCESS)
		result = (result == DD_SUCCESS) ? DD_BAD_STATE : result;
	vdo_close_device(device);
	if (result != DD_SUCCESS)
		return 1;
	printf("%s: %" PRIu64 " logical blocks\n", path, new_logical_blocks);
	return 0;
}

static int grow_physical_command(int argc, char **argv)
{
	static const struct option options[] = { { NULL, 0, NULL, 0 } };
	const char *path = device_argument(argc, argv, options, NULL);
	struct block_device *device = open_device(path);
	struct vdo_store *store = open_volume(device);
	struct vdo_store_stats stats;
	int result = vdo_store_grow_physical(store);

	vdo_store_get_stats(store, &stats);
	if (vdo_store_close(store) != DD_SUCCESS)
		result = (result == DD_SUCCESS) ? DD_BAD_STATE : result;
	vdo_close_device(device);
	if (result != DD_SUCCESS)
		return 1;
	printf("%s: %" PRIu64 " physical blocks\n", path, stats.physical_blocks);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(int argc, char **argv);
	} commands[] = {
		{ "format", format_command },
		{ "stats", stats_command },
		{ "check", check_command },
		{ "rebuild", rebuild_command },
		{ "grow-logical", grow_logical_command },
		{ "grow-physical", grow_physical_command },
	};

	dd_log_set_thread_name("main");
	if (argc < 2)
		usage();
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	}
	die_usage("unknown command \"%s\"", argv[1]);
}
