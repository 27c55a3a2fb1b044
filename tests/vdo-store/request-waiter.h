/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Waiting for one store request, for the store's tests: the request's callback marks its
 * waiter done under the waiter's mutex.
 */
#ifndef VDO_TEST_REQUEST_WAITER_H
#define VDO_TEST_REQUEST_WAITER_H

#include <pthread.h>
#include <stdbool.h>

#include "vdo-store.h"

struct waiter {
	struct vdo_request request;
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	bool done;
};

/** request_done() - The callback of a request whose context is its struct waiter. */
static inline void request_done(struct vdo_request *request)
{
	struct waiter *waiter = request->context;

	pthread_mutex_lock(&waiter->mutex);
	waiter->done = true;
	pthread_cond_signal(&waiter->cond);
	pthread_mutex_unlock(&waiter->mutex);
}

#endif /* VDO_TEST_REQUEST_WAITER_H */
