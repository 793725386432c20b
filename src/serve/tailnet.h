/* poe-gateway: MIT licence. Who is calling, by tailnet identity: tailscaled's LocalAPI whois for the peer address. */
#ifndef PGW_TAILNET_H
#define PGW_TAILNET_H

#include "serve/request.h"

/**
 * Called once with the caller's tailnet login name, or NULL when tailscaled does not know the peer (or cannot be
 * asked). Not called when the request ends first.
 */
typedef void (*pgw_tailnet_cb)(pgw_request_t *r, const char *login);

/** Returns 1 when `path` is a unix socket that exists. */
int pgw_tailnet_available(const char *path);

/**
 * Asks tailscaled (LocalAPI GET /localapi/v0/whois?addr=<peer>) who the request's peer is, through `socket_path`. Answers
 * are cached per peer address for PGW_TAILNET_CACHE_MS, so the callback may run before this returns.
 */
void pgw_tailnet_whois(pgw_request_t *r, const char *socket_path, pgw_tailnet_cb cb);

#define PGW_TAILNET_CACHE_MS 60000

/** Extracts UserProfile.LoginName from a whois answer into `out`. Returns 0, or -1 when absent. */
int pgw_tailnet_parse_whois(const char *json, size_t len, char *out, size_t outsz);

#endif
