/* poe-gateway: MIT licence. Configuration generations: a loaded configuration with the run-time state that belongs to
 * it, reference-counted, and the reload that makes a new one.
 *
 * A request keeps the generation it began with until it ends (r->gen), each worker the one its new requests get
 * (w->gen), the server the latest (server->current, behind current_mutex) and the first for good (server->boot). A
 * reload (SIGHUP, on the main thread) loads the file again, keeps the settings only a restart applies at their first
 * values (with a warning each), swaps server->current, and wakes every worker to take the new generation; requests in
 * flight finish on theirs. The last reference released frees the generation and its configuration. Route and key state
 * is indexed by position in conf->routes and conf->keys, which is why r->conf and r->gen always go together.
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/sha.h>
#include "upstream/catalog.h"
#include "common/clock.h"
#include "serve/generation.h"
#include "common/log.h"
#include "config/masterkey.h"
#include "serve/server.h"

#define MODULE_NAME "server" /* the tag these lines had before generations left server.c */

pgw_generation_t *pgw_generation_create(pgw_config_t *conf, unsigned id)
{
    pgw_generation_t *g = h2o_mem_alloc(sizeof(*g));
    uint64_t now = pgw_now_ms();
    atomic_init(&g->refs, 1);
    g->id = id;
    g->conf = conf;
    g->route_limits = h2o_mem_alloc(sizeof(*g->route_limits) * (conf->num_routes + 1));
    g->route_buffer_tools = h2o_mem_alloc(sizeof(*g->route_buffer_tools) * (conf->num_routes + 1));
    g->route_cooldowns = h2o_mem_alloc(sizeof(*g->route_cooldowns) * (conf->num_routes + 1));
    for (size_t i = 0; i != conf->num_routes; ++i) {
        pgw_ratelimit_init(g->route_limits + i, conf->routes[i].rpm, now);
        atomic_init(g->route_buffer_tools + i, conf->routes[i].buffer_tools);
        pgw_cooldown_init(g->route_cooldowns + i);
    }
    g->key_limits = h2o_mem_alloc(sizeof(*g->key_limits) * (conf->num_keys + 1));
    for (size_t i = 0; i != conf->num_keys; ++i)
        pgw_ratelimit_init(g->key_limits + i, conf->keys[i].rpm, now);
    /* one shaper bucket per distinct upstream key: routes sharing a Poe key share its 500 requests a minute */
    g->buckets = h2o_mem_alloc(sizeof(*g->buckets) * (conf->num_routes + 1));
    g->num_buckets = 0;
    g->route_bucket = h2o_mem_alloc(sizeof(*g->route_bucket) * (conf->num_routes + 1));
    for (size_t i = 0; i != conf->num_routes; ++i) {
        g->route_bucket[i] = NULL;
        if (conf->routes[i].api_key == NULL)
            continue;
        unsigned char digest[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)conf->routes[i].api_key, strlen(conf->routes[i].api_key), digest);
        size_t j;
        for (j = 0; j != g->num_buckets; ++j)
            if (memcmp(g->buckets[j].key_digest, digest, sizeof(digest)) == 0)
                break;
        if (j == g->num_buckets) {
            pgw_shaper_bucket_init(g->buckets + j, conf->upstream_rpm, conf->upstream_burst, now);
            memcpy(g->buckets[j].key_digest, digest, sizeof(digest));
            ++g->num_buckets;
        }
        g->route_bucket[i] = g->buckets + j;
    }
    return g;
}

void pgw_generation_release(pgw_generation_t *g)
{
    if (atomic_fetch_sub(&g->refs, 1) != 1)
        return;
    for (size_t i = 0; i != g->conf->num_routes; ++i) {
        pgw_ratelimit_dispose(g->route_limits + i);
        pgw_cooldown_dispose(g->route_cooldowns + i);
    }
    free(g->route_cooldowns);
    for (size_t i = 0; i != g->conf->num_keys; ++i)
        pgw_ratelimit_dispose(g->key_limits + i);
    free(g->route_limits);
    free(g->route_buffer_tools);
    free(g->key_limits);
    for (size_t i = 0; i != g->num_buckets; ++i)
        pgw_shaper_bucket_dispose(g->buckets + i);
    free(g->buckets);
    free(g->route_bucket);
    pgw_config_dispose(g->conf);
    free(g->conf);
    free(g);
}

