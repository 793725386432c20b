/* poe-gateway: MIT licence. Unit tests for src/translate/toolnames.c: tool name mapping (docs/mapping.md#tool-names) and
 * tool-call ids (docs/mapping.md#identifiers). */
#include <stdio.h>
#include <time.h>
#include "../../../../src/translate/toolnames.c"
#include "../../test.h"

static const char *map(const char *name)
{
    static char out[PGW_TOOLNAME_MAX + 1];
    pgw_toolname_map(name, strlen(name), out);
    return out;
}

static const char *original(const pgw_toolnames_t *names, const char *mapped)
{
    static char buf[256];
    size_t len;
    const char *o = pgw_toolnames_original(names, mapped, strlen(mapped), &len);
    snprintf(buf, sizeof(buf), "%.*s", (int)len, o);
    return buf;
}

static void test_map(void)
{
    /* the expected hashes come from Python's hashlib, not from this code */
    is_str(map("Read"), "Read");
    is_str(map("mcp__ide__get-diagnostics_2"), "mcp__ide__get-diagnostics_2");
    is_str(map("mcp.server/tool name"), "mcp_server_tool_name");
    /* one '_' per character, not per byte */
    is_str(map("caf\xc3\xa9.tool"), "caf__tool");
    /* a stray byte is a character of its own */
    is_str(map("a\xff"
               "b"),
           "a_b");
    is_str(map(""), "_");
    char name64[65], name65[66];
    memset(name64, 'a', 64);
    name64[64] = '\0';
    is_str(map(name64), name64);
    memset(name65, 'b', 65);
    name65[65] = '\0';
    is_str(map(name65), "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb_74b128f3");
    is_str(map("mcp__claude_ai_Atlassian_Confluence__getConfluencePageFooterCommentsWithReplies"),
           "mcp__claude_ai_Atlassian_Confluence__getConfluencePageF_2b1e792c");
    is_int(strlen(map("mcp__claude_ai_Atlassian_Confluence__getConfluencePageFooterCommentsWithReplies")), 64);
    /* pure */
    is_str(map("x.y"), "x_y");
    is_str(map("x.y"), "x_y");
}

static void test_names(void)
{
    pgw_toolnames_t names = {NULL};

    /* an empty table answers */
    ok(pgw_toolnames_mapped(&names, H2O_STRLIT("Read")) == NULL);
    is_str(original(&names, "Read"), "Read");

    pgw_toolnames_add(&names, H2O_STRLIT("Read"));
    pgw_toolnames_add(&names, H2O_STRLIT("mcp.fs/read"));
    pgw_toolnames_add(&names, H2O_STRLIT("Read")); /* listed twice: one entry */
    is_int(names.num_entries, 2);
    is_str(pgw_toolnames_mapped(&names, H2O_STRLIT("Read")), "Read");
    is_str(pgw_toolnames_mapped(&names, H2O_STRLIT("mcp.fs/read")), "mcp_fs_read");
    ok(pgw_toolnames_mapped(&names, H2O_STRLIT("Write")) == NULL);
    is_str(original(&names, "mcp_fs_read"), "mcp.fs/read");
    is_str(original(&names, "Read"), "Read");
    is_str(original(&names, "Unknown_tool"), "Unknown_tool");

    /* a collision: both take the hashed form, a third one too */
    pgw_toolnames_add(&names, H2O_STRLIT("a.b"));
    is_str(pgw_toolnames_mapped(&names, H2O_STRLIT("a.b")), "a_b");
    pgw_toolnames_add(&names, H2O_STRLIT("a_b"));
    is_str(pgw_toolnames_mapped(&names, H2O_STRLIT("a.b")), "a_b_2e7336dc");
    is_str(pgw_toolnames_mapped(&names, H2O_STRLIT("a_b")), "a_b_648fa9b3");
    pgw_toolnames_add(&names, H2O_STRLIT("a b"));
    is_str(pgw_toolnames_mapped(&names, H2O_STRLIT("a.b")), "a_b_2e7336dc");
    is_str(pgw_toolnames_mapped(&names, H2O_STRLIT("a_b")), "a_b_648fa9b3");
    is_str(pgw_toolnames_mapped(&names, H2O_STRLIT("a b")), "a_b_c8687a08");
    is_str(original(&names, "a_b_2e7336dc"), "a.b");
    is_str(original(&names, "a_b_648fa9b3"), "a_b");
    is_str(original(&names, "a_b_c8687a08"), "a b");
    /* the plain form is nobody's now */
    is_str(original(&names, "a_b"), "a_b");
    is_int(names.num_entries, 5);

    /* growth keeps every entry reachable */
    char name[32], expect[32];
    for (int i = 0; i != 1000; ++i) {
        snprintf(name, sizeof(name), "mcp.t%d", i);
        pgw_toolnames_add(&names, name, strlen(name));
    }
    is_int(names.num_entries, 1005);
    int found = 0;
    for (int i = 0; i != 1000; ++i) {
        snprintf(name, sizeof(name), "mcp.t%d", i);
        snprintf(expect, sizeof(expect), "mcp_t%d", i);
        const char *m = pgw_toolnames_mapped(&names, name, strlen(name));
        found += m != NULL && strcmp(m, expect) == 0 && strcmp(original(&names, expect), name) == 0;
    }
    is_int(found, 1000);
    is_str(pgw_toolnames_mapped(&names, H2O_STRLIT("a b")), "a_b_c8687a08");

    pgw_toolnames_dispose(&names);
    ok(names.entries == NULL);
    is_int(names.num_entries, 0);
    pgw_toolnames_dispose(&names); /* twice is harmless */
}

