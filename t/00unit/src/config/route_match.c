/* poe-gateway: MIT licence. Unit tests for src/config/route_match.c: route lookup, wildcards, upstream names, suggestions. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <h2o/string_.h>
#include "../../../../src/config/route_match.c"
#include "../../test.h"

/* Loads `yaml` through a temporary file (the loader's own messages are tested in t/00unit/src/config/config.c). */
static int load_yaml(pgw_config_t *conf, const char *yaml)
{
    char path[64], err[1024];
    make_temp_file(path, sizeof(path), yaml);
    int ret = pgw_config_load(conf, path, err, sizeof(err));
    unlink(path);
    if (ret != 0)
        note("%s", err);
    return ret;
}

static const char routes_yaml[] = "model_list:\n"
                                  "  - model_name: claude-*\n"
                                  "    litellm_params: {model: anthropic/*}\n"
                                  "  - model_name: claude-sonnet-4-5\n"
                                  "    litellm_params: {model: anthropic/claude-sonnet-4.5}\n"
                                  "  - model_name: \"*-preview\"\n"
                                  "    litellm_params: {model: openai/*-Preview}\n"
                                  "  - model_name: \"*\"\n"
                                  "    litellm_params: {model: openai/Assistant}\n"
                                  "  - model_name: gpt-*\n"
                                  "    litellm_params: {model: openai/GPT}\n";

static void test_find_route(void)
{
    pgw_config_t conf;
    const pgw_route_t *route;

    is_int(load_yaml(&conf, routes_yaml), 0);
    is_int(conf.num_routes, 5);

    /* exact beats a wildcard listed before it */
    route = pgw_config_find_route(&conf, "claude-sonnet-4-5", 17);
    is_str(route != NULL ? route->model_name : NULL, "claude-sonnet-4-5");
    /* among wildcards the first in file order wins */
    route = pgw_config_find_route(&conf, "claude-x-preview", 16);
    is_str(route != NULL ? route->model_name : NULL, "claude-*");
    route = pgw_config_find_route(&conf, "o3-preview", 10);
    is_str(route != NULL ? route->model_name : NULL, "*-preview");
    route = pgw_config_find_route(&conf, "gpt-5", 5);
    is_str(route != NULL ? route->model_name : NULL, "*");
    /* case-sensitive: not the exact route, and not claude-* either */
    route = pgw_config_find_route(&conf, "Claude-Sonnet-4-5", 17);
    is_str(route != NULL ? route->model_name : NULL, "*");
    /* the length bounds the name: "claude-sonnet-4-5" is the first 17 bytes */
    route = pgw_config_find_route(&conf, "claude-sonnet-4-5-20250929", 17);
    is_str(route != NULL ? route->model_name : NULL, "claude-sonnet-4-5");
    pgw_config_dispose(&conf);

    is_int(load_yaml(&conf, "model_list:\n  - model_name: a\n    litellm_params: {model: openai/A}\n"), 0);
    ok(pgw_config_find_route(&conf, "b", 1) == NULL);
    ok(pgw_config_find_route(&conf, "", 0) == NULL);
    ok(pgw_config_find_route(&conf, "a", 1) == conf.routes);
    pgw_config_dispose(&conf);
}

static void test_wildcard_match(void)
{
    ok(pgw_wildcard_match("*", "", 0));
    ok(pgw_wildcard_match("*", "anything", 8));
    ok(pgw_wildcard_match("", "", 0));
    ok(!pgw_wildcard_match("", "a", 1));
    ok(pgw_wildcard_match("claude-*", "claude-", 7));
    ok(pgw_wildcard_match("claude-*", "claude-opus-4-5", 15));
    ok(!pgw_wildcard_match("claude-*", "claude", 6));
    ok(!pgw_wildcard_match("claude-*", "Claude-opus", 11));
    ok(pgw_wildcard_match("*-4-5", "claude-opus-4-5", 15));
    ok(!pgw_wildcard_match("*-4-5", "claude-opus-4-5x", 16));
    ok(pgw_wildcard_match("a*b*c", "axxbyyc", 7));
    ok(!pgw_wildcard_match("a*b*c", "axxbyy", 6));
    ok(pgw_wildcard_match("*ab", "aab", 3)); /* needs backtracking */
    ok(pgw_wildcard_match("a**b", "ab", 2));
    ok(!pgw_wildcard_match("a*a", "a", 1));
    ok(pgw_wildcard_match("abc", "abcdef", 3)); /* only len bytes count */
    ok(!pgw_wildcard_match("abc", "ab\0", 3));
}

