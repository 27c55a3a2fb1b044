// SPDX-License-Identifier: GPL-2.0-only
/*
 * Shard maps: parsing the file and routing names (see udsclient.h for the format).
 *
 * Routing is rendezvous (highest random weight) hashing: each shard has a 64-bit seed, the
 * XXH3 of "server/index"; a name's weight on a shard is the XXH3 of the name with that seed,
 * and the name goes to the shard of highest weight. Adding a shard moves exactly the names
 * whose new weight beats their old maximum, about 1/(S+1) of them, and nothing else moves;
 * removing one moves only its own names. S is small (at most UDSC_MAX_SHARDS), so S hashes of
 * 16 bytes per name cost less than a cache miss.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

enum {
	MAP_LINE_MAX = 4352,
	MAP_INDEXES_MAX = 256,
};

void udsc_shard_map_free(struct udsc_shard_map *map)
{
	if (map == NULL)
		return;
	for (unsigned int i = 0; i < map->index_count; i++) {
		struct udsc_map_index *index = &map->indexes[i];

		free(index->name);
		for (unsigned int s = 0; s < index->shard_count; s++) {
			free(index->shards[s].server);
			free(index->shards[s].index);
		}
	}
	free(map->indexes);
	free(map);
}

static int add_index(struct udsc_shard_map *map, const char *name)
{
	struct udsc_map_index *index;

	for (unsigned int i = 0; i < map->index_count; i++) {
		if (strcmp(map->indexes[i].name, name) == 0)
			return EEXIST;
	}
	if (map->index_count == MAP_INDEXES_MAX)
		return E2BIG;
	index = &map->indexes[map->index_count];
	memset(index, 0, sizeof(*index));
	index->name = strdup(name);
	if (index->name == NULL)
		return ENOMEM;
	map->index_count++;
	return 0;
}

static int add_shard(struct udsc_map_index *index, const char *server, const char *name)
{
	struct udsc_map_shard *shard;
	char identity[4200];

	if (index->shard_count == UDSC_MAX_SHARDS)
		return E2BIG;
	for (unsigned int s = 0; s < index->shard_count; s++) {
		if ((strcmp(index->shards[s].server, server) == 0) &&
		    (strcmp(index->shards[s].index, name) == 0))
			return EEXIST;
	}
	shard = &index->shards[index->shard_count];
	shard->server = strdup(server);
	shard->index = strdup(name);
	if ((shard->server == NULL) || (shard->index == NULL)) {
		free(shard->server);
		free(shard->index);
		return ENOMEM;
	}
	snprintf(identity, sizeof(identity), "%s/%s", server, name);
	shard->seed = XXH3_64bits(identity, strlen(identity));
	index->shard_count++;
	return 0;
}

/* Parse one non-empty, non-comment line. */
static const char *parse_line(struct udsc_shard_map *map, char **words, int count)
{
	int result;

	if (strcmp(words[0], "version") == 0) {
		char *end;

		if ((count != 2) || map->has_version)
			return "expected one \"version N\" line";
		map->version = strtoull(words[1], &end, 10);
		if ((*end != '\0') || (map->version == 0))
			return "the version is a number above 0";
		map->has_version = true;
		return NULL;
	}
	if (strcmp(words[0], "index") == 0) {
		if (count != 2)
			return "expected \"index NAME\"";
		result = add_index(map, words[1]);
		return (result == EEXIST)  ? "index named twice"
		       : (result == E2BIG) ? "too many indexes"
		       : (result != 0)     ? "out of memory"
		                           : NULL;
	}
	if (strcmp(words[0], "shard") == 0) {
		if (count != 3)
			return "expected \"shard SERVER INDEX\"";
		if (map->index_count == 0)
			return "a shard line before any index line";
		result = add_shard(&map->indexes[map->index_count - 1], words[1], words[2]);
		return (result == EEXIST)  ? "shard named twice"
		       : (result == E2BIG) ? "too many shards"
		       : (result != 0)     ? "out of memory"
		                           : NULL;
	}
	return "unknown line (version, index or shard expected)";
}

