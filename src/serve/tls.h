/* poe-gateway: MIT licence. The TLS context client connections are accepted with (gateway.tls). */
#ifndef PGW_TLS_H
#define PGW_TLS_H

#include <openssl/ssl.h>
#include "config/config.h"

/**
 * Makes the server-side TLS context from gateway.tls.cert_file (a PEM chain) and key_file: TLS 1.2 or later, no
 * compression, ALPN answering h2 or http/1.1. Returns NULL after logging which file did not load (the caller refuses to
 * start). The context belongs to the caller (SSL_CTX_free).
 */
SSL_CTX *pgw_tls_create_ctx(const pgw_config_t *conf);

#endif