static void test_upstream_model(void)
{
    pgw_route_t route = {.model_name = "*", .is_wildcard = 1, .upstream_model = "*"};
    char buf[16];

    is_int(pgw_route_upstream_model(&route, "claude-x", 8, buf, sizeof(buf)), 8);
    is_str(buf, "claude-x");
    route.upstream_model = "pre-*-mid-*";
    is_int(pgw_route_upstream_model(&route, "ab", 2, buf, sizeof(buf)), 13);
    is_str(buf, "pre-ab-mid-ab");
    route.upstream_model = "Claude-Sonnet-4.5";
    is_int(pgw_route_upstream_model(&route, "ignored", 7, buf, sizeof(buf)), -1); /* 17 + NUL > 16 */
    route.upstream_model = "GPT-5";
    is_int(pgw_route_upstream_model(&route, "gpt-5", 5, buf, sizeof(buf)), 5);
    is_str(buf, "GPT-5");
    /* exactly fits: 15 characters and the NUL */
    route.upstream_model = "*";
    is_int(pgw_route_upstream_model(&route, "123456789012345", 15, buf, sizeof(buf)), 15);
    is_str(buf, "123456789012345");
    is_int(pgw_route_upstream_model(&route, "1234567890123456", 16, buf, sizeof(buf)), -1);
    route.upstream_model = "x*";
    is_int(pgw_route_upstream_model(&route, "123456789012345", 15, buf, sizeof(buf)), -1);
    is_int(pgw_route_upstream_model(&route, "", 0, buf, 0), -1);
    is_int(pgw_route_upstream_model(&route, "", 0, buf, 2), 1);
    is_str(buf, "x");

    /* on an exact route a '*' is the route's own name, whatever name (an alias) the client used */
    pgw_route_t exact = {.model_name = "gpt-5", .upstream_model = "*"};
    is_int(pgw_route_upstream_model(&exact, "claude-via-poe-gpt-5", 20, buf, sizeof(buf)), 5);
    is_str(buf, "gpt-5");
}

static void test_picker_alias(void)
{
    pgw_config_t conf;
    char buf[64];

    ok(pgw_picker_keeps("claude-opus-4-5", 15));
    ok(pgw_picker_keeps("Claude", 6));
    ok(pgw_picker_keeps("ANTHROPIC/x", 11));
    ok(!pgw_picker_keeps("claud", 5));
    ok(!pgw_picker_keeps("gpt-5", 5));
    ok(!pgw_picker_keeps("my-claude", 9)); /* the documented rule is the start of the id */

    is_int(load_yaml(&conf, "model_list:\n"
                            "  - {model_name: gpt-5, litellm_params: {model: openai/GPT-5}}\n"
                            "  - {model_name: gemini-2.5-pro, litellm_params: {model: openai/Gemini-2.5-Pro}}\n"
                            "  - {model_name: claude-via-poe-gemini-2.5-pro, litellm_params: {model: openai/Other}}\n"
                            "  - {model_name: claude-sonnet-4-5, litellm_params: {model: anthropic/claude-sonnet-4.5}}\n"
                            "  - {model_name: 'o*', litellm_params: {model: openai/*}}\n"
                            "  - {model_name: 'claude-*', litellm_params: {model: anthropic/*}}\n"),
           0);
    const pgw_route_t *gpt = conf.routes, *gemini = conf.routes + 1, *taken = conf.routes + 2;
    is_int(pgw_route_picker_alias(&conf, gpt, buf, sizeof(buf)), 20);
    is_str(buf, "claude-via-poe-gpt-5");
    is_int(pgw_route_picker_alias(&conf, gpt, buf, 20), 0); /* no room for the NUL */
    /* an exact route holds the alias's name: no alias, and the name routes to that route */
    is_int(pgw_route_picker_alias(&conf, gemini, buf, sizeof(buf)), 0);
    ok(pgw_config_find_route(&conf, H2O_STRLIT("claude-via-poe-gemini-2.5-pro")) == taken);
    ok(pgw_config_find_alias(&conf, H2O_STRLIT("claude-via-poe-gemini-2.5-pro")) == NULL);
    /* names the picker keeps, and wildcards, have none */
    is_int(pgw_route_picker_alias(&conf, conf.routes + 2, buf, sizeof(buf)), 0);
    is_int(pgw_route_picker_alias(&conf, conf.routes + 3, buf, sizeof(buf)), 0);
    is_int(pgw_route_picker_alias(&conf, conf.routes + 4, buf, sizeof(buf)), 0);

    /* the alias routes to its route, before the claude-* wildcard that would otherwise take it */
    ok(pgw_config_find_alias(&conf, H2O_STRLIT("claude-via-poe-gpt-5")) == gpt);
    ok(pgw_config_find_route(&conf, H2O_STRLIT("claude-via-poe-gpt-5")) == gpt);
    /* only exact routes have aliases, and only those the picker would drop */
    ok(pgw_config_find_alias(&conf, H2O_STRLIT("claude-via-poe-o3")) == NULL);
    ok(pgw_config_find_route(&conf, H2O_STRLIT("claude-via-poe-o3")) == conf.routes + 5);
    ok(pgw_config_find_alias(&conf, H2O_STRLIT("claude-via-poe-claude-sonnet-4-5")) == NULL);
    ok(pgw_config_find_alias(&conf, H2O_STRLIT("claude-via-poe-")) == NULL);
    ok(pgw_config_find_alias(&conf, H2O_STRLIT("claude-via-poe-gpt-")) == NULL);
    pgw_config_dispose(&conf);
}

