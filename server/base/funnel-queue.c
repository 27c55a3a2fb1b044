// SPDX-License-Identifier: GPL-2.0-only
/*
 * The funnel queue: Dmitry Vyukov's intrusive multi-producer, single-consumer list, written for
 * C11 atomics.
 *
 * Shape. The queue is a list linked from older to newer entries. @newest is the producers' end,
 * @oldest the consumer's. A stub entry lives inside the queue so that the list always holds at
 * least one entry; producers therefore only ever touch @newest and the @next field of whatever
 * entry was newest before them, and never @oldest.
 *
 * Put. A producer clears its entry's @next, atomically exchanges @newest with its entry, and then
 * stores its entry into the @next field of the entry it got back (the previous newest). The
 * exchange is the linearization point: it decides the order of concurrent puts. Between the
 * exchange and the link store the list is in two pieces; the consumer can see the first piece
 * but cannot reach the second until the link is stored. No producer ever waits, so a producer
 * descheduled between its two steps delays the consumer (which sees NULL) but nobody else.
 *
 * Poll. The consumer looks at @oldest:
 *   - If it is the stub, it skips it (if the stub has a successor) or reports "nothing ready".
 *   - If the entry at @oldest has a successor, that entry can be detached: @oldest moves on to
 *     the successor and the entry is returned.
 *   - If it has no successor it may be the last entry, which cannot be detached because a
 *     producer may be about to link to it. If @newest is something else, a producer is between
 *     its two steps: return NULL. If @newest is this entry, the consumer puts the stub back
 *     (so that the entry gains a successor) and tries once more; if another producer slipped in
 *     before the stub, the link is again pending and the poll returns NULL.
 *   An entry is returned only once its @next is non-NULL, so no producer can still write to it:
 *   the caller may put it again at once.
 *
 * Memory orders.
 *   - The exchange on @newest is sequentially consistent. Acquire-release is what the list
 *     needs: release publishes the cleared @next of the new entry to the next producer (who
 *     stores into that field), acquire orders this producer's link store after the clear done by
 *     the producer before it, so that the link can never be overwritten by a stale NULL. The
 *     extra step to seq_cst lets the zone threads build their sleep/wake handshake on it (see
 *     dd_funnel_queue_is_idle() and work-queue.c); on x86 and arm64 the exchange costs the same.
 *   - The link store is a release and the consumer's loads of @next are acquires: whatever the
 *     producer wrote into its object before the put is visible to the consumer that polls it.
 *   - The clear of a new entry's @next is relaxed: the release exchange that follows publishes
 *     it.
 *   - @oldest and the stub's placement belong to the consumer alone and are plain fields.
 */
#include "funnel-queue.h"

#include <stdatomic.h>
#include <stddef.h>

_Static_assert(sizeof(_Atomic(struct dd_funnel_queue_entry *)) ==
                   sizeof(struct dd_funnel_queue_entry *),
               "C++ code sees atomic pointers as plain ones; their layouts must match");

void dd_funnel_queue_initialize(struct dd_funnel_queue *queue)
{
	atomic_init(&queue->stub.next, NULL);
	atomic_init(&queue->newest, &queue->stub);
	queue->oldest = &queue->stub;
}

void dd_funnel_queue_put(struct dd_funnel_queue *queue, struct dd_funnel_queue_entry *entry)
{
	struct dd_funnel_queue_entry *previous;

	atomic_store_explicit(&entry->next, NULL, memory_order_relaxed);
	previous = atomic_exchange_explicit(&queue->newest, entry, memory_order_seq_cst);
	/* The transient state: the list is broken here until the next store. */
	atomic_store_explicit(&previous->next, entry, memory_order_release);
}

/* The successor of @entry, with acquire so that the successor's contents are visible. */
static struct dd_funnel_queue_entry *next_of(struct dd_funnel_queue_entry *entry)
{
	return atomic_load_explicit(&entry->next, memory_order_acquire);
}

/*
 * Step @oldest past the stub if the stub is at the front and has a successor. Return the first
 * real entry, or NULL if the stub is at the front with nothing linked after it.
 */
static struct dd_funnel_queue_entry *skip_stub(struct dd_funnel_queue *queue)
{
	struct dd_funnel_queue_entry *oldest = queue->oldest;
	struct dd_funnel_queue_entry *next;

	if (oldest != &queue->stub)
		return oldest;
	next = next_of(oldest);
	if (next == NULL)
		return NULL;
	queue->oldest = next;
	return next;
}

/* Detach @oldest, whose successor is @next, and return it. */
static struct dd_funnel_queue_entry *detach(struct dd_funnel_queue *queue,
                                            struct dd_funnel_queue_entry *oldest,
                                            struct dd_funnel_queue_entry *next)
{
	queue->oldest = next;
	return oldest;
}

struct dd_funnel_queue_entry *dd_funnel_queue_poll(struct dd_funnel_queue *queue)
{
	struct dd_funnel_queue_entry *oldest = skip_stub(queue);
	struct dd_funnel_queue_entry *next;

	if (oldest == NULL)
		return NULL;
	next = next_of(oldest);
	if (next != NULL)
		return detach(queue, oldest, next);
	if (atomic_load_explicit(&queue->newest, memory_order_acquire) != oldest)
		return NULL;
	/* @oldest is the last entry: give it a successor so that it can be detached. */
	dd_funnel_queue_put(queue, &queue->stub);
	next = next_of(oldest);
	if (next != NULL)
		return detach(queue, oldest, next);
	return NULL;
}

bool dd_funnel_queue_is_empty(struct dd_funnel_queue *queue)
{
	struct dd_funnel_queue_entry *oldest = queue->oldest;

	if (oldest == &queue->stub) {
		oldest = next_of(oldest);
		if (oldest == NULL)
			return true;
	}
	if (next_of(oldest) != NULL)
		return false;
	return atomic_load_explicit(&queue->newest, memory_order_acquire) != oldest;
}

bool dd_funnel_queue_is_idle(struct dd_funnel_queue *queue)
{
	if (queue->oldest != &queue->stub)
		return false;
	return atomic_load_explicit(&queue->newest, memory_order_seq_cst) == &queue->stub;
}
