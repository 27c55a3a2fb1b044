// SPDX-License-Identifier: GPL-2.0-only
/*
 * Completions: the verbs of completion.h, and synchronous actions.
 *
 * Dispatch. Every way of moving a completion on ends in dd_invoke_completion_callback(), which
 * decides between running now and queueing, and in dd_run_completion(), which picks the error
 * handler when an error is recorded and the callback otherwise. Keeping that choice in one
 * place means that a completion queued with an error and one run directly with an error behave
 * the same.
 *
 * Direct runs. A callback runs on the caller's stack only when the caller is the right zone
 * thread, the completion does not ask to be requeued, and the per-thread nesting depth is below
 * DD_MAX_DIRECT_RUN_DEPTH. The depth counter is thread-local, so it costs no synchronization;
 * past the limit the completion goes through the queue, and the stack unwinds before it runs.
 *
 * Ownership. After the machinery hands a completion to its callback, it does not touch the
 * completion again: the callback may have passed it to another thread, or (for a synchronous
 * action) the memory may already be gone.
 *
 * Synchronous actions. The waiter keeps a completion, a mutex, a condition variable and a done
 * flag on its stack. The completion first runs a trampoline on the target thread, which points
 * the callback and the error handler at a notifier and then calls the action; when the action
 * finishes the completion, the notifier runs on the target thread (directly, or through the
 * queue if the action finished from elsewhere), sets the flag and signals under the mutex.
 * The waiter cannot return (and free the stack) before the notifier has released the mutex.
 */
#include "completion.h"

#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "logger.h"
#include "permassert.h"

/* Direct runs currently nested on this thread. */
static _Thread_local unsigned int direct_run_depth;

void dd_initialize_completion(struct dd_completion *completion, struct dd_thread_set *set)
{
	memset(completion, 0, sizeof(*completion));
	completion->thread_set = set;
	completion->callback_thread_id = DD_INVALID_THREAD_ID;
}

void dd_reset_completion(struct dd_completion *completion)
{
	completion->result = DD_SUCCESS;
	completion->complete = false;
}

void dd_prepare_completion(struct dd_completion *completion, dd_action_fn callback,
                           dd_action_fn error_handler, dd_thread_id_t thread_id, void *parent)
{
	dd_reset_completion(completion);
	completion->callback = callback;
	completion->error_handler = error_handler;
	completion->callback_thread_id = thread_id;
	completion->parent = parent;
}

void dd_set_completion_callback(struct dd_completion *completion, dd_action_fn callback,
                                dd_thread_id_t thread_id)
{
	completion->callback = callback;
	completion->callback_thread_id = thread_id;
}

void dd_set_completion_result(struct dd_completion *completion, int result)
{
	if (completion->result == DD_SUCCESS)
		completion->result = result;
}

void dd_run_completion(struct dd_completion *completion)
{
	if ((completion->result != DD_SUCCESS) && (completion->error_handler != NULL)) {
		completion->error_handler(completion);
		return;
	}
	if (DD_ASSERT(completion->callback != NULL, "completion %p has a callback",
	              (void *) completion) != DD_SUCCESS)
		return;
	completion->callback(completion);
}

/* Tell whether @completion may run on the caller's stack now. */
static bool can_run_directly(const struct dd_completion *completion)
{
	return !completion->requeue && (direct_run_depth < DD_MAX_DIRECT_RUN_DEPTH) &&
	       dd_is_on_thread(completion->thread_set, completion->callback_thread_id);
}

void dd_invoke_completion_callback(struct dd_completion *completion)
{
	if (!can_run_directly(completion)) {
		dd_enqueue_completion(completion);
		return;
	}
	direct_run_depth++;
	dd_run_completion(completion);
	direct_run_depth--;
}

void dd_launch_completion(struct dd_completion *completion)
{
	dd_invoke_completion_callback(completion);
}

