// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target: an AdviceBatch message as uds-indexd receives it off the wire.
 *
 * The bytes are decoded by protobuf-c and checked whole; a batch that passes is unpacked into
 * index requests exactly as the service does, given made-up outcomes, and its reply is encoded
 * and decoded again. Nothing may crash or read out of bounds, whatever the bytes, and every
 * batch the check accepts must unpack and answer consistently.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "advice-batch.h"

static struct uds_request requests[ADVICE_MAX_BATCH];
static uint8_t results[ADVICE_MAX_BATCH];
static uint8_t old_data[ADVICE_MAX_BATCH * ADVICE_DATA_BYTES];

/* Give each request an outcome derived from its name, then check the encoded reply. */
static void answer(const Uds__V1__AdviceBatch *batch)
{
	size_t count = batch->types.len;
	size_t expected_found = 0;
	Uds__V1__AdviceReply reply = UDS__V1__ADVICE_REPLY__INIT;
	Uds__V1__AdviceReply *decoded;
	uint8_t *packed;
	size_t found;
	size_t size;

	for (size_t i = 0; i < count; i++) {
		struct uds_request *request = &requests[i];

		if (request->type != batch->types.data[i])
			abort();
		if (memcmp(request->record_name.name, batch->names.data + i * ADVICE_NAME_BYTES,
		           ADVICE_NAME_BYTES) != 0)
			abort();
		request->status =
		    (request->record_name.name[0] == 0xFF) ? DD_BAD_STATE : DD_SUCCESS;
		request->found = (request->record_name.name[1] & 1) != 0;
		request->location = request->record_name.name[2] & 3;
		memcpy(request->old_data.data, request->record_name.name, ADVICE_DATA_BYTES);
		expected_found += (request->status == DD_SUCCESS) && request->found;
	}
	found = advice_reply_fill(requests, count, results, old_data);
	if (found != expected_found)
		abort();
	reply.results = (ProtobufCBinaryData){ .len = count, .data = results };
	reply.old_data =
	    (ProtobufCBinaryData){ .len = found * ADVICE_DATA_BYTES, .data = old_data };
	size = protobuf_c_message_get_packed_size(&reply.base);
	packed = malloc(size + 1);
	protobuf_c_message_pack(&reply.base, packed);
	decoded = uds__v1__advice_reply__unpack(NULL, size, packed);
	if ((decoded == NULL) || (decoded->results.len != count) ||
	    (decoded->old_data.len != found * ADVICE_DATA_BYTES))
		abort();
	uds__v1__advice_reply__free_unpacked(decoded, NULL);
	free(packed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Uds__V1__AdviceBatch *batch = uds__v1__advice_batch__unpack(NULL, size, data);
	char why[128];

	if (batch == NULL)
		return 0;
	if (advice_batch_check(batch, why, sizeof(why))) {
		memset(requests, 0, batch->types.len * sizeof(requests[0]));
		advice_batch_fill(batch, requests);
		answer(batch);
	} else if (why[0] == '\0') {
		abort();
	}
	uds__v1__advice_batch__free_unpacked(batch, NULL);
	return 0;
}
