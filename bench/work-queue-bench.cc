// SPDX-License-Identifier: GPL-2.0-only
/*
 * Benchmarks of the zone threads and completions.
 *
 *   BM_PingPongWithBenchThread/<spin_ns>: enqueue-to-run latency of one completion at a time.
 *     The bench thread launches a completion on an idle zone thread and spins until its callback
 *     has run; the time per iteration is the round trip. With spin 0 the zone thread is asleep
 *     every time, so this measures the futex wake-up path; with the default spin it measures
 *     the polling path.
 *   BM_PingPongBetweenZones/<spin_ns>: one completion bouncing between two zone threads; the
 *     "time_per_hop" counter is the enqueue-to-run latency of a single hop.
 *   BM_ThroughputFromBenchThread/<zones>: many small completions launched by one outside
 *     thread, spread over the zones; items_per_second counts completions run.
 *   BM_ThroughputSelfRequeue/<zones>: completions that requeue themselves on their own zone,
 *     so the cost is the queue and the dispatch alone, without cross-thread traffic.
 */
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <sched.h>
#include <vector>

extern "C" {
#include "completion.h"
#include "errors.h"
#include "work-queue.h"
}

namespace
{

constexpr unsigned int kHopsPerChain = 1000;
constexpr unsigned int kBatch = 4096;
constexpr unsigned int kRequeuesPerCompletion = 1000;
constexpr unsigned int kCompletionsPerZone = 64;
constexpr unsigned int kPollsPerYield = 256;

struct dd_thread_set *MakeSet(unsigned int count, int64_t spin_ns)
{
	struct dd_thread_set_config config = dd_default_thread_set_config("bench", count);
	struct dd_thread_set *set = nullptr;

