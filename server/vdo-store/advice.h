/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Advice: the 16 bytes of record data the store keeps in the index for each block of data it
 * writes, which tell where the data went.
 *
 *   byte  0      version (VDO_ADVICE_VERSION)
 *   byte  1      the mapping state: VDO_MAPPING_UNCOMPRESSED, or a compressed slot
 *   bytes 2-7    the physical block number, 48 bits, little-endian
 *   bytes 8-15   the volume's nonce, little-endian
 *
 * Advice is a hint and is always verified by reading the block. Decoding only checks what the
 * bytes themselves can tell: the version, a mapping state that names storage, and the nonce,
 * so that advice another volume recorded in a shared index is never followed. Whether the
 * block is a data block of this volume, and holds the data, is the caller's to check.
 */
#ifndef VDO_ADVICE_H
#define VDO_ADVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "vdo-types.h"

enum {
	VDO_ADVICE_BYTES = 16,
	VDO_ADVICE_VERSION = 1,
};

/**
 * vdo_encode_advice() - The advice for data stored at @mapping by the volume with @nonce.
 */
void vdo_encode_advice(struct vdo_mapping mapping, uint64_t nonce,
                       uint8_t advice[VDO_ADVICE_BYTES]);

/**
 * vdo_decode_advice() - Read @advice for the volume with @nonce.
 *
 * Return: true with *mapping_ptr set; false if the advice is not this volume's, or of another
 *         version, or names no storage.
 */
bool vdo_decode_advice(const uint8_t advice[VDO_ADVICE_BYTES], uint64_t nonce,
                       struct vdo_mapping *mapping_ptr);

#endif /* VDO_ADVICE_H */
