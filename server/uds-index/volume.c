// SPDX-License-Identifier: GPL-2.0-only
/*
 * The volume; see volume.h for its layout and rules.
 *
 * All I/O is positional (pread/pwrite family) on the shared descriptor, so disk threads, rebuild
 * and the chapter writer never share a file position. Short reads and writes are retried; EINTR
 * is retried. Searches read pages through the read-only mapping made here.
 */
#include "volume.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "logger.h"
#include "memory-alloc.h"

/*
 * Map the chapter ring, from its first byte rounded down to a system page (mmap wants an aligned
 * offset; the ring's offset is a multiple of 4096) through its end, so that nothing after the
 * ring is mapped. Reads are random: no readahead on faults.
 */
static int map_storage(struct uds_volume *volume)
{
	long system_page = sysconf(_SC_PAGESIZE);
	uint64_t page_bytes = (system_page > 0) ? (uint64_t) system_page : UDS_MIN_BYTES_PER_PAGE;
	uint64_t start = volume->volume_offset / page_bytes * page_bytes;
	size_t bytes = volume->volume_offset - start + volume->geometry->bytes_per_volume;
	void *mapping = mmap(NULL, bytes, PROT_READ, MAP_SHARED, volume->fd, (off_t) start);

	if (mapping == MAP_FAILED)
		return dd_log_error_strerror(errno, "cannot map %zu bytes of index storage at %llu",
		                             bytes, (unsigned long long) start);
	(void) madvise(mapping, bytes, MADV_RANDOM);
	volume->mapping = mapping;
	volume->mapping_bytes = bytes;
	volume->ring = (const uint8_t *) mapping + (volume->volume_offset - start);
	return DD_SUCCESS;
}

int uds_make_volume(const struct uds_geometry *geometry, int fd, uint64_t volume_offset,
                    uint64_t nonce, struct uds_volume **volume_ptr)
{
	struct uds_volume *volume;
	size_t map_entries =
	    (size_t) geometry->chapters_per_volume * geometry->index_pages_per_chapter;
	int result;

	if (geometry->chapter_delta_lists > UINT16_MAX + 1u)
		return dd_log_error_strerror(DD_INVALID_ARGUMENT, "%u chapter index lists",
		                             geometry->chapter_delta_lists);
	result = DD_ALLOCATE(1, struct uds_volume, "volume", &volume);
	if (result != DD_SUCCESS)
		return result;
	volume->geometry = geometry;
	volume->fd = fd;
	volume->nonce = nonce;
	volume->volume_offset = volume_offset;
	result = map_storage(volume);
	if (result == DD_SUCCESS)
		result = DD_ALLOCATE(geometry->chapters_per_volume, uint64_t,
		                     "index page map chapters", &volume->map_chapters);
	if (result == DD_SUCCESS)
		result =
		    DD_ALLOCATE(map_entries, uint16_t, "index page map", &volume->map_last_lists);
	if (result != DD_SUCCESS) {
		uds_free_volume(volume);
		return result;
	}
	for (uint32_t slot = 0; slot < geometry->chapters_per_volume; slot++)
		volume->map_chapters[slot] = UINT64_MAX;
	*volume_ptr = volume;
	return DD_SUCCESS;
}

void uds_free_volume(struct uds_volume *volume)
{
	if (volume == NULL)
		return;
	if (volume->mapping != NULL)
		munmap((void *) volume->mapping, volume->mapping_bytes);
	dd_free(volume->map_chapters);
	dd_free(volume->map_last_lists);
	dd_free(volume);
}

/* Byte offset of a page of a chapter. */
static off_t page_offset(const struct uds_volume *volume, uint64_t virtual_chapter,
                         uint32_t page_number)
{
	const struct uds_geometry *g = volume->geometry;
	uint64_t page =
	    (uint64_t) uds_chapter_slot(g, virtual_chapter) * g->pages_per_chapter + page_number;

	return (off_t) (volume->volume_offset + page * g->bytes_per_page);
}

/* pwrite all of a buffer. */
static int write_fully(int fd, const uint8_t *buffer, size_t length, off_t offset)
{
	while (length > 0) {
		ssize_t written = pwrite(fd, buffer, length, offset);

		if (written < 0) {
			if (errno == EINTR)
				continue;
			return dd_log_error_strerror(errno, "cannot write index storage at %lld",
			                             (long long) offset);
		}
		buffer += written;
		length -= (size_t) written;
		offset += written;
	}
	return DD_SUCCESS;
}

/* pread all of a buffer (flags for preadv2); DD_END_OF_FILE if the file ends first. */
static int read_fully(int fd, uint8_t *buffer, size_t length, off_t offset, int flags)
{
	while (length > 0) {
		struct iovec iov = { .iov_base = buffer, .iov_len = length };
		ssize_t bytes = preadv2(fd, &iov, 1, offset, flags);

		if (bytes < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (bytes == 0)
			return DD_END_OF_FILE;
		buffer += bytes;
		length -= (size_t) bytes;
		offset += bytes;
	}
	return DD_SUCCESS;
}

int uds_write_chapter_pages(struct uds_volume *volume, uint64_t virtual_chapter,
                            uint32_t first_page, const uint8_t *pages, uint32_t count)
{
	const struct uds_geometry *g = volume->geometry;

	if ((first_page > g->pages_per_chapter) || (count > g->pages_per_chapter - first_page))
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "pages %u to %u of a %u page chapter", first_page,
		                             first_page + count, g->pages_per_chapter);
	return write_fully(volume->fd, pages, (size_t) count * g->bytes_per_page,
	                   page_offset(volume, virtual_chapter, first_page));
}

