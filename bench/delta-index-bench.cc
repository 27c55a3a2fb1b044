// SPDX-License-Identifier: GPL-2.0-only
/*
 * Delta index benchmarks (Google Benchmark harness around our C).
 *
 * Volume-index shape: --entries names (default 64M) spread over lists of about 256 entries when
 * full, mean delta 4096, 10-bit payload, one zone. The fill is timed once (put rate), then gets
 * of random present names (hits) and of names never added (misses) run as ordinary
 * benchmarks over the full index. Bits per entry are printed beside the theoretical
 * payload + min_bits + 1.5.
 *
 * Chapter-index shape: 65,536 records in 1,024 lists (64 per list), mean delta 65,536, 6-bit
 * payload (the record page), packed into 32 KiB immutable pages; the build-and-pack time and
 * hit/miss searches of the packed pages are measured.
 *
 * Names are deterministic from fixed seeds so runs can be compared.
 */
#include <benchmark/benchmark.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "delta-index.h"
#include "errors.h"
#include "memory-alloc.h"
}

namespace
{

uint64_t mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ULL;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	return x ^ (x >> 31);
}

void check(int result, const char *what)
{
	if (result != DD_SUCCESS) {
		std::fprintf(stderr, "%s failed: %s\n", what, dd_strerror(result));
		std::exit(1);
	}
}

/* A keyed index shape: where a 64-bit hash lands (list and key) and its full name. */
struct shape {
	uint32_t list_count;
	/* Keys per list: entries per list x mean delta. */
	uint32_t key_range;
	uint32_t mean_delta;
	uint32_t payload_bits;
};

struct placed_name {
	uint32_t list;
	uint32_t key;
	struct dd_record_name name;
};

placed_name place(const shape &s, uint64_t seed, uint64_t i)
{
	uint64_t hash = mix(seed ^ mix(i));
	uint64_t tail = mix(hash);
	placed_name p;

	p.key = (uint32_t) ((hash & 0xFFFFFFFFULL) % s.key_range);
	p.list = (uint32_t) ((hash >> 32) % s.list_count);
	std::memcpy(p.name.name, &hash, 8);
	std::memcpy(p.name.name + 8, &tail, 8);
	return p;
}

/* Add a name: a new entry, or a collision entry if its key is taken by another name. */
bool put_name(struct uds_delta_index *index, const placed_name &p, uint32_t value)
{
	struct uds_delta_entry entry;

	check(uds_get_delta_entry(index, p.list, p.key, &p.name, &entry), "search");
	if (!entry.at_end && (entry.key == p.key)) {
		if (entry.is_collision)
			return true;
		return uds_put_delta_entry(&entry, p.key, value, &p.name) == DD_SUCCESS;
	}
	return uds_put_delta_entry(&entry, p.key, value, nullptr) == DD_SUCCESS;
}

uint64_t entries_wanted = 64ULL << 20;
constexpr uint64_t kFillSeed = 0xF111;
constexpr uint64_t kMissSeed = 0x0BAD;

/* ------------------------------------------------------------------------------------------ */
/* Volume-index shape                                                                          */
/* ------------------------------------------------------------------------------------------ */

struct volume_fixture {
	shape s{};
	struct uds_delta_index *index = nullptr;
	uint64_t entries = 0;
	uint64_t failed = 0;
	double fill_seconds = 0;
};

volume_fixture volume;

void build_volume_index()
{
	struct uds_delta_index_params params = {};
	uint64_t expected_bits;

	volume.s.list_count = (uint32_t) (entries_wanted / 256);
	volume.s.mean_delta = 4096;
	volume.s.key_range = 256 * 4096;
	volume.s.payload_bits = 10;
	params.zone_count = 1;
	params.list_count = volume.s.list_count;
	params.mean_delta = volume.s.mean_delta;
	params.payload_bits = volume.s.payload_bits;
	expected_bits =
	    uds_compute_delta_index_bits(entries_wanted, params.mean_delta, params.payload_bits);
	/* The expected list bits plus 6% of free space to keep rebalancing rare. */
	params.memory_size = (size_t) (expected_bits / 8 * 106 / 100);
	params.tag = 'm';
	check(uds_make_delta_index(&params, &volume.index), "make volume-shaped index");
}