/* The i-th of many names that all map to "______": six characters out of ten that are not name characters. */
static void colliding_name(unsigned i, char *out)
{
    static const char marks[] = ".,:;!?@#$%";
    for (int k = 0; k != 6; ++k, i /= 10)
        out[k] = marks[i % 10];
    out[6] = '\0';
}

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Adds `n` colliding names; returns the CPU time it took, in ms. */
static double add_colliding(pgw_toolnames_t *names, unsigned n)
{
    char name[8];
    double t0 = cpu_ms();
    for (unsigned i = 0; i != n; ++i) {
        colliding_name(i, name);
        pgw_toolnames_add(names, name, 6);
    }
    return cpu_ms() - t0;
}

static void test_many_collisions(void)
{
    pgw_toolnames_t names = {NULL};
    char name[8], expect[PGW_TOOLNAME_MAX + 1];

    /* one group of 20,000 names mapping alike: every one takes its own hashed form, and each maps back */
    add_colliding(&names, 20000);
    is_int(names.num_entries, 20000);
    int right = 0;
    for (unsigned i = 0; i != 20000; ++i) {
        colliding_name(i, name);
        hashed_form(name, 6, expect);
        const char *m = pgw_toolnames_mapped(&names, name, 6);
        right += m != NULL && strcmp(m, expect) == 0 && strncmp(m, "______", 6) == 0 && strcmp(original(&names, m), name) == 0;
    }
    is_int(right, 20000);
    is_str(original(&names, "______"), "______"); /* nobody's name */
    pgw_toolnames_dispose(&names);

    /* and the work is linear in the group's size: four times the names, about four times the time (a walk over the group
     * per name, as before, made it sixteen); CPU time, the best of three, so that a busy machine does not count */
    double small = 1e9, large = 1e9;
    for (int round = 0; round != 3; ++round) {
        double t = add_colliding(&names, 5000);
        pgw_toolnames_dispose(&names);
        small = t < small ? t : small;
        t = add_colliding(&names, 20000);
        pgw_toolnames_dispose(&names);
        large = t < large ? t : large;
    }
    note("5,000 colliding names: %.1f ms, 20,000: %.1f ms", small, large);
    ok(large < small * 10);
}

static void test_ids(void)
{
    char out[64];

    pgw_toolcall_id_sanitise(H2O_STRLIT("getWeather:0"), out, sizeof(out));
    is_str(out, "getWeather_0");
    pgw_toolcall_id_sanitise(H2O_STRLIT("functions.Bash:0"), out, sizeof(out));
    is_str(out, "functions_Bash_0");
    pgw_toolcall_id_sanitise(H2O_STRLIT("toolu_01A-b"), out, sizeof(out));
    is_str(out, "toolu_01A-b");
    pgw_toolcall_id_sanitise("", 0, out, sizeof(out));
    is_str(out, "");
    pgw_toolcall_id_sanitise(H2O_STRLIT("abcdef"), out, 4);
    is_str(out, "abc");
    out[0] = 'x';
    pgw_toolcall_id_sanitise(H2O_STRLIT("abcdef"), out, 0);
    ok(out[0] == 'x');
}

void test_src__toolnames_c(void)
{
    subtest("map", test_map);
    subtest("names", test_names);
    subtest("many collisions", test_many_collisions);
    subtest("ids", test_ids);
}
