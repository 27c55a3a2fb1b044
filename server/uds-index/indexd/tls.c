// SPDX-License-Identifier: GPL-2.0-only
/*
 * TLS identity files and their reload; see tls.h.
 */
#include "tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
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

struct tls_identity {
	const char *certificate_path;
	const char *key_path;
	const char *client_ca_path;
	grpc_server_credentials *credentials;
	pthread_mutex_t mutex;
	struct tls_material current;
	/* The current material has not been handed to gRPC yet. */
	bool changed;
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

/* gRPC, at a new handshake: hand over new material if there is some. */
static grpc_ssl_certificate_config_reload_status
fetch_config(void *context, grpc_ssl_server_certificate_config **config)
{
	struct tls_identity *identity = context;
	grpc_ssl_certificate_config_reload_status status =
	    GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;

	pthread_mutex_lock(&identity->mutex);
	if (identity->changed) {
		grpc_ssl_pem_key_cert_pair pair = {
			.private_key = identity->current.key,
			.cert_chain = identity->current.certificate,
		};

		*config = grpc_ssl_server_certificate_config_create(identity->current.client_ca,
		                                                    &pair, 1);
		identity->changed = false;
		status = (*config != NULL) ? GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW
		                           : GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
	}
	pthread_mutex_unlock(&identity->mutex);
	return status;
}

int tls_open(const char *certificate_path, const char *key_path, const char *client_ca_path,
             struct tls_identity **identity_ptr)
{
	grpc_ssl_server_credentials_options *options;
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
	identity->changed = true;
	options = grpc_ssl_server_credentials_create_options_using_config_fetcher(
	    (client_ca_path != NULL) ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
	                             : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
	    fetch_config, identity);
	identity->credentials = grpc_ssl_server_credentials_create_with_options(options);
	if (identity->credentials == NULL) {
		tls_close(identity);
		return dd_log_error_strerror(DD_INVALID_ARGUMENT,
		                             "the TLS certificate or key is not usable");
	}
	dd_log_info("TLS with %s%s", certificate_path,
	            (client_ca_path != NULL) ? "; client certificates required" : "");
	*identity_ptr = identity;
	return DD_SUCCESS;
}

grpc_server_credentials *tls_credentials(struct tls_identity *identity)
{
	return identity->credentials;
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
	identity->changed = true;
	pthread_mutex_unlock(&identity->mutex);
	dd_log_info("TLS files reloaded; new connections use them");
	return DD_SUCCESS;
}

void tls_close(struct tls_identity *identity)
{
	if (identity == NULL)
		return;
	if (identity->credentials != NULL)
		grpc_server_credentials_release(identity->credentials);
	free_material(&identity->current);
	pthread_mutex_destroy(&identity->mutex);
	dd_free(identity);
}
