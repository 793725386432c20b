/* poe-gateway: MIT licence. Who is calling: the inbound key check, as a pure function over header values. */
#ifndef PGW_AUTH_H
#define PGW_AUTH_H

#include <stdint.h>
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

/**
 * The value of the master key's browser session cookie (the /usage page): "<expiry in Unix seconds>.<HMAC-SHA256 of it
 * under the master key, hex>", written into `buf` (at least PGW_AUTH_COOKIE_MAX bytes). The key itself is never in it;
 * changing the master key ends every session. Returns the length, or 0 without a master key.
 */
#define PGW_AUTH_COOKIE_MAX 96
size_t pgw_auth_cookie_make(const pgw_config_t *conf, uint64_t expires_s, char *buf);

/** 1 when `value` is a cookie pgw_auth_cookie_make made under the current master key and not expired at `now_s`. */
int pgw_auth_cookie_check(const pgw_config_t *conf, h2o_iovec_t value, uint64_t now_s);

#endif
