/* poe-gateway: MIT licence. Configuration generations: a loaded configuration with its run-time state, reference-counted,
 * and the reload (SIGHUP) that makes a new one. */
#ifndef PGW_GENERATION_H
#define PGW_GENERATION_H

#include <stdatomic.h>
#include <stddef.h>
#include "config/config.h"
#include "common/cooldown.h"
#include "common/ratelimit.h"
#include "serve/shaper.h"

struct st_pgw_server_t;

/**
 * One loaded configuration and the run-time state that belongs to it. Requests hold a reference from start to end, so a
 * reload (SIGHUP) changes what new requests see while requests in flight finish on the generation they began with.
 */
typedef struct st_pgw_generation_t {
    atomic_size_t refs;
    unsigned id;
    pgw_config_t *conf;             /* owned */
    pgw_ratelimit_t *route_limits;  /* one per conf->routes entry, for its rpm (owned array) */
    pgw_ratelimit_t *key_limits;    /* one per conf->keys entry, for its rpm (owned array) */
    atomic_int *route_buffer_tools; /* one per route: set at run time when a stream showed the route needs buffer_tools */
    pgw_cooldown_t *route_cooldowns; /* one per route: its failures and rest (docs/config.md#fallbacks) (owned array) */
    pgw_shaper_bucket_t *buckets;   /* one per distinct upstream key (owned array) */
    size_t num_buckets;
    pgw_shaper_bucket_t **route_bucket; /* per route: its upstream key's bucket, NULL without a key */
} pgw_generation_t;

/**
 * Makes generation `id` of `conf`, which it owns from now on: a rate budget per route and per key, and one shaper bucket
 * per distinct upstream key (routes that share a Poe key share its rate). The caller holds the one reference.
 */
pgw_generation_t *pgw_generation_create(pgw_config_t *conf, unsigned id);

/**
 * Drops one reference; the last frees the generation and its configuration. Any thread may call it.
 */
void pgw_generation_release(pgw_generation_t *g);

/**
 * A new reference to the server's latest generation (server->current, read under current_mutex). Any thread may call it.
 */
pgw_generation_t *pgw_generation_acquire(struct st_pgw_server_t *server);

/**
 * Re-reads the configuration file (SIGHUP, on the main thread). New requests use the new routes and keys; requests in
 * flight finish on theirs. A file that does not load is rejected with the error logged, and the running configuration
 * stays. The command-line overrides (server->cli) apply again. Settings read once at start (host, port, threads, tls,
 * ssl_ca_file, max_body_bytes, idle_timeout, graceful_timeout, log_level, max_connections, upstream_connections,
 * upstream_client) keep their first values, with a
 * warning each, and the "reloaded" line names them. Every worker is woken (its `reload` handle) to take the new
 * generation. Returns 0 when the new configuration is in use.
 */
int pgw_generation_reload(struct st_pgw_server_t *server);

#endif
