/* poe-gateway: MIT licence. Who is calling: the inbound key check, as a pure function over header values. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
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

/* the HMAC of "pgw-usage:<expires>" under the master key, hex, into out (65 bytes) */
static int cookie_mac(const pgw_config_t *conf, const char *expires, size_t len, char *out)
{
    unsigned char mac[EVP_MAX_MD_SIZE], msg[64];
    unsigned maclen = 0;
    if (conf->master_key == NULL || len > sizeof(msg) - 10)
        return -1;
    memcpy(msg, "pgw-usage:", 10);
    memcpy(msg + 10, expires, len);
    if (HMAC(EVP_sha256(), conf->master_key, (int)strlen(conf->master_key), msg, 10 + len, mac, &maclen) == NULL)
        return -1;
    for (unsigned i = 0; i != maclen && i != 32; ++i)
        sprintf(out + i * 2, "%02x", mac[i]);
    return 0;
}

size_t pgw_auth_cookie_make(const pgw_config_t *conf, uint64_t expires_s, char *buf)
{
    char mac[65];
    int n = snprintf(buf, PGW_AUTH_COOKIE_MAX, "%llu", (unsigned long long)expires_s);
    if (cookie_mac(conf, buf, (size_t)n, mac) != 0)
        return 0;
    return (size_t)(n + snprintf(buf + n, PGW_AUTH_COOKIE_MAX - n, ".%s", mac));
}

int pgw_auth_cookie_check(const pgw_config_t *conf, h2o_iovec_t value, uint64_t now_s)
{
    char expires[32], mac[65];
    const char *dot = value.base != NULL ? memchr(value.base, '.', value.len) : NULL;
    if (dot == NULL || dot == value.base || (size_t)(dot - value.base) >= sizeof(expires) ||
        value.len - (dot + 1 - value.base) != 64)
        return 0;
    memcpy(expires, value.base, dot - value.base);
    expires[dot - value.base] = '\0';
    if (strspn(expires, "0123456789") != strlen(expires) || strtoull(expires, NULL, 10) <= now_s)
        return 0;
    if (cookie_mac(conf, expires, strlen(expires), mac) != 0)
        return 0;
    return CRYPTO_memcmp(mac, dot + 1, 64) == 0;
}
