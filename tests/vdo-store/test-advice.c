// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of advice encoding: a round trip for every mapping state that names storage, and
 * advice that must not be followed (another volume's, another version's, naming nothing).
 */
#include <string.h>

#include "advice.h"
#include "test-harness.h"

static const uint64_t NONCE = 0x1234567890abcdefULL;

static void test_round_trip(void **state)
{
	const vdo_pbn_t pbns[] = { 1, 4096, 0x123456789aULL, (1ULL << 48) - 1 };

	(void) state;
	for (uint8_t s = VDO_MAPPING_UNCOMPRESSED;
	     s < VDO_MAPPING_COMPRESSED_BASE + VDO_MAX_COMPRESSION_SLOTS; s++) {
		for (size_t p = 0; p < sizeof(pbns) / sizeof(pbns[0]); p++) {
			uint8_t advice[VDO_ADVICE_BYTES];
			struct vdo_mapping mapping = { 0 };

			vdo_encode_advice((struct vdo_mapping){ .pbn = pbns[p], .state = s }, NONCE,
			                  advice);
			assert_true(vdo_decode_advice(advice, NONCE, &mapping));
			assert_int_equal(mapping.pbn, pbns[p]);
			assert_int_equal(mapping.state, s);
		}
	}
}

static void test_advice_not_to_follow(void **state)
{
	uint8_t advice[VDO_ADVICE_BYTES];
	uint8_t bad[VDO_ADVICE_BYTES];
	struct vdo_mapping mapping = { .pbn = 77, .state = VDO_MAPPING_UNMAPPED };
	struct vdo_mapping out = { .pbn = 5 };

	(void) state;
	vdo_encode_advice((struct vdo_mapping){ .pbn = 42, .state = VDO_MAPPING_UNCOMPRESSED },
	                  NONCE, advice);
	/* Another volume's. */
	assert_false(vdo_decode_advice(advice, NONCE + 1, &out));
	/* Another version's. */
	memcpy(bad, advice, sizeof(bad));
	bad[0] = VDO_ADVICE_VERSION + 1;
	assert_false(vdo_decode_advice(bad, NONCE, &out));
	/* A state beyond the last compressed slot. */
	bad[0] = VDO_ADVICE_VERSION;
	bad[1] = VDO_MAPPING_COMPRESSED_BASE + VDO_MAX_COMPRESSION_SLOTS;
	assert_false(vdo_decode_advice(bad, NONCE, &out));
	/* Nothing, or the zero block. */
	vdo_encode_advice(mapping, NONCE, advice);
	assert_false(vdo_decode_advice(advice, NONCE, &out));
	vdo_encode_advice(
	    (struct vdo_mapping){ .pbn = VDO_ZERO_BLOCK, .state = VDO_MAPPING_UNCOMPRESSED }, NONCE,
	    advice);
	assert_false(vdo_decode_advice(advice, NONCE, &out));
	/* All zeros (an index entry never written by a store). */
	memset(bad, 0, sizeof(bad));
	assert_false(vdo_decode_advice(bad, 0, &out));
	/* Nothing was written on failure. */
	assert_int_equal(out.pbn, 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_advice_not_to_follow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
