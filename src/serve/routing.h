/* poe-gateway: MIT licence. The dispatcher: matches method and path against a table of paths, identifies the caller
 * where a path needs it, and runs the path's handler; 404 and 405 for everything else. The table belongs to handlers/. */
#ifndef PGW_ROUTING_H
#define PGW_ROUTING_H

#include <stddef.h>
#include <h2o.h>
#include "serve/request.h"

/* The methods a path answers, as bits of pgw_path_t.methods. */
#define PGW_METHOD_GET 1
#define PGW_METHOD_HEAD 2
#define PGW_METHOD_POST 4

/* Who may call a path. */
typedef enum en_pgw_path_auth_t {
    PGW_PATH_AUTH_NONE,    /* anyone (probes) */
    PGW_PATH_AUTH_KEY,     /* a key, or (gateway.auth: tailscale) a tailnet identity */
    PGW_PATH_AUTH_METRICS, /* as gateway.metrics_auth says: nobody is asked with "none", else as PGW_PATH_AUTH_KEY */
} pgw_path_auth_t;

/** One path the gateway answers, and the handler that answers it. */
typedef struct st_pgw_path_t {
    const char *path;
    size_t path_len;
    int prefix;        /* match paths below `path` too (e.g. /v1/models/{id}) */
    int methods;       /* PGW_METHOD_* bits */
    const char *allow; /* value of the Allow header on 405 */
    pgw_path_auth_t auth;
    int (*handler)(pgw_request_t *r); /* returns 0 once it has sent (or started) a response */
} pgw_path_t;

/**
 * Registers the gateway's single dispatching handler on `hostconf`, over `paths` (which must outlive the host
 * configuration; the first entry that matches wins, so a prefix entry goes after the paths below it). Paths are matched
 * exactly on the normalised path, so the query string (Claude Code's `?beta=true`) never affects routing; a trailing
 * `/` is tolerated. Every request gets its pgw_request_t (pgw_request_begin) first; a handler of an authenticated path
 * runs once the caller is identified (r->key_name, r->key), maybe later, after a tailnet whois. Also registers
 * pgw_errors_register's filter, so that libh2o's own error answers on this host have the Anthropic shape too.
 */
void pgw_routing_register(h2o_hostconf_t *hostconf, const pgw_path_t *paths, size_t num_paths);

#endif
