/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The volume: the ring of closed chapters on the index's storage, and the index page map.
 *
 * Chapter v occupies slot v % chapters_per_volume, pages_per_chapter pages of bytes_per_page
 * bytes starting at volume_offset + slot * pages_per_chapter * bytes_per_page: first the
 * chapter index pages, then the record pages. The chapter writer writes a chapter in runs of
 * pages (uds_write_chapter_pages(), one pwrite each) and records its index page map once all of
 * them are written. Every page carries the index nonce, its chapter number and a checksum, so a
 * chapter torn part way (some runs written, some still of an older lap) or a stale page from an
 * older lap of the ring fails validation instead of being believed.
 *
 * The index page map remembers, for each slot, the chapter it describes and the last chapter
 * index list on each of its index pages, so that a lookup reads exactly one index page. It is
 * written only by the chapter writer (after the chapter's pages are written) and by load and
 * rebuild; zone threads read it only for chapters that they know are written (see index.c).
 *
 * Reads. The chapter ring is mapped read-only into memory (one shared mapping of the ring alone,
 * from its first byte rounded down to a system page: the ring starts 64 KiB into the index's
 * region, a multiple of 4096, so on 4 KiB pages the mapping is exactly the ring), and the page
 * cache (page-cache.h) holds pointers into that mapping rather than copies:
 * a page in the operating system's page cache is searched where it lies, with no system call
 * and no copy. The kernel keeps the mapping coherent with the chapter writer's pwrite()s; a
 * slot is rewritten only once its old chapter has left every zone's window, so no page still in
 * use changes. uds_volume_page_in_memory() asks the kernel (mincore) whether touching a page
 * would wait for the disk, so that a zone or reader thread never does; when it would, a disk
 * thread calls uds_fetch_volume_page(), which reads the page into the OS cache with pread() so
 * that a failing disk answers with an error rather than a fault.
 *
 * Mapped pages count in the process's RSS as file pages (RssFile): they are the OS cache the
 * index would use anyway, which the kernel may reclaim at any time, not memory the index holds.
 * Rebuild reads whole chapters with pread into its own buffers.
 */
#ifndef UDS_VOLUME_H
#define UDS_VOLUME_H

#include <stdbool.h>
#include <stdint.h>

#include "errors.h"
#include "geometry.h"

struct uds_volume {
	const struct uds_geometry *geometry;
	int fd;
	uint64_t nonce;
	/* Byte offset of slot 0 in the storage (the index's region offset included). */
	uint64_t volume_offset;
	/* The storage, mapped read-only from volume_offset rounded down to a system page through
	 * the end of the chapter ring; ring is slot 0 within it. */
	const uint8_t *mapping;
	size_t mapping_bytes;
	const uint8_t *ring;
	/* Per slot: the chapter its map entries describe (UINT64_MAX: none). */
	uint64_t *map_chapters;
	/* Per slot, per index page: the last list on that page. */
	uint16_t *map_last_lists;
};

/**
 * uds_make_volume() - Set up access to the chapter ring and map it (reads and writes nothing).
 * @geometry:      the index geometry (kept by reference)
 * @fd:            the index storage, open read-write and at least large enough for the ring
 *                 (kept, not closed by the volume)
 * @volume_offset: where slot 0 starts in the storage (a multiple of 4096)
 * @nonce:         the index nonce
 * @volume_ptr:    set to the new volume
 */
int DD_MUST_CHECK uds_make_volume(const struct uds_geometry *geometry, int fd,
                                  uint64_t volume_offset, uint64_t nonce,
                                  struct uds_volume **volume_ptr);

/** uds_free_volume() - Free a volume (NULL is fine). */
void uds_free_volume(struct uds_volume *volume);

/**
 * uds_write_chapter_pages() - Write a run of pages of a chapter (not its index page map).
 * @volume:          the volume
 * @virtual_chapter: the chapter
 * @first_page:      the first page of the run within the chapter (index pages first)
 * @pages:           @count pages
 * @count:           the number of pages; first_page + count <= pages_per_chapter
 *
 * Return: DD_SUCCESS, DD_INVALID_ARGUMENT (logged) for a run beyond the chapter, or an I/O error.
 */
int DD_MUST_CHECK uds_write_chapter_pages(struct uds_volume *volume, uint64_t virtual_chapter,
                                          uint32_t first_page, const uint8_t *pages,
                                          uint32_t count);

/**
 * uds_set_index_page_map() - Record the index page map of a chapter (for the chapter writer,
 *                            load and rebuild).
 */
void uds_set_index_page_map(struct uds_volume *volume, uint64_t virtual_chapter,
                            const uint16_t *last_lists);

/**
 * uds_find_index_page() - The index page of a chapter that holds a chapter index list.
 * @volume:          the volume
 * @virtual_chapter: a written chapter
 * @list:            the chapter index list
 * @page_ptr:        set to the index page number
 *
 * Return: DD_SUCCESS, or DD_OUT_OF_RANGE when the map does not describe this chapter or no page
 *         holds the list (it was dropped when the chapter was closed).
 */
int DD_MUST_CHECK uds_find_index_page(const struct uds_volume *volume, uint64_t virtual_chapter,
                                      uint32_t list, uint32_t *page_ptr);

/**
 * uds_read_volume_page() - Read one page of a chapter (blocking).
 * @volume:          the volume
 * @virtual_chapter: the chapter
 * @page_number:     the page within the chapter (index pages first)
 * @buffer:          bytes_per_page bytes
 */
int DD_MUST_CHECK uds_read_volume_page(const struct uds_volume *volume, uint64_t virtual_chapter,
                                       uint32_t page_number, uint8_t *buffer);

/**
 * uds_volume_page() - The address of a page of a chapter in the mapped chapter ring. Touching it
 *                     may wait for the disk unless uds_volume_page_in_memory() said otherwise.
 */
static inline const uint8_t *uds_volume_page(const struct uds_volume *volume,
                                             uint64_t virtual_chapter, uint32_t page_number)
{
	const struct uds_geometry *g = volume->geometry;
	uint64_t page =
	    (uint64_t) uds_chapter_slot(g, virtual_chapter) * g->pages_per_chapter + page_number;

	return volume->ring + page * g->bytes_per_page;
}

/**
 * uds_volume_page_in_memory() - Whether every byte of a page is in the OS cache, so that reading
 *                               it through the mapping will not wait for the disk.
 */
bool uds_volume_page_in_memory(const struct uds_volume *volume, uint64_t virtual_chapter,
                               uint32_t page_number);

/**
 * uds_start_volume_page_fetch() - Start bringing a page into the OS cache without waiting for
 *                                 it (a pread with RWF_NOWAIT starts the read, and the kernel's
 *                                 readahead, even when it answers that it would wait).
 *
 * Return: whether the page is in memory now.
 */
bool uds_start_volume_page_fetch(const struct uds_volume *volume, uint64_t virtual_chapter,
                                 uint32_t page_number);

/**
 * uds_fetch_volume_page() - Bring a page into the OS cache (blocking), so that reading it
 *                           through the mapping then finds it there.
 *
 * Return: DD_SUCCESS, or the read error (logged).
 */
int DD_MUST_CHECK uds_fetch_volume_page(const struct uds_volume *volume, uint64_t virtual_chapter,
                                        uint32_t page_number);

/**
 * uds_read_chapter() - Read all the pages of a chapter slot (blocking), for rebuild.
 * @volume: the volume
 * @slot:   the slot
 * @pages:  pages_per_chapter pages
 */
int DD_MUST_CHECK uds_read_chapter(const struct uds_volume *volume, uint32_t slot, uint8_t *pages);

/**
 * uds_drop_volume_cache() - Unmap the chapter ring's pages and ask the kernel to drop them
 *                           from its cache (posix_fadvise DONTNEED), for cold-read
 *                           measurements. Pages still in the index's page cache are read
 *                           again from the disk when next used.
 */
void uds_drop_volume_cache(const struct uds_volume *volume);

#endif /* UDS_VOLUME_H */
