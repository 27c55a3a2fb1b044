// SPDX-License-Identifier: GPL-2.0-only
/*
 * Checking, unpacking and answering advice batches; see advice-batch.h.
 */
#include "advice-batch.h"

#include <stdio.h>
#include <string.h>

#include "errors.h"

static bool carries_data(unsigned int type)
{
	return (type == UDS_POST) || (type == UDS_UPDATE);
}

bool advice_batch_check(const Uds__V1__AdviceBatch *batch, char *why, size_t size)
{
	size_t count = batch->types.len;
	size_t with_data = 0;

	if ((count == 0) || (count > ADVICE_MAX_BATCH)) {
		snprintf(why, size, "a batch holds 1 to %u requests, not %zu", ADVICE_MAX_BATCH,
		         count);
		return false;
	}
	for (size_t i = 0; i < count; i++) {
		if (batch->types.data[i] >= UDS_REQUEST_TYPES) {
			snprintf(why, size, "request %zu has unknown type %u", i,
			         batch->types.data[i]);
			return false;
		}
		with_data += carries_data(batch->types.data[i]);
	}
	if (batch->names.len != count * ADVICE_NAME_BYTES) {
		snprintf(why, size, "%zu requests need %zu bytes of names, not %zu", count,
		         count * ADVICE_NAME_BYTES, batch->names.len);
		return false;
	}
	if (batch->data.len != with_data * ADVICE_DATA_BYTES) {
		snprintf(why, size, "%zu POST/UPDATE requests need %zu bytes of data, not %zu",
		         with_data, with_data * ADVICE_DATA_BYTES, batch->data.len);
		return false;
	}
	return true;
}

void advice_batch_fill(const Uds__V1__AdviceBatch *batch, struct uds_request *requests)
{
	const uint8_t *data = batch->data.data;

	for (size_t i = 0; i < batch->types.len; i++) {
		struct uds_request *request = &requests[i];

		request->type = batch->types.data[i];
		memcpy(request->record_name.name, batch->names.data + i * ADVICE_NAME_BYTES,
		       ADVICE_NAME_BYTES);
		if (carries_data(request->type)) {
			memcpy(request->new_data.data, data, ADVICE_DATA_BYTES);
			data += ADVICE_DATA_BYTES;
		} else {
			memset(request->new_data.data, 0, ADVICE_DATA_BYTES);
		}
	}
}

size_t advice_reply_fill(const struct uds_request *requests, size_t count, uint8_t *results,
                         uint8_t *old_data)
{
	size_t found = 0;

	for (size_t i = 0; i < count; i++) {
		const struct uds_request *request = &requests[i];

		if (request->status != DD_SUCCESS) {
			results[i] = ADVICE_RESULT_FAILED;
			continue;
		}
		results[i] = (uint8_t) (request->location << ADVICE_RESULT_LOCATION_SHIFT);
		if (request->found) {
			results[i] |= ADVICE_RESULT_FOUND;
			memcpy(old_data + found * ADVICE_DATA_BYTES, request->old_data.data,
			       ADVICE_DATA_BYTES);
			found++;
		}
	}
	return found;
}