static void test_suggest(void)
{
    pgw_config_t conf;
    const char *out[8];

    is_int(load_yaml(&conf, "model_list:\n"
                            "  - {model_name: claude-sonnet-4-5, litellm_params: {model: anthropic/s}}\n"
                            "  - {model_name: claude-*, litellm_params: {model: anthropic/*}}\n"
                            "  - {model_name: claude-opus-4-5, litellm_params: {model: anthropic/o}}\n"
                            "  - {model_name: aaa, litellm_params: {model: openai/a}}\n"
                            "  - {model_name: bbb, litellm_params: {model: openai/b}}\n"
                            "  - {model_name: aab, litellm_params: {model: openai/c}}\n"),
           0);
    is_int(pgw_config_suggest(&conf, "claude-sonet-4-5", 16, out, 2), 2);
    is_str(out[0], "claude-sonnet-4-5");
    is_str(out[1], "claude-opus-4-5");
    /* case-insensitive */
    is_int(pgw_config_suggest(&conf, "CLAUDE-OPUS-4-5", 15, out, 1), 1);
    is_str(out[0], "claude-opus-4-5");
    /* bbb and aab are both 1 away from abb: file order breaks the tie; aaa is 2 away */
    is_int(pgw_config_suggest(&conf, "abb", 3, out, 3), 3);
    is_str(out[0], "bbb");
    is_str(out[1], "aab");
    is_str(out[2], "aaa");
    /* wildcards are never suggested, so at most the five exact names */
    is_int(pgw_config_suggest(&conf, "x", 1, out, 8), 5);
    for (size_t i = 0; i != 5; ++i)
        ok(strchr(out[i], '*') == NULL);
    is_int(pgw_config_suggest(&conf, "x", 1, out, 0), 0);
    /* the client's name is bounded, not NUL-terminated */
    is_int(pgw_config_suggest(&conf, "aabXXXX", 3, out, 1), 1);
    is_str(out[0], "aab");
    pgw_config_dispose(&conf);

    is_int(load_yaml(&conf, "model_list:\n  - {model_name: '*', litellm_params: {model: openai/a}}\n"), 0);
    is_int(pgw_config_suggest(&conf, "x", 1, out, 8), 0);
    pgw_config_dispose(&conf);
}

static void test_edit_distance(void)
{
    size_t row[32];
    is_int(edit_distance("", 0, "", row), 0);
    is_int(edit_distance("abc", 3, "", row), 3);
    is_int(edit_distance("", 0, "abc", row), 3);
    is_int(edit_distance("kitten", 6, "sitting", row), 3);
    is_int(edit_distance("Flaw", 4, "lawn", row), 2);
    is_int(edit_distance("GPT-5", 5, "gpt-5", row), 0);
}

static void test_claude_names(void)
{
    char buf[64];
    pgw_poe_claude_name("claude-sonnet-4-5-20250929", buf, sizeof(buf));
    is_str(buf, "claude-sonnet-4.5");
    pgw_poe_claude_name("Claude-Sonnet-4.5", buf, sizeof(buf));
    is_str(buf, "claude-sonnet-4.5");
    pgw_poe_claude_name("claude-3-7-sonnet-20250219", buf, sizeof(buf));
    is_str(buf, "claude-3.7-sonnet");
    pgw_poe_claude_name("claude-opus-4-5-20251101", buf, 8); /* cut to fit */
    is_str(buf, "claude-");

    /* the hint: Claude on openai/ only, and never for a pattern */
    pgw_config_t conf;
    is_int(load_yaml(&conf, "model_list:\n"
                            "  - {model_name: a, litellm_params: {model: openai/Claude-Sonnet-4.5}}\n"
                            "  - {model_name: b, litellm_params: {model: openai/gpt-4o}}\n"
                            "  - {model_name: c, litellm_params: {model: anthropic/claude-sonnet-4.5}}\n"
                            "  - {model_name: 'd*', litellm_params: {model: openai/claude-*}}\n"),
           0);
    ok(pgw_route_caching_hint(conf.routes + 0, buf, sizeof(buf)));
    is_str(buf, "anthropic/claude-sonnet-4.5");
    ok(!pgw_route_caching_hint(conf.routes + 1, buf, sizeof(buf)));
    ok(!pgw_route_caching_hint(conf.routes + 2, buf, sizeof(buf)));
    ok(!pgw_route_caching_hint(conf.routes + 3, buf, sizeof(buf)));
    pgw_config_dispose(&conf);
}

void test_src__route_match_c(void)
{
    subtest("Poe's names for Claude, the caching hint", test_claude_names);
    subtest("find route", test_find_route);
    subtest("wildcard match", test_wildcard_match);
    subtest("upstream model", test_upstream_model);
    subtest("picker alias", test_picker_alias);
    subtest("suggest", test_suggest);
    subtest("edit distance", test_edit_distance);
}
