// SPDX-License-Identifier: GPL-2.0-only
/*
 * vdo-store: the data store's program.
 *
 *   vdo-store format [OPTIONS] DEVICE     lay out a new volume on a file or block device
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

#include "block-device.h"
#include "format.h"
#include "logger.h"
#include "super-block.h"

static void __attribute__((noreturn)) usage(void)
{
	fprintf(stderr,
	        "usage: vdo-store format [--create=SIZE] [--physical-size=SIZE] "
	        "[--logical-size=SIZE]\n"
	        "                        [--slab-size=SIZE] [--slab-journal-blocks=N]\n"
	        "                        [--journal-size=SIZE] [--force] DEVICE\n"
	        "  --create=SIZE         create (or extend) a regular file of SIZE\n"
	        "  --physical-size=SIZE  use only SIZE of the device (default: all of it)\n"
	        "  --logical-size=SIZE   the volume's size as hosts see it (default: the data "
	        "space)\n"
	        "  --slab-size=SIZE      a power of two from 512K to 32G (default: scaled to the "
	        "device)\n"
	        "  --journal-size=SIZE   the recovery journal (default: 1/64 of the device)\n"
	        "  --force               format over an existing volume\n");
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
		{ NULL, 0, NULL, 0 },
	};
	struct vdo_format_config config = { 0 };
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
	result = vdo_format(device, &config, &super);
	vdo_close_device(device);
	if (result != DD_SUCCESS)
		return 1;
	print_layout(argv[optind], &super);
	return 0;
}

int main(int argc, char **argv)
{
	dd_log_set_thread_name("main");
	if (argc < 2)
		usage();
	if (strcmp(argv[1], "format") == 0)
		return format_command(argc - 1, argv + 1);
	die_usage("unknown command \"%s\"", argv[1]);
}