void BM_VolumeFill(benchmark::State &state)
{
	for (auto _ : state) {
		if (volume.index == nullptr)
			build_volume_index();
		uds_reset_delta_index(volume.index);
		volume.entries = 0;
		volume.failed = 0;
		for (uint64_t i = 0; i < entries_wanted; i++) {
			placed_name p = place(volume.s, kFillSeed, i);

			if (put_name(volume.index, p, (uint32_t) (i >> 16) & 1023))
				volume.entries++;
			else
				volume.failed++;
		}
	}
	struct uds_delta_index_stats stats;
	uds_get_delta_index_stats(volume.index, &stats);
	double theory = volume.s.payload_bits + uds_get_delta_min_bits(volume.s.mean_delta) + 1.5;
	double list_bits = (double) stats.used_bits / (double) stats.record_count;
	double header_bits = (double) stats.list_count * sizeof(struct uds_delta_list) * 8 /
	                     (double) stats.record_count;

	state.SetItemsProcessed((int64_t) entries_wanted);
	state.counters["entries"] = (double) stats.record_count;
	state.counters["collisions"] = (double) stats.collision_count;
	state.counters["rebalances"] = (double) stats.rebalance_count;
	state.counters["overflows"] = (double) stats.overflow_count;
	state.counters["bits_per_entry"] = list_bits;
	state.counters["theory_bits"] = theory;
	state.counters["with_headers"] = list_bits + header_bits;
	state.counters["alloc_bits"] =
	    (double) stats.memory_allocated * 8 / (double) stats.record_count;
	std::fprintf(stderr,
	             "volume-index shape: %" PRIu64 " entries in %u lists, %" PRIu64
	             " collisions, %" PRIu64 " overflows, %" PRIu64 " rebalances\n"
	             "  bits per entry: %.3f list data (theory payload + min_bits + 1.5 = %.3f, "
	             "%+.2f%%), %.3f with list headers (%+.2f%%), %.3f allocated\n",
	             (uint64_t) stats.record_count, stats.list_count,
	             (uint64_t) stats.collision_count, (uint64_t) stats.overflow_count,
	             (uint64_t) stats.rebalance_count, list_bits, theory,
	             100.0 * (list_bits - theory) / theory, list_bits + header_bits,
	             100.0 * (list_bits + header_bits - theory) / theory,
	             (double) stats.memory_allocated * 8 / (double) stats.record_count);
}

void BM_VolumeGet(benchmark::State &state, uint64_t seed)
{
	uint64_t found = 0;
	uint64_t i = 0;

	for (auto _ : state) {
		struct uds_delta_entry entry;
		placed_name p = place(volume.s, seed, mix(i++) % entries_wanted);

		check(uds_get_delta_entry(volume.index, p.list, p.key, &p.name, &entry), "get");
		found += !entry.at_end && (entry.key == p.key);
		benchmark::DoNotOptimize(entry);
	}
	state.SetItemsProcessed(state.iterations());
	state.counters["found_fraction"] = (double) found / (double) state.iterations();
	state.counters["entries_per_list"] = (double) volume.entries / (double) volume.s.list_count;
}

void BM_VolumeGetHit(benchmark::State &state)
{
	BM_VolumeGet(state, kFillSeed);
}

void BM_VolumeGetMiss(benchmark::State &state)
{
	BM_VolumeGet(state, kMissSeed);
}

/* The cost of making a name in the loops above, to subtract from them. */
void BM_NameGeneration(benchmark::State &state)
{
	uint64_t i = 0;

	for (auto _ : state) {
		placed_name p = place(volume.s, kFillSeed, mix(i++) % entries_wanted);

		benchmark::DoNotOptimize(p);
	}
	state.SetItemsProcessed(state.iterations());
}

/* ------------------------------------------------------------------------------------------ */
/* Chapter-index shape                                                                         */
/* ------------------------------------------------------------------------------------------ */

constexpr uint32_t kChapterRecords = 65536;
constexpr size_t kPageSize = 32768;
const shape kChapterShape = { 1024, 64 * 65536, 65536, 6 }; /* 64 records per list */

struct chapter_fixture {
	struct uds_delta_index *index = nullptr;
	std::vector<uint8_t> pages;
	std::vector<uds_delta_page> opened;
	uint32_t page_count = 0;
};

chapter_fixture chapter;

void build_chapter()
{
	struct uds_delta_index_params params = {};

	if (chapter.index == nullptr) {
		params.zone_count = 1;
		params.list_count = kChapterShape.list_count;
		params.mean_delta = kChapterShape.mean_delta;
		params.payload_bits = kChapterShape.payload_bits;
		params.memory_size = 1 << 20;
		params.tag = 'c';
		check(uds_make_delta_index(&params, &chapter.index), "make chapter-shaped index");
		chapter.pages.resize(64 * kPageSize);
	}
	uds_reset_delta_index(chapter.index);
	for (uint32_t i = 0; i < kChapterRecords; i++)
		put_name(chapter.index, place(kChapterShape, kFillSeed, i), i / 1024);
	chapter.page_count = 0;
	for (uint32_t first = 0; first < (kChapterShape.list_count);) {
		uint32_t count;

		check(uds_pack_delta_page(chapter.index, 7, 1, first,
		                          &chapter.pages[chapter.page_count * kPageSize], kPageSize,
		                          &count),
		      "pack");
		first += count;
		chapter.page_count++;
	}
}

