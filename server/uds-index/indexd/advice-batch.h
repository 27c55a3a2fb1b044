/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The wire form of advice batches, apart from the service that runs them, so that the parser
 * can be fuzzed alone.
 *
 * A batch of N requests is N type bytes, 16 * N name bytes and 16 data bytes for each POST or
 * UPDATE, in request order; a reply is N result bytes (bit 0 found, bits 1-3 location, bit 4
 * failed) and 16 bytes of old data for each request that found its name. A batch is checked
 * whole before any of it is used, so a malformed one changes nothing.
 */
#ifndef UDS_INDEXD_ADVICE_BATCH_H
#define UDS_INDEXD_ADVICE_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uds/v1/index.pb-c.h"

#include "uds.h"

enum {
	/* Most requests in one advice batch. */
	ADVICE_MAX_BATCH = 4096,
	ADVICE_NAME_BYTES = 16,
	ADVICE_DATA_BYTES = 16,
	ADVICE_RESULT_FOUND = 1,
	ADVICE_RESULT_LOCATION_SHIFT = 1,
	ADVICE_RESULT_FAILED = 16,
};

/**
 * advice_batch_check() - Whether a decoded batch is well formed: 1 to ADVICE_MAX_BATCH
 *                        requests of known types, and names and data of the sizes they need.
 *                        On failure @why (of @size bytes) says what is wrong.
 */
bool advice_batch_check(const Uds__V1__AdviceBatch *batch, char *why, size_t size);

/**
 * advice_batch_fill() - Set the type, name and new data of @requests (one per request of a
 *                       checked @batch); nothing else of them is touched.
 */
void advice_batch_fill(const Uds__V1__AdviceBatch *batch, struct uds_request *requests);

/**
 * advice_reply_fill() - Encode the outcome of @count completed requests into @results (@count
 *                       bytes) and @old_data (16 bytes per request found).
 *
 * Return: the number of requests that found their name.
 */
size_t advice_reply_fill(const struct uds_request *requests, size_t count, uint8_t *results,
                         uint8_t *old_data);

#endif /* UDS_INDEXD_ADVICE_BATCH_H */
