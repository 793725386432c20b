/* poe-gateway: MIT licence. Unit tests for src/ledger/cost.c. */
#include <math.h>
#include "../../../../src/ledger/cost.c"
#include "../../test.h"

static int near(double a, double b)
{
    return fabs(a - b) < 1e-12;
}

static void test_spelling(void)
{
    char buf[64];
    ok(poe_spelling("claude-sonnet-4-5-20250929", buf, sizeof(buf)) == 0);
    is_str(buf, "claude-sonnet-4.5");
    ok(poe_spelling("claude-opus-4-1", buf, sizeof(buf)) == 0);
    is_str(buf, "claude-opus-4.1");
    ok(poe_spelling("claude-haiku-4-5-20251001", buf, sizeof(buf)) == 0);
    is_str(buf, "claude-haiku-4.5");
    ok(poe_spelling("gpt-5", buf, sizeof(buf)) != 0);             /* nothing to respell */
    ok(poe_spelling("claude-sonnet-4.5", buf, sizeof(buf)) != 0); /* already Poe's */
    ok(poe_spelling("4-5", buf, sizeof(buf)) != 0);
}

static void test_usd(void)
{
    pgw_price_t p = {0.0000026, 0.000013, 0.00000026, 0.0000033, -1};
    pgw_usage_t u = {500, 120, 400, 50};
    ok(near(pgw_cost_usd(&p, &u), 500 * 0.0000026 + 120 * 0.000013 + 400 * 0.00000026 + 50 * 0.0000033));
    /* no cache prices: cache tokens at the prompt price; a per-request price is added */
    pgw_price_t q = {0.000001, 0.000002, -1, -1, 0.01};
    ok(near(pgw_cost_usd(&q, &u), 500 * 0.000001 + 120 * 0.000002 + 450 * 0.000001 + 0.01));
    /* unknown prompt or completion price: unknown cost */
    pgw_price_t r = {-1, 0.000002, -1, -1, -1};
    ok(pgw_cost_usd(&r, &u) < 0);
}

static void test_find(void)
{
    static const char json[] =
        "{\"data\":[{\"id\":\"claude-sonnet-4.5\",\"pricing\":{\"prompt\":\"0.0000026\",\"completion\":\"0.000013\","
        "\"input_cache_read\":\"0.00000026\",\"input_cache_write\":null,\"request\":null}},"
        "{\"id\":\"grok-4\",\"pricing\":{\"prompt\":0.000003,\"completion\":\"bad\"}},{\"id\":\"free\"}]}";
    char err[128];
    pgw_catalog_t *c = pgw_catalog_parse(json, sizeof(json) - 1, err, sizeof(err));
    pgw_price_t p;
    ok(c != NULL);
    if (c == NULL)
        return;
    ok(pgw_cost_find_price(c, "claude-sonnet-4-5-20250929", &p) == 0);
    ok(near(p.prompt, 0.0000026) && near(p.completion, 0.000013) && near(p.cache_read, 0.00000026));
    ok(p.cache_write < 0 && p.request < 0);
    ok(pgw_cost_find_price(c, "Claude-Sonnet-4.5", &p) == 0);
    ok(pgw_cost_find_price(c, "grok-4", &p) == 0);
    ok(near(p.prompt, 0.000003) && p.completion < 0); /* a number is taken, a non-number is unknown */
    ok(pgw_cost_find_price(c, "free", &p) == 0);
    ok(p.prompt < 0);
    ok(pgw_cost_find_price(c, "nobody", &p) != 0);
    pgw_catalog_release(c);
}

void test_src__cost_c(void)
{
    subtest("Poe's spelling of Anthropic ids", test_spelling);
    subtest("USD from prices and usage", test_usd);
    subtest("prices from a catalog", test_find);
}
