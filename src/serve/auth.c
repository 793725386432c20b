/* poe-gateway: MIT licence. Who is calling: the inbound key check, as a pure function over header values. */
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include "serve/auth.h"

h2o_iovec_t pgw_auth_credential(h2o_iovec_t x_api_key, h2o_iovec_t authorization)
{
    if (x_api_key.base != NULL && x_api_key.len != 0)
        return x_api_key;
    if (authorization.base != NULL && authorization.len > 7 && strncasecmp(authorization.base, "bearer ", 7) == 0) {
        h2o_iovec_t token = h2o_iovec_init(authorization.base + 7, authorization.len - 7);
        while (token.len != 0 && token.base[0] == ' ') {
            ++token.base;
            --token.len;
        }
        while (token.len != 0 && token.base[token.len - 1] == ' ')
            --token.len;
        if (token.len != 0)
            return token;
    }
    return h2o_iovec_init(NULL, 0);
}

const char *pgw_auth_identify(const pgw_config_t *conf, h2o_iovec_t credential, const pgw_key_t **key)
{
    unsigned char digest[SHA256_DIGEST_LENGTH], master[SHA256_DIGEST_LENGTH];
    const char *name = NULL;

    *key = NULL;
    if (credential.base == NULL || credential.len == 0)
        return NULL;
    SHA256((const unsigned char *)credential.base, credential.len, digest);
    if (conf->master_key != NULL) {
        SHA256((const unsigned char *)conf->master_key, strlen(conf->master_key), master);
        if (CRYPTO_memcmp(digest, master, sizeof(digest)) == 0)
            name = "master";
    }
    /* no early exit: the time taken does not say which key, if any, matched */
    for (size_t i = 0; i != conf->num_keys; ++i) {
        const pgw_key_t *k = conf->keys + i;
        if ((CRYPTO_memcmp(digest, k->sha256, sizeof(digest)) == 0) & k->has_key & (name == NULL)) {
            name = k->name;
            *key = k;
        }
    }
    return name;
}
