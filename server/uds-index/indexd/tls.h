/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The server's TLS identity: its certificate chain and key and, for mutual TLS, the CA that
 * client certificates must chain to; all PEM files, read at start and again on tls_reload().
 *
 * gRPC asks for the identity (through a certificate config fetcher) at each new handshake; a
 * reload that read every file hands the new material over at the next one, so connections
 * already open keep theirs and new ones get the new. A reload that fails keeps the old.
 *
 * Every listener has credentials of its own, since each keeps its own copy of the identity:
 * each remembers which generation of the files it was given last.
 */
#ifndef UDS_INDEXD_TLS_H
#define UDS_INDEXD_TLS_H

#include <grpc/grpc_security.h>

struct tls_identity;

/**
 * tls_open() - Read @certificate_path and @key_path (and @client_ca_path, which turns on mutual
 *              TLS, if not NULL).
 *
 * Return: DD_SUCCESS, or an error (logged) if a file is unreadable or holds no PEM block.
 */
int tls_open(const char *certificate_path, const char *key_path, const char *client_ca_path,
             struct tls_identity **identity_ptr);

/**
 * tls_credentials() - New server credentials for one listener (owned by the identity, released
 *                     by tls_close()).
 *
 * Return: the credentials, or NULL (logged) if they cannot be made.
 */
grpc_server_credentials *tls_credentials(struct tls_identity *identity);

/** tls_reload() - Read the files again; new handshakes use them. */
int tls_reload(struct tls_identity *identity);

/** tls_close() - Free the identity, once no server uses its credentials. */
void tls_close(struct tls_identity *identity);

#endif /* UDS_INDEXD_TLS_H */
