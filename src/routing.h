/* poe-gateway: MIT licence. Maps method and path to a route handler; 404 and 405 for everything else. */
#ifndef PGW_ROUTING_H
#define PGW_ROUTING_H

#include <h2o.h>

/**
 * Registers the gateway's single dispatching handler on `hostconf`. Paths are matched exactly on the normalised path, so
 * the query string (Claude Code's `?beta=true`) never affects routing. Also registers pgw_errors_register's filter, so
 * that libh2o's own error answers on this host have the Anthropic shape too.
 */
void pgw_routing_register(h2o_hostconf_t *hostconf);

#endif
