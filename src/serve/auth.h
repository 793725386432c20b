/* poe-gateway: MIT licence. Who is calling: the inbound key check, as a pure function over header values. */
#ifndef PGW_AUTH_H
#define PGW_AUTH_H

#include <h2o/memory.h>
#include "config/config.h"

/**
 * Extracts the credential from `x-api-key: K` or `authorization: Bearer K` (x-api-key wins when both are sent).
 * Returns {NULL, 0} when neither carries one.
 */
h2o_iovec_t pgw_auth_credential(h2o_iovec_t x_api_key, h2o_iovec_t authorization);

/**
 * Identifies the caller from the credential: the master key, or one of gateway.keys. Returns the caller's name
 * ("master" or the key's name) and sets *key to the named key (NULL for the master key); returns NULL when the
 * credential is missing or matches nothing. Every configured key is compared, in constant time, whatever matches.
 */
const char *pgw_auth_identify(const pgw_config_t *conf, h2o_iovec_t credential, const pgw_key_t **key);

#endif
