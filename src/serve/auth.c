/* poe-gateway: MIT licence. Who is calling: the inbound key check, as a pure function over header values. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include "serve/auth.h"

/* SHA-256 as OpenSSL 3 provides it, fetched once for the process: SHA256() fetches it from the provider anew on every
 * call (EVP_MD_fetch: a lock, a lookup, a reference), about 3 µs of each request's key check. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
    if ((sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
        abort();
}

static void sha256(const void *data, size_t len, unsigned char *out)
{
    pthread_once(&sha256_once, fetch_sha256);
    if (!EVP_Digest(data, len, out, NULL, sha256_md, NULL))
        abort();
}

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
    sha256(credential.base, credential.len, digest);
    if (conf->master_key != NULL) {
        sha256(conf->master_key, strlen(conf->master_key), master);
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