pgw_generation_t *pgw_generation_acquire(pgw_server_t *server)
{
    pthread_mutex_lock(&server->current_mutex);
    pgw_generation_t *g = server->current;
    atomic_fetch_add(&g->refs, 1);
    pthread_mutex_unlock(&server->current_mutex);
    return g;
}

int pgw_generation_reload(pgw_server_t *server)
{
    const pgw_config_t *boot = server->conf;
    pgw_config_t *conf = h2o_mem_alloc(sizeof(*conf));
    char err[1024];

    /* the env file first: the configuration's os.environ/ values come from it (docs/config.md#reload) */
    if (pgw_dotenv_reload(err, sizeof(err)) != 0) {
        pgw_log_error(MODULE_NAME, "reload refused, the running configuration stays: %s", err);
        free(conf);
        return -1;
    }
    if (pgw_config_load(conf, boot->path, err, sizeof(err)) != 0) {
        pgw_log_error(MODULE_NAME, "reload refused, the running configuration stays: %s", err);
        free(conf);
        return -1;
    }
    if (pgw_masterkey_ensure(conf, err, sizeof(err)) != 0) {
        pgw_log_error(MODULE_NAME, "reload refused, the running configuration stays: %s", err);
        pgw_config_dispose(conf);
        free(conf);
        return -1;
    }
    pgw_config_warn_missing_env(conf);
    if (server->cli.host != NULL) {
        free(conf->host);
        conf->host = strdup(server->cli.host);
    }
    if (server->cli.port_set)
        conf->port = server->cli.port;
    if (server->cli.threads_set)
        conf->threads = server->cli.threads;
    /* what is read once at start (listeners, threads, TLS, the upstream clients' CA, ...) keeps its first value */
    char kept[256] = "";
#define CHANGED(a, b) (((a) == NULL) != ((b) == NULL) || ((a) != NULL && strcmp((a), (b)) != 0))
#define KEPT(cond, what)                                                                                                           \
    if (cond) {                                                                                                                    \
        pgw_log_warn(MODULE_NAME, "reload: gateway.%s changed; it takes effect only at a restart", what);                         \
        snprintf(kept + strlen(kept), sizeof(kept) - strlen(kept), "%s%s", kept[0] != '\0' ? ", " : "", what);                    \
    }
    KEPT(strcmp(conf->host, boot->host) != 0 || (conf->port != boot->port && boot->port != 0), "host/port")
    KEPT(conf->threads != boot->threads && conf->threads != 0, "threads")
    KEPT(CHANGED(conf->tls_cert_file, boot->tls_cert_file) || CHANGED(conf->tls_key_file, boot->tls_key_file), "tls")
    KEPT(CHANGED(conf->ssl_ca_file, boot->ssl_ca_file), "ssl_ca_file")
    KEPT(conf->max_body_bytes != boot->max_body_bytes, "max_body_bytes")
    KEPT(conf->idle_timeout != boot->idle_timeout, "idle_timeout")
    KEPT(conf->graceful_timeout != boot->graceful_timeout, "graceful_timeout")
    KEPT(CHANGED(conf->log_level, boot->log_level), "log_level")
    KEPT(conf->max_connections != boot->max_connections, "max_connections")
    KEPT(conf->upstream_connections != boot->upstream_connections, "upstream_connections")
    KEPT(conf->upstream_client_curl != boot->upstream_client_curl, "upstream_client")
    KEPT(conf->ledger_enabled != boot->ledger_enabled || CHANGED(conf->ledger_path, boot->ledger_path) ||
             conf->ledger_retention_days != boot->ledger_retention_days || conf->ledger_max_bytes != boot->ledger_max_bytes ||
             conf->reconcile_interval != boot->reconcile_interval,
         "ledger")
#undef KEPT
#undef CHANGED

    pgw_catalogs_init(conf, conf->ledger_enabled);
    pthread_mutex_lock(&server->current_mutex);
    pgw_generation_t *old = server->current;
    server->current = pgw_generation_create(conf, old->id + 1);
    unsigned id = server->current->id;
    pthread_mutex_unlock(&server->current_mutex);
    pgw_generation_release(old);
    for (unsigned i = 0; i != server->num_workers; ++i)
        uv_async_send(&server->workers[i].reload);
    pgw_log_info(MODULE_NAME, "reloaded %s: %zu routes, %zu keys (configuration %u)%s%s", boot->path, conf->num_routes,
                 conf->num_keys, id, kept[0] != '\0' ? "; kept until a restart: " : "", kept);
    return 0;
}
