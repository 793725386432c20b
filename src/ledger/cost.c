/* poe-gateway: MIT licence. What a request cost (src/ledger/cost.h). Poe bills in points; its catalog gives USD per token
 * (docs/ledger.md#cost), and the gateway converts with gateway.points_per_usd where points are wanted. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include "common/log.h"
#include "ledger/cost.h"

#define MODULE_NAME "cost"

double pgw_cost_usd(const pgw_price_t *p, const pgw_usage_t *u)
{
    if (p->prompt < 0 || p->completion < 0)
        return -1;
    double cache_read = p->cache_read >= 0 ? p->cache_read : p->prompt,
           cache_write = p->cache_write >= 0 ? p->cache_write : p->prompt;
    double usd = (double)u->input_tokens * p->prompt + (double)u->output_tokens * p->completion +
                 (double)u->cache_read_input_tokens * cache_read + (double)u->cache_creation_input_tokens * cache_write;
    if (p->request > 0)
        usd += p->request;
    return usd;
}

/* "claude-sonnet-4-5-20250929" → "claude-sonnet-4.5": the date suffix dropped, the last "-N-M" written "-N.M". */
static int poe_spelling(const char *bot, char *out, size_t outsz)
{
    size_t len = strlen(bot);
    if (len + 1 > outsz)
        return -1;
    memcpy(out, bot, len + 1);
    if (len > 9 && out[len - 9] == '-' && strspn(out + len - 8, "0123456789") == 8)
        out[len -= 9] = '\0';
    /* ...-<digits>-<digits> at the end */
    size_t i = len;
    while (i != 0 && isdigit((unsigned char)out[i - 1]))
        --i;
    if (i == len || i < 3 || out[i - 1] != '-')
        return -1;
    size_t dash = i - 1, j = dash;
    while (j != 0 && isdigit((unsigned char)out[j - 1]))
        --j;
    if (j == dash || j == 0 || out[j - 1] != '-')
        return -1;
    out[dash] = '.';
    return 0;
}

int pgw_cost_find_price(const pgw_catalog_t *c, const char *bot, pgw_price_t *out)
{
    char alt[256];
    const pgw_bot_t *b = pgw_catalog_find(c, bot, strlen(bot));
    if (b == NULL && poe_spelling(bot, alt, sizeof(alt)) == 0)
        b = pgw_catalog_find(c, alt, strlen(alt));
    if (b == NULL)
        return -1;
    *out = b->price;
    return 0;
}

/* The prices each worker looked up last, by catalog snapshot and bot: Poe's catalog lists hundreds of bots, and a
 * worker's requests go to a handful of them. */
#define PRICE_CACHE_SIZE 16
static __thread struct price_cache_entry {
    uint64_t serial; /* 0: empty */
    char bot[128];
    int found;
    pgw_price_t price;
} price_cache[PRICE_CACHE_SIZE];
static __thread size_t price_cache_next;

static int cached_price(const pgw_catalog_t *c, const char *bot, pgw_price_t *out)
{
    uint64_t serial = pgw_catalog_serial(c);
    for (size_t i = 0; i != PRICE_CACHE_SIZE; ++i) {
        struct price_cache_entry *e = price_cache + i;
        if (e->serial == serial && strcmp(e->bot, bot) == 0) {
            *out = e->price;
            return e->found ? 0 : -1;
        }
    }
    int ret = pgw_cost_find_price(c, bot, out);
    if (strlen(bot) < sizeof(price_cache[0].bot)) {
        struct price_cache_entry *e = price_cache + price_cache_next++ % PRICE_CACHE_SIZE;
        e->serial = serial;
        strcpy(e->bot, bot);
        e->found = ret == 0;
        e->price = *out;
    }
    return ret;
}

double pgw_cost_of_request(const pgw_route_t *route, const char *bot, const pgw_usage_t *u)
{
    pgw_catalog_t *c = pgw_catalogs_get_for_route(route);
    pgw_price_t price = {-1, -1, -1, -1, -1};
    double usd = -1;
    if (c != NULL) {
        if (cached_price(c, bot, &price) == 0)
            usd = pgw_cost_usd(&price, u);
        pgw_catalog_release(c);
    }
    return usd;
}