void uds_set_index_page_map(struct uds_volume *volume, uint64_t virtual_chapter,
                            const uint16_t *last_lists)
{
	const struct uds_geometry *g = volume->geometry;
	uint32_t slot = uds_chapter_slot(g, virtual_chapter);

	memcpy(&volume->map_last_lists[(size_t) slot * g->index_pages_per_chapter], last_lists,
	       g->index_pages_per_chapter * sizeof(uint16_t));
	volume->map_chapters[slot] = virtual_chapter;
}

int uds_find_index_page(const struct uds_volume *volume, uint64_t virtual_chapter, uint32_t list,
                        uint32_t *page_ptr)
{
	const struct uds_geometry *g = volume->geometry;
	uint32_t slot = uds_chapter_slot(g, virtual_chapter);
	const uint16_t *last_lists =
	    &volume->map_last_lists[(size_t) slot * g->index_pages_per_chapter];
	uint32_t low = 0;
	uint32_t high = g->index_pages_per_chapter;

	if (volume->map_chapters[slot] != virtual_chapter)
		return DD_OUT_OF_RANGE;
	/* The first page whose last list is at least @list. */
	while (low < high) {
		uint32_t middle = (low + high) / 2;

		if (last_lists[middle] < list)
			low = middle + 1;
		else
			high = middle;
	}
	if (low == g->index_pages_per_chapter)
		return DD_OUT_OF_RANGE;
	*page_ptr = low;
	return DD_SUCCESS;
}

int uds_read_volume_page(const struct uds_volume *volume, uint64_t virtual_chapter,
                         uint32_t page_number, uint8_t *buffer)
{
	int result = read_fully(volume->fd, buffer, volume->geometry->bytes_per_page,
	                        page_offset(volume, virtual_chapter, page_number), 0);

	if (result != DD_SUCCESS)
		return dd_log_error_strerror(result, "cannot read page %u of chapter %llu",
		                             page_number, (unsigned long long) virtual_chapter);
	return DD_SUCCESS;
}

bool uds_volume_page_in_memory(const struct uds_volume *volume, uint64_t virtual_chapter,
                               uint32_t page_number)
{
	size_t system_page = UDS_MIN_BYTES_PER_PAGE;
	uint32_t count = volume->geometry->bytes_per_page / system_page;
	const uint8_t *page = uds_volume_page(volume, virtual_chapter, page_number);
	unsigned char resident[UDS_MAX_BYTES_PER_PAGE / UDS_MIN_BYTES_PER_PAGE];

	if (mincore((void *) page, volume->geometry->bytes_per_page, resident) != 0)
		return false;
	for (uint32_t i = 0; i < count; i++) {
		if ((resident[i] & 1) == 0)
			return false;
	}
	return true;
}

/*
 * Read a page a piece at a time into a buffer that is thrown away, for the effect on the OS
 * cache: DD_SUCCESS, or the first error. With RWF_NOWAIT every piece is tried, so that each
 * one's read starts (with the kernel's readahead) even when it answers EAGAIN.
 */
static int read_page_for_os_cache(const struct uds_volume *volume, uint64_t virtual_chapter,
                                  uint32_t page_number, int flags)
{
	uint8_t scratch[UDS_MIN_BYTES_PER_PAGE] __attribute__((aligned(64)));
	off_t offset = page_offset(volume, virtual_chapter, page_number);
	off_t end = offset + volume->geometry->bytes_per_page;
	int first_error = DD_SUCCESS;

	for (; offset < end; offset += sizeof(scratch)) {
		int result = read_fully(volume->fd, scratch, sizeof(scratch), offset, flags);

		if (result == DD_SUCCESS)
			continue;
		if (first_error == DD_SUCCESS)
			first_error = result;
		if ((flags & RWF_NOWAIT) == 0)
			break;
	}
	return first_error;
}

bool uds_start_volume_page_fetch(const struct uds_volume *volume, uint64_t virtual_chapter,
                                 uint32_t page_number)
{
	return read_page_for_os_cache(volume, virtual_chapter, page_number, RWF_NOWAIT) ==
	       DD_SUCCESS;
}

int uds_fetch_volume_page(const struct uds_volume *volume, uint64_t virtual_chapter,
                          uint32_t page_number)
{
	int result = read_page_for_os_cache(volume, virtual_chapter, page_number, 0);

	if (result != DD_SUCCESS)
		return dd_log_error_strerror(result, "cannot read page %u of chapter %llu",
		                             page_number, (unsigned long long) virtual_chapter);
	return DD_SUCCESS;
}

int uds_read_chapter(const struct uds_volume *volume, uint32_t slot, uint8_t *pages)
{
	const struct uds_geometry *g = volume->geometry;
	int result =
	    read_fully(volume->fd, pages, (size_t) g->pages_per_chapter * g->bytes_per_page,
	               page_offset(volume, slot, 0), 0);

	if (result != DD_SUCCESS)
		return dd_log_error_strerror(result, "cannot read chapter slot %u", slot);
	return DD_SUCCESS;
}

void uds_drop_volume_cache(const struct uds_volume *volume)
{
	const struct uds_geometry *g = volume->geometry;

	(void) madvise((void *) volume->ring, g->bytes_per_volume, MADV_DONTNEED);
	(void) posix_fadvise(volume->fd, (off_t) volume->volume_offset, (off_t) g->bytes_per_volume,
	                     POSIX_FADV_DONTNEED);
}
