/* poe-gateway: MIT licence. The TLS context client connections are accepted with (gateway.tls): the certificate chain and
 * key, TLS 1.2 at least, no compression, and ALPN offering h2 and http/1.1. libh2o does the handshakes on each worker's
 * loop with this one context (h2o_accept_ctx_t.ssl_ctx).
 */
#include <openssl/err.h>
#include <h2o.h>
#include "common/log.h"
#include "serve/tls.h"

#define MODULE_NAME "server" /* the tag these lines had before TLS left server.c */

SSL_CTX *pgw_tls_create_ctx(const pgw_config_t *conf)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, conf->tls_cert_file) != 1) {
        pgw_log_error(MODULE_NAME, "cannot load gateway.tls.cert_file %s: %s", conf->tls_cert_file,
                      ERR_reason_error_string(ERR_get_error()));
        goto Error;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, conf->tls_key_file, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        pgw_log_error(MODULE_NAME, "cannot load gateway.tls.key_file %s: %s", conf->tls_key_file,
                      ERR_reason_error_string(ERR_get_error()));
        goto Error;
    }
    /* h2o_http2_alpn_protocols lists only h2 and its drafts; a client that offers only http/1.1 should hear it back */
    static const h2o_iovec_t alpn[] = {{H2O_STRLIT("h2")}, {H2O_STRLIT("http/1.1")}, {NULL, 0}};
    h2o_ssl_register_alpn_protocols(ctx, alpn);
    return ctx;
Error:
    SSL_CTX_free(ctx);
    return NULL;
}