	config.spin_ns = spin_ns;
	if (dd_make_thread_set(&config, &set) != DD_SUCCESS)
		return nullptr;
	return set;
}

/* --- Ping-pong between the bench thread and one zone thread --- */

struct Ping {
	struct dd_completion completion;
	std::atomic<uint64_t> answered{ 0 };
};

void Answer(struct dd_completion *completion)
{
	Ping *ping = static_cast<Ping *>(completion->parent);

	ping->answered.fetch_add(1, std::memory_order_release);
}

/* Spin for the answer, yielding now and then so that a busy machine is not made worse. */
void WaitForAnswer(Ping *ping, uint64_t sent)
{
	for (unsigned int polls = 1; ping->answered.load(std::memory_order_acquire) != sent;
	     polls++) {
		if (polls % kPollsPerYield == 0)
			sched_yield();
	}
}

void BM_PingPongWithBenchThread(benchmark::State &state)
{
	struct dd_thread_set *set = MakeSet(1, state.range(0));
	Ping ping;
	uint64_t sent = 0;

	if (set == nullptr) {
		state.SkipWithError("cannot make thread set");
		return;
	}
	dd_initialize_completion(&ping.completion, set);
	for (auto _ : state) {
		dd_prepare_completion(&ping.completion, Answer, nullptr, 0, &ping);
		dd_launch_completion(&ping.completion);
		sent++;
		WaitForAnswer(&ping, sent);
	}
	dd_free_thread_set(set);
}
BENCHMARK(BM_PingPongWithBenchThread)->Arg(DD_DEFAULT_SPIN_NS)->Arg(0)->UseRealTime();

/* --- A completion bouncing between two zone threads --- */

struct Rally {
	struct dd_completion completion;
	struct dd_completion *waiter;
	unsigned int hops;
};

void Bounce(struct dd_completion *completion)
{
	Rally *rally = static_cast<Rally *>(completion->parent);

	if (++rally->hops == kHopsPerChain) {
		dd_finish_completion(rally->waiter, DD_SUCCESS);
		return;
	}
	dd_launch_completion_callback(completion, Bounce, 1 - completion->callback_thread_id);
}

void ServeRally(struct dd_completion *completion)
{
	Rally *rally = static_cast<Rally *>(completion->parent);

	rally->waiter = completion;
	rally->hops = 0;
	dd_initialize_completion(&rally->completion, completion->thread_set);
	dd_prepare_completion(&rally->completion, Bounce, nullptr, 1, rally);
	dd_launch_completion(&rally->completion);
}

void BM_PingPongBetweenZones(benchmark::State &state)
{
	struct dd_thread_set *set = MakeSet(2, state.range(0));
	Rally rally;

	if (set == nullptr) {
		state.SkipWithError("cannot make thread set");
		return;
	}
	for (auto _ : state) {
		if (dd_perform_synchronous_action(set, 0, ServeRally, &rally) != DD_SUCCESS) {
			state.SkipWithError("rally failed");
			break;
		}
	}
	/* Seconds per hop, printed with an SI prefix ("450n" is 450 ns). */
	state.counters["time_per_hop"] =
	    benchmark::Counter(kHopsPerChain, benchmark::Counter::kIsIterationInvariantRate |
	                                          benchmark::Counter::kInvert);
	dd_free_thread_set(set);
}
BENCHMARK(BM_PingPongBetweenZones)->Arg(DD_DEFAULT_SPIN_NS)->Arg(0)->UseRealTime();

/* --- Throughput --- */

struct Batch {
	std::vector<struct dd_completion> completions;
	std::atomic<unsigned int> remaining{ 0 };
	std::vector<unsigned int> requeues;
};

void CountDown(struct dd_completion *completion)
{
	Batch *batch = static_cast<Batch *>(completion->parent);

	batch->remaining.fetch_sub(1, std::memory_order_acq_rel);
}

void WaitForBatch(Batch *batch)
{
	while (batch->remaining.load(std::memory_order_acquire) != 0)
		sched_yield();
}

void BM_ThroughputFromBenchThread(benchmark::State &state)
{
	unsigned int zones = static_cast<unsigned int>(state.range(0));
	struct dd_thread_set *set = MakeSet(zones, DD_DEFAULT_SPIN_NS);
	Batch batch;

	if (set == nullptr) {
		state.SkipWithError("cannot make thread set");
		return;
	}
	batch.completions.resize(kBatch);
	for (auto &completion : batch.completions)
		dd_initialize_completion(&completion, set);
	for (auto _ : state) {
		batch.remaining.store(kBatch, std::memory_order_relaxed);
		for (unsigned int i = 0; i < kBatch; i++) {
			dd_prepare_completion(&batch.completions[i], CountDown, nullptr, i % zones,
			                      &batch);
			dd_launch_completion(&batch.completions[i]);
		}
		WaitForBatch(&batch);
	}
	state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBatch);
	dd_free_thread_set(set);
}
BENCHMARK(BM_ThroughputFromBenchThread)->Arg(1)->Arg(2)->Arg(4)->UseRealTime();

void Requeue(struct dd_completion *completion)
{
	Batch *batch = static_cast<Batch *>(completion->parent);
	size_t index = static_cast<size_t>(completion - batch->completions.data());

	if (++batch->requeues[index] == kRequeuesPerCompletion) {
		batch->remaining.fetch_sub(1, std::memory_order_acq_rel);
		return;
	}
	dd_invoke_completion_callback(completion);
}

void BM_ThroughputSelfRequeue(benchmark::State &state)
{
	unsigned int zones = static_cast<unsigned int>(state.range(0));
	unsigned int count = zones * kCompletionsPerZone;
	struct dd_thread_set *set = MakeSet(zones, DD_DEFAULT_SPIN_NS);
	Batch batch;

	if (set == nullptr) {
		state.SkipWithError("cannot make thread set");
		return;
	}
	batch.completions.resize(count);
	batch.requeues.resize(count);
	for (auto _ : state) {
		batch.remaining.store(count, std::memory_order_relaxed);
		for (unsigned int i = 0; i < count; i++) {
			batch.requeues[i] = 0;
			dd_initialize_completion(&batch.completions[i], set);
			dd_prepare_completion(&batch.completions[i], Requeue, nullptr, i % zones,
			                      &batch);
			batch.completions[i].requeue = true;
			dd_launch_completion(&batch.completions[i]);
		}
		WaitForBatch(&batch);
	}
	state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * count *
	                        kRequeuesPerCompletion);
	dd_free_thread_set(set);
}
BENCHMARK(BM_ThroughputSelfRequeue)->Arg(1)->Arg(2)->UseRealTime();

} // namespace

BENCHMARK_MAIN();
