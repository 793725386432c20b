/* poe-gateway: MIT licence. The tool-schema cleaner (docs/mapping.md#tool-schemas).
 *
 * How it works
 *
 * A tool's input_schema becomes the function's `parameters` in the same pass that reads the request: the translator's
 * yajl callbacks hand each event of the schema to the copier, which writes it out again, or not. What a key means
 * depends on where it stands, so each open level carries a mode:
 *   - schema: keys are JSON Schema keywords, cleaned: `$schema`, `$id` and `$comment` are left out with their values,
 *     and so is a `pattern` whose value ECMA-262 cannot compile (the value decides, so the key waits for it);
 *   - names: keys are property names (under `properties`, `patternProperties`, `definitions`, `$defs`,
 *     `dependentSchemas`), kept whatever they are; their values are schemas again;
 *   - data: values of `enum`, `const`, `default`, `examples`, `required` (and an array under names), copied verbatim.
 * A value left out is skipped by the caller's parser (pgw_schema_open answers 1), so the copier never sees its
 * contents. The level's flags also remember whether a comma is due. With `minimal` (the route's minimal_schema), a
 * schema level keeps only type, properties, required and items.
 */
#include <string.h>
#include "common/json.h"
#include "translate/translate_schema.h"

/* the per-level flags */
#define CF_FIRST 0x1
#define CF_OBJECT 0x2
#define CF_MODE 0xc
#define M_SCHEMA 0x0 /* keys are keywords: cleaned */
#define M_NAMES 0x4  /* keys are property names: kept; values are schemas */
#define M_DATA 0x8   /* enum, const, default, examples, required: copied verbatim */

/* 1 when `p` uses syntax a JavaScript RegExp without flags refuses (what upstreams compile patterns with) */
static int non_ecma_pattern(const char *p, size_t len)
{
    int in_class = 0;
    for (size_t i = 0; i < len; ++i) {
        char c = p[i];
        if (c == '\\') {
            if (++i == len)
                return 1;
            /* Unicode properties, PCRE anchors and quoting, \h \R \X \K \G: none exists in ECMA-262 without flags */
            if (p[i] != '\0' && strchr("pPAZzQEhRXKG", p[i]) != NULL)
                return 1;
            continue;
        }
        if (in_class) {
            if (c == ']')
                in_class = 0;
            else if (c == '[' && i + 1 < len && p[i + 1] == ':')
                return 1; /* POSIX class */
            continue;
        }
        if (c == '[') {
            in_class = 1;
        } else if (c == '(' && i + 1 < len && p[i + 1] == '?') {
            char n = i + 2 < len ? p[i + 2] : '\0', m = i + 3 < len ? p[i + 3] : '\0';
            if (n == ':' || n == '=' || n == '!')
                continue;
            if (n == '<' && (m == '=' || m == '!' || (m >= 'a' && m <= 'z') || (m >= 'A' && m <= 'Z')))
                continue;
            return 1; /* atomic groups, inline flags, (?P<...>), comments, recursion */
        } else if ((c == '*' || c == '+' || c == '?' || c == '}') && i + 1 < len && p[i + 1] == '+') {
            return 1; /* possessive quantifier */
        }
    }
    return 0;
}

static void append_quoted(h2o_buffer_t **buf, const char *s, size_t len)
{
    pgw_json_append_quoted(buf, s, len);
}

static int in_array(pgw_schema_copier_t *c)
{
    return c->depth != 0 && (c->flags[c->depth] & CF_OBJECT) == 0;
}

/* Writes the comma before an array element or an object member, except before the first. */
static void separate(pgw_schema_copier_t *c)
{
    unsigned char *f = &c->flags[c->depth];
    if (*f & CF_FIRST)
        *f &= ~CF_FIRST;
    else
        pgw_buf_append_lit(c->out, ",");
}

/* Before a value: the key of a pattern that turned out to be kept, or the comma of an array element. */
static void pending_key(pgw_schema_copier_t *c)
{
    if (c->pending_pattern) {
        c->pending_pattern = 0;
        separate(c);
        pgw_buf_append_lit(c->out, "\"pattern\":");
    } else if (in_array(c)) {
        separate(c);
    }
}

int pgw_schema_open(pgw_schema_copier_t *c, int is_object)
{
    unsigned char mode;

    if (c->drop_next) {
        c->drop_next = 0;
        return 1;
    }
    pending_key(c);
    if (c->depth == 0)
        mode = M_SCHEMA;
    else if (c->flags[c->depth] & CF_OBJECT)
        mode = c->next;
    else
        mode = c->flags[c->depth] & CF_MODE;
    if (!is_object && mode == M_NAMES)
        mode = M_DATA;
    c->flags[++c->depth] = CF_FIRST | (is_object ? CF_OBJECT : 0) | mode;
    pgw_buf_append(c->out, is_object ? "{" : "[", 1);
    return 0;
}

void pgw_schema_begin(pgw_schema_copier_t *c, h2o_buffer_t **out, int minimal)
{
    c->active = 1;
    c->minimal = minimal;
    c->out = out;
    c->drop_next = 0;
    c->pending_pattern = 0;
    c->depth = 0;
    pgw_schema_open(c, 1);
}

void pgw_schema_key(pgw_schema_copier_t *c, const char *k, size_t len)
{
    unsigned char mode = c->flags[c->depth] & CF_MODE;
#define IS(lit) (len == sizeof(lit) - 1 && memcmp(k, lit, len) == 0)
    if (mode == M_SCHEMA) {
        if (IS("$schema") || IS("$id") || IS("$comment") ||
            (c->minimal && !(IS("type") || IS("properties") || IS("required") || IS("items")))) {
            c->drop_next = 1;
            return;
        }
        if (IS("pattern")) {
            /* written with its value, unless the value is a pattern ECMA-262 cannot compile */
            c->pending_pattern = 1;
            return;
        }
        c->next = IS("properties") || IS("patternProperties") || IS("definitions") || IS("$defs") || IS("dependentSchemas")
                      ? M_NAMES
                  : IS("enum") || IS("const") || IS("default") || IS("examples") || IS("required") ? M_DATA
                                                                                                   : M_SCHEMA;
    } else {
        c->next = mode == M_NAMES ? M_SCHEMA : M_DATA;
    }
#undef IS
    separate(c);
    append_quoted(c->out, k, len);
    pgw_buf_append_lit(c->out, ":");
}

void pgw_schema_scalar(pgw_schema_copier_t *c, int is_string, const char *v, size_t len)
{
    if (c->drop_next) {
        c->drop_next = 0;
        return;
    }
    if (c->pending_pattern && is_string && non_ecma_pattern(v, len)) {
        c->pending_pattern = 0;
        return;
    }
    pending_key(c);
    if (is_string)
        append_quoted(c->out, v, len);
    else
        pgw_buf_append(c->out, v, len);
}

int pgw_schema_close(pgw_schema_copier_t *c)
{
    pgw_buf_append(c->out, (c->flags[c->depth] & CF_OBJECT) ? "}" : "]", 1);
    if (--c->depth != 0)
        return 0;
    c->active = 0;
    return 1;
}
