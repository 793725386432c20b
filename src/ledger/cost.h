/* poe-gateway: MIT licence. What a request cost, in USD, from Poe's catalog prices and the usage its answer reported. */
#ifndef PGW_COST_H
#define PGW_COST_H

#include "common/usage.h"
#include "config/config.h"
#include "upstream/catalog.h"

/**
 * The USD cost of `u` at `price`: input × prompt + output × completion + cache reads × input_cache_read + cache writes ×
 * input_cache_write (each cache price falls back to the prompt price where the catalog gives none) + request. Returns
 * < 0 when the prompt or completion price is unknown (docs/ledger.md#cost).
 */
double pgw_cost_usd(const pgw_price_t *price, const pgw_usage_t *u);

/**
 * Finds `bot`'s price in `c`: the bot as named (pgw_catalog_find), else an Anthropic model id in Poe's spelling
 * (claude-sonnet-4-5-20250929 → claude-sonnet-4.5). Returns 0 with *out set, or -1.
 */
int pgw_cost_find_price(const pgw_catalog_t *c, const char *bot, pgw_price_t *out);

/** The cost of a request `route` sent to `bot`, from the route's catalog as loaded now; < 0 when it is unknown. */
double pgw_cost_of_request(const pgw_route_t *route, const char *bot, const pgw_usage_t *u);

#endif