void dd_launch_completion_callback(struct dd_completion *completion, dd_action_fn callback,
                                   dd_thread_id_t thread_id)
{
	dd_set_completion_callback(completion, callback, thread_id);
	dd_invoke_completion_callback(completion);
}

void dd_continue_completion(struct dd_completion *completion, int result)
{
	dd_set_completion_result(completion, result);
	dd_invoke_completion_callback(completion);
}

void dd_finish_completion(struct dd_completion *completion, int result)
{
	if (DD_ASSERT(!completion->complete, "completion %p finished only once",
	              (void *) completion) != DD_SUCCESS)
		return;
	dd_set_completion_result(completion, result);
	completion->complete = true;
	dd_invoke_completion_callback(completion);
}

/* A waiter for dd_perform_synchronous_action(), on the waiting thread's stack. */
struct sync_waiter {
	struct dd_completion completion;
	dd_action_fn action;
	pthread_mutex_t mutex;
	pthread_cond_t done_changed;
	bool done;
};

static struct sync_waiter *as_sync_waiter(struct dd_completion *completion)
{
	return (struct sync_waiter *) ((char *) completion -
	                               offsetof(struct sync_waiter, completion));
}

/* Runs when the action finishes: wake the waiter. Touches nothing after the unlock. */
static void notify_waiter(struct dd_completion *completion)
{
	struct sync_waiter *waiter = as_sync_waiter(completion);

	pthread_mutex_lock(&waiter->mutex);
	waiter->done = true;
	pthread_cond_signal(&waiter->done_changed);
	pthread_mutex_unlock(&waiter->mutex);
}

/* The first callback on the target thread: aim the completion at the notifier, then act. */
static void run_sync_action(struct dd_completion *completion)
{
	struct sync_waiter *waiter = as_sync_waiter(completion);

	completion->callback = notify_waiter;
	completion->error_handler = notify_waiter;
	waiter->action(completion);
}

static void wait_for_waiter(struct sync_waiter *waiter)
{
	pthread_mutex_lock(&waiter->mutex);
	while (!waiter->done)
		pthread_cond_wait(&waiter->done_changed, &waiter->mutex);
	pthread_mutex_unlock(&waiter->mutex);
}

/* Manual mode: run the set on this thread, then check that the action finished. */
static int run_manual_waiter(struct dd_thread_set *set, struct sync_waiter *waiter)
{
	int result = dd_thread_set_wait_until_idle(set);

	if (result != DD_SUCCESS)
		return result;
	if (!waiter->done)
		return dd_log_error_strerror(DD_BAD_STATE,
		                             "synchronous action did not finish before idle");
	return DD_SUCCESS;
}

int dd_perform_synchronous_action(struct dd_thread_set *set, dd_thread_id_t thread_id,
                                  dd_action_fn action, void *parent)
{
	struct sync_waiter waiter = { .action = action, .done = false };
	int result;

	result = DD_ASSERT(dd_current_thread_set() != set,
	                   "synchronous action waited for on a zone thread of its own set");
	if (result != DD_SUCCESS)
		return result;
	result = DD_ASSERT(thread_id < dd_thread_set_count(set), "thread %u exists", thread_id);
	if (result != DD_SUCCESS)
		return result;
	dd_initialize_completion(&waiter.completion, set);
	dd_prepare_completion(&waiter.completion, run_sync_action, NULL, thread_id, parent);
	pthread_mutex_init(&waiter.mutex, NULL);
	pthread_cond_init(&waiter.done_changed, NULL);
	dd_launch_completion(&waiter.completion);
	if (dd_thread_set_is_manual(set))
		result = run_manual_waiter(set, &waiter);
	else
		wait_for_waiter(&waiter);
	pthread_cond_destroy(&waiter.done_changed);
	pthread_mutex_destroy(&waiter.mutex);
	return (result != DD_SUCCESS) ? result : waiter.completion.result;
}
