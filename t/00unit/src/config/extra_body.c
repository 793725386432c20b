/* poe-gateway: MIT licence. Unit tests for src/config/extra_body.c: a route's extra_body, parsed once at load
 * (docs/mapping.md#extra-body). How the translator merges it is tested in translate_request.c. */
#include <stdio.h>
#include <stdlib.h>
#include "../../../../src/config/extra_body.c"
#include "../../test.h"

static pgw_extra_body_t *parse(const char *members)
{
    return pgw_extra_body_parse(members, strlen(members));
}

/* an empty name, the only member: nothing was ever written to the names buffer (fuzz_config found the copy from it) */
static void test_empty_name(void)
{
    pgw_extra_body_t *x = parse("\"\":[1]");
    ok(x != NULL);
    if (x == NULL)
        return;
    is_int(x->num_members, 1);
    if (x->num_members == 1) {
        is_int(x->members[0].name.len, 0);
        is_str(x->members[0].name.base, "");
        is_str(x->members[0].value.base, "[1]");
    }
    free(x);
}

static void test_parse(void)
{
    /* names decoded, values as written (white space around them dropped, inside them kept) */
    pgw_extra_body_t *x =
        parse("\"thinking_budget\":4096, \"web_search\" : true,\"nested\":{\"a\":[1, 2.50]},\"k\\u0065y\":\"a\\\"b\","
              "\"n\":null,\"e\":-0.5e-3");
    ok(x != NULL);
    if (x == NULL)
        return;
    is_int(x->num_members, 6);
    if (x->num_members == 6) {
        is_str(x->members[0].name.base, "thinking_budget");
        is_str(x->members[0].value.base, "4096");
        is_str(x->members[1].name.base, "web_search");
        is_str(x->members[1].value.base, "true");
        is_str(x->members[2].value.base, "{\"a\":[1, 2.50]}");
        is_str(x->members[3].name.base, "key");
        is_int(x->members[3].name.len, 3);
        is_str(x->members[3].value.base, "\"a\\\"b\"");
        is_str(x->members[4].value.base, "null");
        is_str(x->members[5].value.base, "-0.5e-3");
    }
    ok(pgw_extra_body_has(x, "nested"));
    ok(pgw_extra_body_has(x, "key"));
    ok(!pgw_extra_body_has(x, "a")); /* a member of a member is not one */
    ok(!pgw_extra_body_has(x, "nest"));
    ok(!pgw_extra_body_has(NULL, "nested"));

    /* a copy stands on its own */
    pgw_extra_body_t *copy = pgw_extra_body_dup(x);
    free(x);
    ok(copy != NULL && copy->num_members == 6);
    if (copy != NULL && copy->num_members == 6) {
        is_str(copy->members[2].name.base, "nested");
        is_str(copy->members[5].value.base, "-0.5e-3");
        ok(pgw_extra_body_has(copy, "web_search"));
    }
    free(copy);
    ok(pgw_extra_body_dup(NULL) == NULL);

    /* no members */
    x = parse("");
    ok(x != NULL && x->num_members == 0);
    ok(!pgw_extra_body_has(x, ""));
    free(x);
}

static void test_invalid(void)
{
    /* not JSON object members: refused (the loader then refuses the file) */
    static const char *const bad[] = {"\"x\":",    "\"x\"",           "1",   "\"a\":1,",      "\"a\":1}", "{\"a\":1}", "\"a\":[1",
                                      "\"a\":tru", "\"a\":1 \"b\":2", "a:1", "\"a\":\"\xff\""};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        pgw_extra_body_t *x = parse(bad[i]);
        ok(x == NULL);
        if (x != NULL)
            note("parsed: %s", bad[i]);
        free(x);
    }
}

static void test_append(void)
{
    h2o_buffer_t *out;
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);

    /* every member, names escaped again and values as written, except those the translation owns */
    pgw_extra_body_t *x = parse("\"model\":\"x\",\"k\\\"q\":[1, 2],\"messages\":[],\"stream\":false,\"stream_options\":{},"
                                "\"modelx\":1,\"temperature\":0.50");
    pgw_extra_body_append(x, &out);
    char got[256];
    snprintf(got, sizeof(got), "%.*s", (int)out->size, out->bytes);
    is_str(got, ",\"k\\\"q\":[1, 2],\"modelx\":1,\"temperature\":0.50");
    free(x);
    out->size = 0;
    pgw_extra_body_append(NULL, &out);
    is_int(out->size, 0);
    h2o_buffer_dispose(&out);
}

void test_src__extra_body_c(void)
{
    subtest("empty name", test_empty_name);
    subtest("parse", test_parse);
    subtest("invalid", test_invalid);
    subtest("append", test_append);
}
