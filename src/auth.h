/* poe-gateway: MIT licence. Who is calling: the inbound key check, as a pure function over header values. */
#ifndef PGW_AUTH_H
#define PGW_AUTH_H

#include <h2o/memory.h>
#include "config.h"

/**
 * Extracts the credential from `x-api-key: K` or `authorization: Bearer K` (x-api-key wins when both are sent).
 * Returns {NULL, 0} when neither carries one.
 */
h2o_iovec_t pgw_auth_credential(h2o_iovec_t x_api_key, h2o_iovec_t authorization);

/**
 * Compares two secrets in time that depends only on their SHA-256 digests, never on where they first differ.
 * Returns 1 when equal.
 */
int pgw_auth_secret_equals(const char *a, size_t alen, const char *b, size_t blen);

/**
 * Identifies the caller from the credential. Returns the key's name ("master") or NULL when the credential is missing
 * or matches no configured key.
 */
const char *pgw_auth_identify(const pgw_config_t *conf, h2o_iovec_t credential);

#endif
