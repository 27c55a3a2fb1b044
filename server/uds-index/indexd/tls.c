// SPDX-License-Identifier: GPL-2.0-only
/*
 * TLS identity files and their reload; see tls.h.
 */
#include "tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "logger.h"
#include "memory-alloc.h"

enum {
	PEM_FILE_MAX = 1024 * 1024,
};

struct tls_material {
	char *certificate;
	char *key;
	char *client_ca;
};

enum {
	MAX_LISTENER_CREDENTIALS = 16,
};

/* One listener's credentials and the generation of the files it was given last. */
struct tls_listener {
	struct tls_identity *identity;
	grpc_server_credentials *credentials;
	uint64_t generation;
};

struct tls_identity {
	const char *certificate_path;
	const char *key_path;
	const char *client_ca_path;
	pthread_mutex_t mutex;
	struct tls_material current;
	/* Counts the files read: 1 at open, one more at each reload. */
	uint64_t generation;
	struct tls_listener listeners[MAX_LISTENER_CREDENTIALS];
	unsigned int listener_count;
};

static void free_material(struct tls_material *material)
{
	dd_free(material->certificate);
	dd_free(material->key);
	dd_free(material->client_ca);
	memset(material, 0, sizeof(*material));
}

/* Read a whole PEM file that holds a block whose header contains @kind. */
static int read_pem(const char *path, const char *kind, char **text_ptr)
{
	FILE *file = fopen(path, "re");
	char *text;
	size_t size;
	int result;

	if (file == NULL)
		return dd_log_error_strerror(errno, "cannot open %s", path);
	result = dd_allocate(PEM_FILE_MAX + 1, "PEM text", &text);
	if (result != DD_SUCCESS) {
		fclose(file);
		return result;
	}
	size = fread(text, 1, PEM_FILE_MAX + 1, file);
	if (ferror(file))
		result = dd_log_error_strerror(EIO, "cannot read %s", path);
	else if (size > PEM_FILE_MAX)
		result =
		    dd_log_error_strerror(DD_INVALID_ARGUMENT, "%s is larger than 1 MiB", path);
	fclose(file);
	if (result == DD_SUCCESS) {
		text[size] = '\0';
		if ((strstr(text, "-----BEGIN ") == NULL) || (strstr(text, kind) == NULL))
			result = dd_log_error_strerror(DD_INVALID_ARGUMENT, "%s holds no PEM %s",
			                               path, kind);
	}
	if (result != DD_SUCCESS) {
		dd_free(text);
		return result;
	}
	*text_ptr = text;
	return DD_SUCCESS;
}

static int read_material(const struct tls_identity *identity, struct tls_material *material)
{
	int result = read_pem(identity->certificate_path, "CERTIFICATE", &material->certificate);

	if (result == DD_SUCCESS)
		result = read_pem(identity->key_path, "PRIVATE KEY", &material->key);
	if ((result == DD_SUCCESS) && (identity->client_ca_path != NULL))
		result = read_pem(identity->client_ca_path, "CERTIFICATE", &material->client_ca);
	if (result != DD_SUCCESS)
		free_material(material);
	return result;
}

/* gRPC, at a new handshake on a listener: hand over new material if there is some. */
static grpc_ssl_certificate_config_reload_status
fetch_config(void *context, grpc_ssl_server_certificate_config **config)
{
	struct tls_listener *listener = context;
	struct tls_identity *identity = listener->identity;
	grpc_ssl_certificate_config_reload_status status =
	    GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;

	pthread_mutex_lock(&identity->mutex);
	if (listener->generation != identity->generation) {
		grpc_ssl_pem_key_cert_pair pair = {
			.private_key = identity->current.key,
			.cert_chain = identity->current.certificate,
		};
		/*
		 * gRPC insists on root certificates when certificates come from a fetcher. Without
		 * mutual TLS no client certificate is requested, so the roots are never used: the
		 * server's own chain fills the slot.
		 */
		const char *roots = (identity->current.client_ca != NULL)
		                        ? identity->current.client_ca
		                        : identity->current.certificate;

		*config = grpc_ssl_server_certificate_config_create(roots, &pair, 1);
		listener->generation = identity->generation;
		status = (*config != NULL) ? GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW
		                           : GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
	}
	pthread_mutex_unlock(&identity->mutex);
	return status;
}

int tls_open(const char *certificate_path, const char *key_path, const char *client_ca_path,
             struct tls_identity **identity_ptr)
{
	struct tls_identity *identity;
	int result;

	result = DD_ALLOCATE(1, struct tls_identity, "TLS identity", &identity);
	if (result != DD_SUCCESS)
		return result;
	identity->certificate_path = certificate_path;
	identity->key_path = key_path;
	identity->client_ca_path = client_ca_path;
	pthread_mutex_init(&identity->mutex, NULL);
	result = read_material(identity, &identity->current);
	if (result != DD_SUCCESS) {
		tls_close(identity);
		return result;
	}
	identity->generation = 1;
	dd_log_info("TLS with %s%s", certificate_path,
	            (client_ca_path != NULL) ? "; client certificates required" : "");
	*identity_ptr = identity;
	return DD_SUCCESS;
}

grpc_server_credentials *tls_credentials(struct tls_identity *identity)
{
	grpc_ssl_server_credentials_options *options;
	struct tls_listener *listener;

	if (identity->listener_count == MAX_LISTENER_CREDENTIALS) {
		dd_log_error("at most %u TLS listeners", MAX_LISTENER_CREDENTIALS);
		return NULL;
	}
	listener = &identity->listeners[identity->listener_count];
	listener->identity = identity;
	options = grpc_ssl_server_credentials_create_options_using_config_fetcher(
	    (identity->client_ca_path != NULL)
	        ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
	        : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
	    fetch_config, listener);
	listener->credentials = grpc_ssl_server_credentials_create_with_options(options);
	if (listener->credentials == NULL) {
		dd_log_error("gRPC refused the TLS settings");
		return NULL;
	}
	identity->listener_count++;
	return listener->credentials;
}

int tls_reload(struct tls_identity *identity)
{
	struct tls_material material = { 0 };
	int result = read_material(identity, &material);

	if (result != DD_SUCCESS) {
		dd_log_warning("TLS files not reloaded; the previous ones stay in force");
		return result;
	}
	pthread_mutex_lock(&identity->mutex);
	free_material(&identity->current);
	identity->current = material;
	identity->generation++;
	pthread_mutex_unlock(&identity->mutex);
	dd_log_info("TLS files reloaded; new connections use them");
	return DD_SUCCESS;
}

void tls_close(struct tls_identity *identity)
{
	if (identity == NULL)
		return;
	for (unsigned int l = 0; l < identity->listener_count; l++)
		grpc_server_credentials_release(identity->listeners[l].credentials);
	free_material(&identity->current);
	pthread_mutex_destroy(&identity->mutex);
	dd_free(identity);
}