static const char *parse_file(FILE *file, struct udsc_shard_map *map, unsigned int *number)
{
	char line[MAP_LINE_MAX];

	while (fgets(line, sizeof(line), file) != NULL) {
		char *words[4];
		char *save = NULL;
		const char *why;
		int count = 0;

		++*number;
		if ((strchr(line, '\n') == NULL) && !feof(file))
			return "line too long";
		for (char *word = strtok_r(line, " \t\r\n", &save); (word != NULL) && (count < 4);
		     word = strtok_r(NULL, " \t\r\n", &save))
			words[count++] = word;
		if ((count == 0) || (words[0][0] == '#'))
			continue;
		why = parse_line(map, words, count);
		if (why != NULL)
			return why;
	}
	if (ferror(file))
		return "read error";
	if (!map->has_version)
		return "no version line";
	for (unsigned int i = 0; i < map->index_count; i++) {
		if (map->indexes[i].shard_count == 0) {
			*number = 0;
			return "an index without shards";
		}
	}
	return NULL;
}

enum udsc_status udsc_shard_map_load(const char *path, struct udsc_shard_map **map_ptr, char *error,
                                     size_t error_size)
{
	struct udsc_shard_map *map;
	unsigned int number = 0;
	const char *why;
	FILE *file;

	file = fopen(path, "re");
	if (file == NULL) {
		udsc_set_error(error, error_size, "cannot open shard map %s: %s", path,
		               strerror(errno));
		return UDSC_INVALID;
	}
	map = calloc(1, sizeof(*map));
	if (map != NULL)
		map->indexes = calloc(MAP_INDEXES_MAX, sizeof(*map->indexes));
	if ((map == NULL) || (map->indexes == NULL)) {
		fclose(file);
		udsc_shard_map_free(map);
		udsc_set_error(error, error_size, "out of memory");
		return UDSC_INVALID;
	}
	why = parse_file(file, map, &number);
	fclose(file);
	if (why != NULL) {
		if (number > 0)
			udsc_set_error(error, error_size, "%s:%u: %s", path, number, why);
		else
			udsc_set_error(error, error_size, "%s: %s", path, why);
		udsc_shard_map_free(map);
		return UDSC_INVALID;
	}
	*map_ptr = map;
	return UDSC_OK;
}

uint64_t udsc_shard_map_get_version(const struct udsc_shard_map *map)
{
	return map->version;
}

unsigned int udsc_shard_map_index_count(const struct udsc_shard_map *map)
{
	return map->index_count;
}

const char *udsc_shard_map_index_name(const struct udsc_shard_map *map, unsigned int i)
{
	return (i < map->index_count) ? map->indexes[i].name : NULL;
}

const struct udsc_map_index *udsc_map_find(const struct udsc_shard_map *map, const char *name)
{
	for (unsigned int i = 0; i < map->index_count; i++) {
		if (strcmp(map->indexes[i].name, name) == 0)
			return &map->indexes[i];
	}
	return NULL;
}

unsigned int udsc_shard_map_shards(const struct udsc_shard_map *map, const char *name,
                                   const char *servers[UDSC_MAX_SHARDS],
                                   const char *indexes[UDSC_MAX_SHARDS])
{
	const struct udsc_map_index *index = udsc_map_find(map, name);

	if (index == NULL)
		return 0;
	for (unsigned int s = 0; s < index->shard_count; s++) {
		servers[s] = index->shards[s].server;
		indexes[s] = index->shards[s].index;
	}
	return index->shard_count;
}

unsigned int udsc_route(const uint64_t *seeds, unsigned int count, const uint8_t *name)
{
	unsigned int best = 0;
	uint64_t best_weight = 0;

	for (unsigned int s = 0; s < count; s++) {
		uint64_t weight = XXH3_64bits_withSeed(name, UDSC_NAME_BYTES, seeds[s]);

		if ((s == 0) || (weight > best_weight)) {
			best = s;
			best_weight = weight;
		}
	}
	return best;
}

int udsc_shard_map_route(const struct udsc_shard_map *map, const char *name,
                         const uint8_t key[UDSC_NAME_BYTES])
{
	const struct udsc_map_index *index = udsc_map_find(map, name);
	uint64_t seeds[UDSC_MAX_SHARDS];

	if (index == NULL)
		return -1;
	for (unsigned int s = 0; s < index->shard_count; s++)
		seeds[s] = index->shards[s].seed;
	return (int) udsc_route(seeds, index->shard_count, key);
}