void BM_ChapterBuildAndPack(benchmark::State &state)
{
	for (auto _ : state)
		build_chapter();
	state.SetItemsProcessed(state.iterations() * kChapterRecords);
	struct uds_delta_index_stats stats;
	uds_get_delta_index_stats(chapter.index, &stats);
	double bits = (double) stats.used_bits / (double) stats.record_count;
	double theory =
	    kChapterShape.payload_bits + uds_get_delta_min_bits(kChapterShape.mean_delta) + 1.5;

	state.counters["pages"] = chapter.page_count;
	state.counters["predicted_pages"] = uds_get_delta_page_count(
	    kChapterRecords, kChapterShape.list_count, kChapterShape.mean_delta,
	    kChapterShape.payload_bits, kPageSize);
	state.counters["bits_per_entry"] = bits;
	state.counters["theory_bits"] = theory;
	std::fprintf(stderr,
	             "chapter-index shape: %u records on %u pages of %zu bytes, %.3f bits per "
	             "entry (theory %.3f, %+.2f%%)\n",
	             kChapterRecords, chapter.page_count, kPageSize, bits, theory,
	             100.0 * (bits - theory) / theory);
}

void open_pages()
{
	if (chapter.index == nullptr)
		build_chapter();
	chapter.opened.resize(chapter.page_count);
	for (uint32_t p = 0; p < chapter.page_count; p++)
		check(uds_open_delta_page(&chapter.opened[p], 7, kChapterShape.mean_delta,
		                          kChapterShape.payload_bits, &chapter.pages[p * kPageSize],
		                          kPageSize),
		      "open page");
	/* The page descriptors point into themselves; fix them up after the vector settled. */
	for (auto &page : chapter.opened)
		page.index.zones = &page.zone;
}

void BM_ChapterPageOpen(benchmark::State &state)
{
	struct uds_delta_page page;

	if (chapter.index == nullptr)
		build_chapter();
	for (auto _ : state)
		check(uds_open_delta_page(&page, 7, kChapterShape.mean_delta,
		                          kChapterShape.payload_bits, chapter.pages.data(),
		                          kPageSize),
		      "open page");
	state.SetItemsProcessed(state.iterations());
	state.SetBytesProcessed(state.iterations() * (int64_t) kPageSize);
}

void BM_ChapterPageGet(benchmark::State &state, uint64_t seed)
{
	uint64_t i = 0;
	uint64_t found = 0;

	open_pages();
	for (auto _ : state) {
		placed_name p = place(kChapterShape, seed, mix(i++) % kChapterRecords);
		uint32_t page_number = 0;
		struct uds_delta_entry entry;

		while ((page_number + 1 < chapter.page_count) &&
		       (chapter.opened[page_number].highest_list_number < p.list))
			page_number++;
		uds_delta_page &page = chapter.opened[page_number];
		check(uds_get_delta_entry(&page.index, p.list - page.lowest_list_number, p.key,
		                          &p.name, &entry),
		      "page get");
		found += !entry.at_end && (entry.key == p.key);
	}
	state.SetItemsProcessed(state.iterations());
	state.counters["found_fraction"] = (double) found / (double) state.iterations();
}

void BM_ChapterPageGetHit(benchmark::State &state)
{
	BM_ChapterPageGet(state, kFillSeed);
}

void BM_ChapterPageGetMiss(benchmark::State &state)
{
	BM_ChapterPageGet(state, kMissSeed);
}

} // namespace

BENCHMARK(BM_VolumeFill)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_VolumeGetHit);
BENCHMARK(BM_VolumeGetMiss);
BENCHMARK(BM_NameGeneration);
BENCHMARK(BM_ChapterBuildAndPack)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ChapterPageOpen);
BENCHMARK(BM_ChapterPageGetHit);
BENCHMARK(BM_ChapterPageGetMiss);

int main(int argc, char **argv)
{
	std::vector<char *> args;

	/* Our own flag: --entries=N (volume-shaped fill size; default 64M). */
	for (int i = 0; i < argc; i++) {
		if (std::strncmp(argv[i], "--entries=", 10) == 0)
			entries_wanted = std::strtoull(argv[i] + 10, nullptr, 0);
		else
			args.push_back(argv[i]);
	}
	if (entries_wanted < 1024) {
		std::fprintf(stderr, "--entries must be at least 1024\n");
		return 2;
	}
	int count = (int) args.size();
	benchmark::Initialize(&count, args.data());
	if (benchmark::ReportUnrecognizedArguments(count, args.data()))
		return 2;
	std::fprintf(stderr,
	             "delta index benchmark: %" PRIu64 " volume-shaped entries, allocator %s\n",
	             entries_wanted, dd_allocator_name());
	benchmark::RunSpecifiedBenchmarks();
	benchmark::Shutdown();
	uds_free_delta_index(volume.index);
	uds_free_delta_index(chapter.index);
	return 0;
}
