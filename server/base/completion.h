/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Completions: how work moves between zone threads.
 *
 * A completion is a small record embedded in the object that does the work (a request, a
 * read-ahead, an admin operation). It names a callback, an error handler, the zone thread the
 * callback must run on, and carries the result of the operation so far. Code never calls into
 * another zone's data directly; it points its completion at a callback of that zone and
 * launches it, and the zone thread runs the callback when it gets to it. A multi-step
 * operation is a chain of callbacks, each on the thread that owns what it touches.
 *
 * The verbs, as in dm-vdo:
 *   - prepare: set callback, error handler, thread and parent, and clear the result;
 *   - launch / invoke: run the callback on its thread (directly if the caller is already there
 *     and it is safe, otherwise through the thread's queue);
 *   - continue: record a result and move on: to the error handler if any error has been
 *     recorded, otherwise to the callback;
 *   - finish: like continue, but also mark the operation complete. It is what an operation
 *     does at its end to hand control back to whoever waits on it (its parent's callback).
 *
 * The first error wins: once a completion holds an error, later results do not replace it, so
 * the error handler sees the original cause.
 *
 * Running directly versus queueing. Running the callback on the caller's stack saves a trip
 * through the queue, but deep chains of same-thread steps would grow the stack without bound,
 * and some callers need the current callback to return first. So a callback runs directly only
 * when the caller is already on the right zone thread, the completion's @requeue flag is off,
 * and fewer than DD_MAX_DIRECT_RUN_DEPTH direct runs are nested on this thread; otherwise it is
 * queued. Nothing here allocates.
 */
#ifndef DD_COMPLETION_H
#define DD_COMPLETION_H

#include <stdbool.h>

#include "errors.h"
#include "funnel-queue.h"
#include "work-queue.h"

enum {
	/* Nested direct runs allowed on one thread before launches go through the queue. */
	DD_MAX_DIRECT_RUN_DEPTH = 32,
};

struct dd_completion;

/* A callback, error handler or synchronous action. */
typedef void (*dd_action_fn)(struct dd_completion *completion);

struct dd_completion {
	/* What runs next when no error has been recorded. */
	dd_action_fn callback;
	/* What runs next when an error has been recorded; NULL sends errors to the callback. */
	dd_action_fn error_handler;
	/* The object this completion works for; not used by the machinery. */
	void *parent;
	/* The zone threads this completion runs on. */
	struct dd_thread_set *thread_set;
	/* The zone thread that must run the callback or error handler. */
	dd_thread_id_t callback_thread_id;
	/* DD_SUCCESS or the first error recorded since the last prepare or reset. */
	int result;
	/* Set by dd_finish_completion(); cleared by prepare and reset. */
	bool complete;
	/* Always go through the queue, even when already on the right thread. */
	bool requeue;
	/* On a queue now; catches double enqueues. */
	bool enqueued;
	/* The link for the zone thread's funnel queue. */
	struct dd_funnel_queue_entry entry;
};

/**
 * dd_initialize_completion() - Set up @completion to run on the zone threads of @set.
 *
 * Clears every field; the completion still needs a prepare before it is launched.
 */
void dd_initialize_completion(struct dd_completion *completion, struct dd_thread_set *set);

/**
 * dd_reset_completion() - Clear the result and the complete flag for a new operation.
 */
void dd_reset_completion(struct dd_completion *completion);

/**
 * dd_prepare_completion() - Reset @completion and point it at the next operation.
 * @callback: runs when no error is recorded.
 * @error_handler: runs when an error is recorded (NULL: errors go to @callback as well).
 * @thread_id: the zone thread that must run them.
 * @parent: stored in the completion for the callbacks.
 */
void dd_prepare_completion(struct dd_completion *completion, dd_action_fn callback,
                           dd_action_fn error_handler, dd_thread_id_t thread_id, void *parent);

/**
 * dd_set_completion_callback() - Change the callback and its thread, keeping the result.
 */
void dd_set_completion_callback(struct dd_completion *completion, dd_action_fn callback,
                                dd_thread_id_t thread_id);

/**
 * dd_set_completion_result() - Record @result unless an error is already recorded.
 */
void dd_set_completion_result(struct dd_completion *completion, int result);

/**
 * dd_invoke_completion_callback() - Run the error handler (if an error is recorded and there
 * is one) or the callback, on the completion's thread: directly when safe, else via its queue.
 */
void dd_invoke_completion_callback(struct dd_completion *completion);

/**
 * dd_launch_completion() - Start the operation @completion was prepared for.
 *
 * The same as dd_invoke_completion_callback(); the name says that an operation begins here.
 */
void dd_launch_completion(struct dd_completion *completion);

/**
 * dd_launch_completion_callback() - Set the callback and thread, then invoke it: one hop.
 */
void dd_launch_completion_callback(struct dd_completion *completion, dd_action_fn callback,
                                   dd_thread_id_t thread_id);

/**
 * dd_continue_completion() - Record @result (first error wins) and invoke the callback, which
 * means the error handler if an error is recorded.
 */
void dd_continue_completion(struct dd_completion *completion, int result);

/**
 * dd_finish_completion() - Record @result, mark @completion complete and invoke its callback
 * (or error handler). Finishing a completion twice is an assertion failure and does nothing.
 */
void dd_finish_completion(struct dd_completion *completion, int result);

/**
 * dd_run_completion() - Run the error handler or the callback on the calling thread, now.
 *
 * For the zone threads; other code launches, continues or finishes.
 */
void dd_run_completion(struct dd_completion *completion);

/**
 * dd_perform_synchronous_action() - Run @action on zone thread @thread_id and wait for it.
 * @set: the zone threads.
 * @thread_id: where @action runs.
 * @action: called with a completion whose parent is @parent. It must finish that completion
 *          exactly once, with its result, with dd_finish_completion(); it may do so later,
 *          from any zone thread of @set, after launching work of its own. It must not prepare
 *          or relaunch the completion.
 * @parent: handed to @action as completion->parent.
 *
 * For admin operations and tests, from a thread that is not a zone thread of @set (it blocks
 * on a condition variable). In manual mode the caller's thread runs the queued work until
 * idle; if @action has not finished the completion by then, DD_BAD_STATE is returned.
 *
 * Return: the result @action finished with, DD_ASSERTION_FAILED when called from a zone thread
 * of @set, or DD_BAD_STATE as above.
 */
int DD_MUST_CHECK dd_perform_synchronous_action(struct dd_thread_set *set, dd_thread_id_t thread_id,
                                                dd_action_fn action, void *parent);

#endif /* DD_COMPLETION_H */
