// SPDX-License-Identifier: GPL-2.0-only
/*
 * The gRPC plumbing the client's parts share: channels with their credentials, time, call
 * metadata, messages in and out of byte buffers, and decoding advice replies.
 */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>

enum {
	PEM_MAX = 1024 * 1024,
};

void udsc_set_error(char *error, size_t size, const char *format, ...)
{
	va_list args;

	if ((error == NULL) || (size == 0))
		return;
	va_start(args, format);
	vsnprintf(error, size, format, args);
	va_end(args);
}

uint64_t udsc_now_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t) now.tv_sec * 1000000000ULL + (uint64_t) now.tv_nsec;
}

gpr_timespec udsc_deadline_at(uint64_t when_ns)
{
	uint64_t now = udsc_now_ns();
	gpr_timespec deadline = gpr_now(GPR_CLOCK_MONOTONIC);

	if (when_ns == UINT64_MAX)
		return gpr_inf_future(GPR_CLOCK_MONOTONIC);
	if (when_ns <= now)
		return deadline;
	return gpr_time_add(deadline, gpr_time_from_nanos((int64_t) (when_ns - now), GPR_TIMESPAN));
}

/* Read a PEM file into a NUL-terminated string (free()), or NULL with @error set. */
static char *read_pem(const char *path, char *error, size_t error_size)
{
	FILE *file = fopen(path, "re");
	char *text;
	size_t size;

	if (file == NULL) {
		udsc_set_error(error, error_size, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	text = malloc(PEM_MAX + 1);
	size = (text != NULL) ? fread(text, 1, PEM_MAX, file) : 0;
	fclose(file);
	if ((text == NULL) || (size == 0)) {
		udsc_set_error(error, error_size, "cannot read %s", path);
		free(text);
		return NULL;
	}
	text[size] = '\0';
	return text;
}

static grpc_channel_credentials *make_credentials(const struct udsc_security *security, char *error,
                                                  size_t error_size)
{
	grpc_ssl_pem_key_cert_pair pair = { NULL, NULL };
	grpc_channel_credentials *credentials = NULL;
	char *roots = read_pem(security->tls_ca, error, error_size);
	char *key = NULL;
	char *certificate = NULL;

	if (roots == NULL)
		return NULL;
	if ((security->tls_cert != NULL) || (security->tls_key != NULL)) {
		if ((security->tls_cert == NULL) || (security->tls_key == NULL)) {
			udsc_set_error(error, error_size,
			               "a client certificate needs its key, and back");
			goto out;
		}
		certificate = read_pem(security->tls_cert, error, error_size);
		key = (certificate != NULL) ? read_pem(security->tls_key, error, error_size) : NULL;
		if (key == NULL)
			goto out;
		pair.cert_chain = certificate;
		pair.private_key = key;
	}
	credentials = grpc_ssl_credentials_create(roots, (key != NULL) ? &pair : NULL, NULL, NULL);
	if (credentials == NULL)
		udsc_set_error(error, error_size, "gRPC refused the TLS files");
out:
	free(roots);
	free(certificate);
	free(key);
	return credentials;
}

static grpc_arg integer_arg(const char *key, int value)
{
	return (grpc_arg){ .type = GRPC_ARG_INTEGER, .key = (char *) key, .value.integer = value };
}

grpc_channel *udsc_make_channel(const char *server, const struct udsc_security *security,
                                unsigned int number, char *error, size_t error_size)
{
	grpc_arg args[4];
	size_t count = 0;
	grpc_channel_args channel_args;
	grpc_channel_credentials *credentials;
	grpc_channel *channel;

	/* Channels with different arguments do not share a subchannel, hence a connection. */
	args[count++] = integer_arg("udsclient.connection", (int) number);
	args[count++] = integer_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 4 * 1024 * 1024);
	/* Reconnect quickly: the client keeps its own backoff for failed streams. */
	args[count++] = integer_arg(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
	if ((security != NULL) && (security->tls_server_name != NULL))
		args[count++] = (grpc_arg){ .type = GRPC_ARG_STRING,
			                    .key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG,
			                    .value.string = (char *) security->tls_server_name };
	channel_args = (grpc_channel_args){ .num_args = count, .args = args };
	if ((security == NULL) || (security->tls_ca == NULL))
		credentials = grpc_insecure_credentials_create();
	else
		credentials = make_credentials(security, error, error_size);
	if (credentials == NULL)
		return NULL;
	channel = grpc_channel_create(server, credentials, &channel_args);
	grpc_channel_credentials_release(credentials);
	if (channel == NULL)
		udsc_set_error(error, error_size, "cannot make a channel to %s", server);
	return channel;
}

enum udsc_status udsc_status_of_code(grpc_status_code code)
{
	switch (code) {
	case GRPC_STATUS_OK:
		return UDSC_OK;
	case GRPC_STATUS_DEADLINE_EXCEEDED:
		return UDSC_TIMEOUT;
	case GRPC_STATUS_INVALID_ARGUMENT:
	case GRPC_STATUS_NOT_FOUND:
	case GRPC_STATUS_ALREADY_EXISTS:
	case GRPC_STATUS_PERMISSION_DENIED:
	case GRPC_STATUS_UNAUTHENTICATED:
	case GRPC_STATUS_UNIMPLEMENTED:
	case GRPC_STATUS_FAILED_PRECONDITION:
	case GRPC_STATUS_OUT_OF_RANGE:
		return UDSC_REFUSED;
	case GRPC_STATUS_RESOURCE_EXHAUSTED:
		return UDSC_OVERLOADED;
	case GRPC_STATUS_INTERNAL:
	case GRPC_STATUS_DATA_LOSS:
		return UDSC_FAILED;
	default:
		return UDSC_UNAVAILABLE;
	}
}

size_t udsc_auth_metadata(const char *token, grpc_metadata *entry)
{
	char value[512];

	if ((token == NULL) || (token[0] == '\0'))
		return 0;
	snprintf(value, sizeof(value), "Bearer %s", token);
	memset(entry, 0, sizeof(*entry));
	entry->key = grpc_slice_from_static_string("authorization");
	entry->value = grpc_slice_from_copied_string(value);
	return 1;
}

void udsc_release_metadata(grpc_metadata *entry, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		grpc_slice_unref(entry[i].key);
		grpc_slice_unref(entry[i].value);
	}
}

grpc_byte_buffer *udsc_buffer_of(const ProtobufCMessage *message)
{
	size_t size = protobuf_c_message_get_packed_size(message);
	grpc_slice slice = grpc_slice_malloc(size);
	grpc_byte_buffer *buffer;

	protobuf_c_message_pack(message, GRPC_SLICE_START_PTR(slice));
	buffer = grpc_raw_byte_buffer_create(&slice, 1);
	grpc_slice_unref(slice);
	return buffer;
}

grpc_slice udsc_read_buffer(grpc_byte_buffer *buffer)
{
	grpc_byte_buffer_reader reader;
	grpc_slice slice;

	if (!grpc_byte_buffer_reader_init(&reader, buffer))
		return grpc_empty_slice();
	slice = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	return slice;
}

bool udsc_fill_replies(const Uds__V1__AdviceReply *reply, struct udsc_request *requests,
                       size_t count, bool array)
{
	struct udsc_request *request = requests;
	size_t found = 0;

	if (reply->results.len != count)
		return false;
	for (size_t i = 0; i < count; i++) {
		uint8_t result = reply->results.data[i];

		if (array)
			request = &requests[i];
		if (result & 16) {
			request->status = UDSC_FAILED;
			request->found = false;
		} else {
			request->status = UDSC_OK;
			request->found = (result & 1) != 0;
			request->location = (enum udsc_location)((result >> 1) & 7);
			if (request->found) {
				if ((found + 1) * UDSC_DATA_BYTES > reply->old_data.len)
					return false;
				memcpy(request->old_data,
				       reply->old_data.data + found * UDSC_DATA_BYTES,
				       UDSC_DATA_BYTES);
				found++;
			}
		}
		if (!array)
			request = request->next;
	}
	return found * UDSC_DATA_BYTES == reply->old_data.len;
}

const char *udsc_status_name(enum udsc_status status)
{
	static const char *const names[] = {
		[UDSC_OK] = "ok",
		[UDSC_TIMEOUT] = "timeout",
		[UDSC_UNAVAILABLE] = "unavailable",
		[UDSC_REFUSED] = "refused",
		[UDSC_FAILED] = "failed",
		[UDSC_OVERLOADED] = "overloaded",
		[UDSC_SHUTDOWN] = "shutdown",
		[UDSC_INVALID] = "invalid",
	};

	if ((unsigned int) status >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[status];
}
