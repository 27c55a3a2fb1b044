/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Prometheus metrics of a uds-indexd, served over HTTP (libmicrohttpd, on its own thread) at
 * /metrics in the text exposition format.
 *
 * Per index (label index=): requests by type and outcome, names found by where, the volume
 * index's entries and losses, page and sparse cache traffic, reads and read errors, chapters.
 * Per server: calls by method and status code, open streams, indexes served, and the process's
 * memory and CPU time. Every scrape gathers fresh figures from the indexes (a short pause on
 * each zone thread), so nothing is sampled in the background.
 */
#ifndef UDS_INDEXD_METRICS_H
#define UDS_INDEXD_METRICS_H

#include <stddef.h>

struct indexd;
struct metrics_server;

/**
 * metrics_start() - Serve the metrics of @daemon on @address ("127.0.0.1:9400", "[::]:9400").
 *
 * Return: DD_SUCCESS, or an error (logged) if the address is bad or cannot be bound.
 */
int metrics_start(const char *address, struct indexd *daemon, struct metrics_server **server_ptr);

/** metrics_stop() - Stop serving (waits for a scrape in progress). */
void metrics_stop(struct metrics_server *server);

/**
 * metrics_render() - The metrics text, allocated into *@text (free with dd_free()).
 *
 * Return: DD_SUCCESS or ENOMEM.
 */
int metrics_render(struct indexd *daemon, char **text, size_t *length);

#endif /* UDS_INDEXD_METRICS_H */
