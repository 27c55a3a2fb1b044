/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A funnel queue: an intrusive, lock-free queue with many producers and one consumer.
 *
 * Any number of threads may put entries; exactly one thread at a time (the consumer, normally a
 * zone thread) may poll them. The entries are embedded in the caller's objects (a completion
 * holds one), so neither put nor poll allocates. Entries from one producer come out in the
 * order that producer put them; entries from different producers interleave in the order in
 * which their puts swapped the tail.
 *
 * The queue is a singly linked list from the oldest entry (the consumer's end) to the newest
 * (the producers' end). A put costs one atomic exchange on the newest pointer and one store
 * that links the previous newest entry to the new one; it never waits for anybody. The price of
 * that is a short transient state: between a producer's exchange and its link, the list is
 * broken in two. A poll that reaches the break returns NULL even though the queue is not idle;
 * the entry becomes visible as soon as the producer executes its next instruction. Consumers
 * therefore treat NULL as "nothing ready now", and use dd_funnel_queue_is_idle() to tell that
 * state apart from a truly idle queue before they go to sleep. See funnel-queue.c for the
 * algorithm and the memory orders.
 *
 * The structures are declared here so that they can be embedded, and the header can be read by
 * C++ (the benchmarks); only funnel-queue.c touches their fields.
 */
#ifndef DD_FUNNEL_QUEUE_H
#define DD_FUNNEL_QUEUE_H

#include <stdbool.h>

#ifdef __cplusplus
/* C++ code only needs the layout; it never touches these fields. */
#define DD_ATOMIC(type) type
#else
#define DD_ATOMIC(type) _Atomic(type)
#endif

enum {
	/* Bytes between fields written by different threads, so they never share a cache line. */
	DD_CACHE_LINE_SIZE = 64,
};

/* The link embedded in every object that can be put on a funnel queue. */
struct dd_funnel_queue_entry {
	/* The next newer entry, or NULL if none is linked yet. */
	DD_ATOMIC(struct dd_funnel_queue_entry *) next;
};

struct dd_funnel_queue {
	/* The producers' end: the entry put most recently (the stub when nothing was put). */
	DD_ATOMIC(struct dd_funnel_queue_entry *) newest;
	/* Keeps the producers' hot field off the consumer's cache line. */
	char padding[DD_CACHE_LINE_SIZE];
	/* The consumer's end: the oldest entry not yet polled, or the stub. Consumer only. */
	struct dd_funnel_queue_entry *oldest;
	/* A dummy entry so that the list is never empty and producers never touch oldest. */
	struct dd_funnel_queue_entry stub;
};

/**
 * dd_funnel_queue_initialize() - Make @queue empty. Not thread-safe: call before sharing it.
 */
void dd_funnel_queue_initialize(struct dd_funnel_queue *queue);

/**
 * dd_funnel_queue_put() - Add @entry at the producers' end of @queue. Any thread; lock-free.
 *
 * @entry must not be on any queue. It belongs to the queue until a poll returns it.
 */
void dd_funnel_queue_put(struct dd_funnel_queue *queue, struct dd_funnel_queue_entry *entry);

/**
 * dd_funnel_queue_poll() - Remove and return the oldest entry of @queue. Consumer only.
 *
 * Return: the entry, or NULL when no entry is ready. NULL does not mean that the queue is idle:
 * a producer may be in the middle of a put (it has swapped the tail but not linked its entry
 * yet). Poll again, or call dd_funnel_queue_is_idle() to tell the two cases apart.
 */
struct dd_funnel_queue_entry *dd_funnel_queue_poll(struct dd_funnel_queue *queue);

/**
 * dd_funnel_queue_is_empty() - Tell whether @queue has no entry ready to poll. Consumer only.
 *
 * True while puts are still in progress, so true does not mean idle. False means an entry is
 * linked; a poll returns it unless a put races with the poll (then the poll returns NULL, and
 * a later poll returns the entry).
 */
bool dd_funnel_queue_is_empty(struct dd_funnel_queue *queue);

/**
 * dd_funnel_queue_is_idle() - Tell whether every entry put on @queue has been polled and no
 * put is in progress. Consumer only.
 *
 * The check ends with a sequentially consistent load of the producers' end, so a consumer that
 * publishes "I am going to sleep" with a sequentially consistent store before calling this, and
 * producers that read that flag (sequentially consistent) after their put, cannot both miss
 * each other. This is how the zone threads avoid lost wake-ups.
 */
bool dd_funnel_queue_is_idle(struct dd_funnel_queue *queue);

#endif /* DD_FUNNEL_QUEUE_H */
