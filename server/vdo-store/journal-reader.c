// SPDX-License-Identifier: GPL-2.0-only
/*
 * Reading the recovery journal back; see journal-reader.h.
 */
#include "journal-reader.h"

#include "logger.h"
#include "memory-alloc.h"

struct vdo_journal_ring {
	uint8_t *blocks;
	uint64_t nonce;
	vdo_pbn_t origin;
	uint32_t size;
	vdo_sequence_t start;
	bool found;
	struct vdo_journal_block_header newest;
};

static const uint8_t *block_at(const struct vdo_journal_ring *ring, vdo_sequence_t sequence)
{
	return ring->blocks + (size_t) (sequence % ring->size) * VDO_BLOCK_SIZE;
}

/* The header of the good block holding @sequence, if that is what its place holds. */
static bool open_sequence(const struct vdo_journal_ring *ring, vdo_sequence_t sequence,
                          struct vdo_journal_block_header *header)
{
	uint32_t position = (uint32_t) (sequence % ring->size);

	return vdo_open_journal_block(block_at(ring, sequence), ring->nonce,
	                              ring->origin + position, position, ring->size, header) &&
	       (header->sequence == sequence);
}

/* The newest good block at or after @start; false if there is none. */
static bool find_newest(const struct vdo_journal_ring *ring, vdo_sequence_t start,
                        struct vdo_journal_block_header *newest)
{
	bool found = false;

	for (uint32_t p = 0; p < ring->size; p++) {
		struct vdo_journal_block_header header;

		if (vdo_open_journal_block(ring->blocks + (size_t) p * VDO_BLOCK_SIZE, ring->nonce,
		                           ring->origin + p, p, ring->size, &header) &&
		    (header.sequence >= start) &&
		    (!found || (header.sequence > newest->sequence))) {
			*newest = header;
			found = true;
		}
	}
	return found;
}

static void count(struct vdo_journal_contents *contents, const struct vdo_journal_entry *entry)
{
	if (entry->operation == VDO_JOURNAL_BLOCK_MAP_REMAPPING) {
		contents->block_map_data_blocks++;
		return;
	}
	if (vdo_mapping_uses_storage(entry->new_mapping))
		contents->logical_blocks_used++;
	if (vdo_mapping_uses_storage(entry->old_mapping))
		contents->logical_blocks_used--;
}

static int walk(const struct vdo_journal_ring *ring, const struct vdo_journal_block_header *newest,
                vdo_sequence_t start, vdo_journal_visitor visitor, void *context,
                struct vdo_journal_contents *contents)
{
	vdo_sequence_t sequence = (newest->head > start) ? newest->head : start;
	struct vdo_journal_block_header header;

	contents->head = sequence;
	contents->end = sequence;
	if (!open_sequence(ring, sequence, &header))
		return DD_SUCCESS;
	contents->logical_blocks_used = header.logical_blocks_used;
	contents->block_map_data_blocks = header.block_map_data_blocks;
	for (; (sequence <= newest->sequence) && open_sequence(ring, sequence, &header);
	     sequence++) {
		const uint8_t *block = block_at(ring, sequence);
		uint32_t position = (uint32_t) (sequence % ring->size);
		unsigned int entries = vdo_count_journal_entries(block, ring->nonce,
		                                                 ring->origin + position, sequence);

		for (unsigned int i = 0; i < entries; i++) {
			struct vdo_journal_entry entry;
			int result = vdo_get_journal_entry(block, i, &entry);

			if (result != DD_SUCCESS)
				return dd_log_error_strerror(result,
				                             "recovery journal block %llu entry %u "
				                             "makes no sense",
				                             (unsigned long long) sequence, i);
			result = visitor(context, &entry,
			                 (struct vdo_journal_point){ .sequence = sequence,
			                                             .entry = (uint16_t) i });
			if (result != DD_SUCCESS)
				return result;
			count(contents, &entry);
			contents->entries++;
		}
		contents->end = sequence + 1;
	}
	return DD_SUCCESS;
}

void vdo_free_journal_ring(struct vdo_journal_ring *ring)
{
	if (ring == NULL)
		return;
	dd_free(ring->blocks);
	dd_free(ring);
}

int vdo_load_journal_ring(struct block_device *device, uint64_t nonce, vdo_pbn_t origin,
                          uint32_t size, vdo_sequence_t start, struct vdo_journal_ring **ring_ptr)
{
	struct vdo_journal_ring *ring;
	int result = dd_allocate(sizeof(*ring), "journal ring", &ring);

	if (result != DD_SUCCESS)
		return result;
	*ring = (struct vdo_journal_ring){
		.nonce = nonce, .origin = origin, .size = size, .start = start
	};
	result = dd_allocate_aligned((size_t) size * VDO_BLOCK_SIZE, VDO_BLOCK_SIZE,
	                             "recovery journal", &ring->blocks);
	if (result == DD_SUCCESS) {
		result = vdo_sync_io(device, VDO_IO_READ, 0, origin, size, ring->blocks);
		if (result != DD_SUCCESS)
			dd_log_error_strerror(result, "cannot read the recovery journal");
	}
	if (result != DD_SUCCESS) {
		vdo_free_journal_ring(ring);
		return result;
	}
	ring->found = find_newest(ring, start, &ring->newest);
	*ring_ptr = ring;
	return DD_SUCCESS;
}

int vdo_walk_journal_ring(const struct vdo_journal_ring *ring, vdo_journal_visitor visitor,
                          void *context, struct vdo_journal_contents *contents)
{
	*contents = (struct vdo_journal_contents){ .head = ring->start,
		                                   .end = ring->start,
		                                   .next_tail = ring->start };
	if (!ring->found)
		return DD_SUCCESS;
	contents->next_tail = ring->newest.sequence + 1;
	return walk(ring, &ring->newest, ring->start, visitor, context, contents);
}

int vdo_read_recovery_journal(struct block_device *device, uint64_t nonce, vdo_pbn_t origin,
                              uint32_t size, vdo_sequence_t start, vdo_journal_visitor visitor,
                              void *context, struct vdo_journal_contents *contents)
{
	struct vdo_journal_ring *ring = NULL;
	int result = vdo_load_journal_ring(device, nonce, origin, size, start, &ring);

	*contents =
	    (struct vdo_journal_contents){ .head = start, .end = start, .next_tail = start };
	if (result != DD_SUCCESS)
		return result;
	result = vdo_walk_journal_ring(ring, visitor, context, contents);
	vdo_free_journal_ring(ring);
	return result;
}
