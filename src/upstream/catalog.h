/* poe-gateway: MIT licence. Poe's model catalog (GET /v1/models): each bot's names, declared knobs, output limit and
 * features, fetched at start and every hour, shared read-only by the workers; `doctor` reads a catalog the same way. */
#ifndef PGW_CATALOG_H
#define PGW_CATALOG_H

#include <uv.h>
#include "config/config.h"
#include "upstream/upstream.h"

/* What a Poe bot declares in GET /v1/models: its knobs are what the request translator may set. */

typedef enum en_pgw_knob_type_t {
    PGW_KNOB_OTHER = 0,
    PGW_KNOB_INTEGER, /* schema type integer/number: min..max */
    PGW_KNOB_BOOLEAN,
    PGW_KNOB_ENUM, /* schema enum of strings: values[] */
} pgw_knob_type_t;

/** One entry of a bot's `parameters[]`. */
typedef struct st_pgw_knob_t {
    char *name;
    pgw_knob_type_t type;
    long long min, max; /* PGW_KNOB_INTEGER; LLONG_MIN / LLONG_MAX when the schema gives none */
    char **values;      /* PGW_KNOB_ENUM, in schema order */
    size_t num_values;
} pgw_knob_t;

/** A bot's `pricing`, in USD per token (per request for `request`); < 0 where the catalog gives none (null or absent). */
typedef struct st_pgw_price_t {
    double prompt, completion, cache_read, cache_write, request;
} pgw_price_t;

/** A bot as Poe's catalog describes it. */
typedef struct st_pgw_bot_t {
    char *id;                 /* catalog id, lower case ("gpt-5") */
    long long max_output_tokens; /* context_window.max_output_tokens; 0 when unknown */
    pgw_knob_t *knobs;
    size_t num_knobs;
    pgw_price_t price; /* pricing */
    long long context_length; /* context_window.context_length; 0 when unknown */
} pgw_bot_t;

#define PGW_CATALOG_REFRESH_MS (3600 * 1000)
#define PGW_CATALOG_RETRY_MS (60 * 1000)

/** One immutable snapshot of a catalog; reference-counted so that a refresh never frees one in use. */
typedef struct st_pgw_catalog_t pgw_catalog_t;

/**
 * Parses a catalog document. Returns a snapshot with one reference, or NULL with a message in `err`.
 */
pgw_catalog_t *pgw_catalog_parse(const char *json, size_t len, char *err, size_t errsz);
void pgw_catalog_retain(pgw_catalog_t *c);
void pgw_catalog_release(pgw_catalog_t *c);
size_t pgw_catalog_size(const pgw_catalog_t *c);
/** The `i`th bot of the catalog, in the document's order; `i` is below pgw_catalog_size. */
const pgw_bot_t *pgw_catalog_bot(const pgw_catalog_t *c, size_t i);

/** A number no other snapshot of the process has (a cache of what was looked up in one can tell it from the next). */
uint64_t pgw_catalog_serial(const pgw_catalog_t *c);

/**
 * Finds a bot by id or display name, case-insensitively (an id first), as Poe resolves the names a route may give. Used
 * both by the translated routes and by `doctor`, so that doctor finds exactly the bots the gateway finds.
 */
const pgw_bot_t *pgw_catalog_find(const pgw_catalog_t *c, const char *name, size_t len);

/** The bot's metadata.display_name ("GPT-5"), or its id when the catalog gives none. `bot` is from pgw_catalog_find. */
const char *pgw_catalog_display_name(const pgw_catalog_t *c, const pgw_bot_t *bot);

/** Whether the catalog lists `feature` ("tools") in the supported_features of `bot`, which pgw_catalog_find returned. */
int pgw_catalog_supports(const pgw_catalog_t *c, const pgw_bot_t *bot, const char *feature);

/**
 * Registers the distinct catalog of every openai/ route (and with `with_anthropic`, of every anthropic/ route: the ledger
 * prices their answers) not registered yet (at start, and again on a reload).
 * Returns how many were added.
 */
size_t pgw_catalogs_init(const pgw_config_t *conf, int with_anthropic);

/**
 * Starts fetching every registered catalog not fetched yet, with `up` on `loop` (worker 0 does this for the process): now,
 * then every PGW_CATALOG_REFRESH_MS; after a failure, again in PGW_CATALOG_RETRY_MS while none was ever loaded.
 */
void pgw_catalogs_start(uv_loop_t *loop, pgw_upstream_t *up);

/** The current snapshot for `api_base` with a reference taken, or NULL when none is loaded (yet). */
pgw_catalog_t *pgw_catalogs_get(const char *api_base);

/**
 * The same for the catalog of the host of an `anthropic/` route's `api_base` (the one an `openai/` route to that host
 * reads, when there is one): registered by pgw_catalogs_init when `with_anthropic` is set, for the prices the ledger needs.
 */
pgw_catalog_t *pgw_catalogs_get_for_route(const pgw_route_t *route);

#endif
