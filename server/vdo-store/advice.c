// SPDX-License-Identifier: GPL-2.0-only
/*
 * Advice; see advice.h.
 */
#include "advice.h"

#include <string.h>

#include "byte-order.h"

enum {
	PBN_BYTES = 6,
};

void vdo_encode_advice(struct vdo_mapping mapping, uint64_t nonce, uint8_t advice[VDO_ADVICE_BYTES])
{
	advice[0] = VDO_ADVICE_VERSION;
	advice[1] = (uint8_t) mapping.state;
	for (int i = 0; i < PBN_BYTES; i++)
		advice[2 + i] = (uint8_t) (mapping.pbn >> (8 * i));
	dd_put_le64(advice + 8, nonce);
}

bool vdo_decode_advice(const uint8_t advice[VDO_ADVICE_BYTES], uint64_t nonce,
                       struct vdo_mapping *mapping_ptr)
{
	struct vdo_mapping mapping = { .state = advice[1] };

	if ((advice[0] != VDO_ADVICE_VERSION) || (dd_get_le64(advice + 8) != nonce))
		return false;
	for (int i = 0; i < PBN_BYTES; i++)
		mapping.pbn |= (vdo_pbn_t) advice[2 + i] << (8 * i);
	/* Zero blocks are never hashed, so advice naming one is not ours either. */
	if (!vdo_mapping_uses_storage(mapping) || vdo_is_zero_mapping(mapping) ||
	    (mapping.state > VDO_MAPPING_COMPRESSED_BASE + VDO_MAX_COMPRESSION_SLOTS - 1))
		return false;
	*mapping_ptr = mapping;
	return true;
}
