/* poe-gateway: MIT licence. Unit tests for src/translate/translate_schema.c: the tool-schema cleaner
 * (docs/mapping.md#tool-schemas), driven by a yajl parse of a schema as the request translator drives it. How a tool's
 * schema lands in the translated request is tested in translate_request.c. */
#include <stdlib.h>
#include <h2o/socket.h>
#include <yajl/yajl_parse.h>
#include "../../../../src/translate/translate_schema.c"
#include "../../test.h"

/* the caller's side: skip what the copier leaves out, and note when it says the schema ended */
struct driver {
    pgw_schema_copier_t copier;
    h2o_buffer_t *out;
    size_t skip;     /* > 0: inside a value left out, this many levels deep */
    int started;     /* the schema's '{' has been seen */
    int ended;       /* pgw_schema_close returned 1 */
    int ended_early; /* it did so before the last close */
};

static int d_open(void *ctx, int is_object)
{
    struct driver *d = ctx;
    if (d->skip != 0) {
        ++d->skip;
    } else if (!d->started) {
        d->started = 1;
        pgw_schema_begin(&d->copier, &d->out, d->copier.minimal);
    } else if (pgw_schema_open(&d->copier, is_object)) {
        d->skip = 1;
    }
    return 1;
}

static int d_close(void *ctx)
{
    struct driver *d = ctx;
    if (d->skip != 0) {
        --d->skip;
        return 1;
    }
    d->ended_early |= d->ended;
    d->ended = pgw_schema_close(&d->copier);
    return 1;
}

static int d_scalar(struct driver *d, int is_string, const char *v, size_t len)
{
    if (d->skip == 0)
        pgw_schema_scalar(&d->copier, is_string, v, len);
    return 1;
}

static int d_null(void *ctx)
{
    return d_scalar(ctx, 0, "null", 4);
}

static int d_bool(void *ctx, int b)
{
    return d_scalar(ctx, 0, b ? "true" : "false", b ? 4 : 5);
}

static int d_number(void *ctx, const char *v, size_t len)
{
    return d_scalar(ctx, 0, v, len);
}

static int d_string(void *ctx, const unsigned char *v, size_t len)
{
    return d_scalar(ctx, 1, (const char *)v, len);
}

static int d_key(void *ctx, const unsigned char *k, size_t len)
{
    struct driver *d = ctx;
    if (d->skip == 0)
        pgw_schema_key(&d->copier, (const char *)k, len);
    return 1;
}

static int d_start_map(void *ctx)
{
    return d_open(ctx, 1);
}

static int d_start_array(void *ctx)
{
    return d_open(ctx, 0);
}

static const yajl_callbacks d_callbacks = {d_null,      d_bool, NULL,    NULL,          d_number, d_string,
                                           d_start_map, d_key,  d_close, d_start_array, d_close};

/* The cleaned copy of `schema` (JSON written with ' for "), with ' for " again; "ERROR" when the copier misbehaved. */
static const char *clean(const char *schema, int minimal)
{
    static char result[2048];
    struct driver d = {{0}};
    char *json = strdup(schema);
    for (char *p = json; *p != '\0'; ++p)
        if (*p == '\'')
            *p = '"';
    d.copier.minimal = minimal;
    h2o_buffer_init(&d.out, &h2o_socket_buffer_prototype);
    yajl_handle h = yajl_alloc(&d_callbacks, NULL, &d);
    int parsed =
        yajl_parse(h, (const unsigned char *)json, strlen(json)) == yajl_status_ok && yajl_complete_parse(h) == yajl_status_ok;
    yajl_free(h);
    if (!parsed || !d.ended || d.ended_early || d.copier.active || d.copier.depth != 0) {
        snprintf(result, sizeof(result), "ERROR");
    } else {
        snprintf(result, sizeof(result), "%.*s", (int)d.out->size, d.out->bytes);
        for (char *p = result; *p != '\0'; ++p)
            if (*p == '"')
                *p = '\'';
    }
    h2o_buffer_dispose(&d.out);
    free(json);
    return result;
}

static void test_keywords(void)
{
    /* $schema, $id and $comment go with their values, whatever they are; commas stay right */
    is_str(clean("{'$schema':'s','type':'object'}", 0), "{'type':'object'}");
    is_str(clean("{'type':'object','$id':{'a':[1,{'b':2}]},'$comment':['x'],'title':'t'}", 0), "{'type':'object','title':'t'}");
    is_str(clean("{'$schema':'s'}", 0), "{}");
    /* everything else stays: additionalProperties, format, numbers as written */
    is_str(clean("{'type':'object','additionalProperties':false,'minimum':0.50,'format':'uri','x-custom':null}", 0),
           "{'type':'object','additionalProperties':false,'minimum':0.50,'format':'uri','x-custom':null}");
    /* nested schemas are cleaned at every level: items, anyOf, not, ... */
    is_str(clean("{'items':{'$id':'i','type':'string'},'anyOf':[{'$comment':'c','type':'null'},{'type':'integer'}],"
                 "'not':{'$schema':'s'}}",
                 0),
           "{'items':{'type':'string'},'anyOf':[{'type':'null'},{'type':'integer'}],'not':{}}");
}

static void test_names_and_data(void)
{
    /* under properties (and the like), keys are names: kept even when they look like keywords; their values are schemas */
    is_str(clean("{'properties':{'$id':{'type':'string','$id':'x'},'pattern':{'pattern':'\\\\p{L}'},'$schema':{}}}", 0),
           "{'properties':{'$id':{'type':'string'},'pattern':{},'$schema':{}}}");
    is_str(clean("{'$defs':{'$comment':{'$comment':'c'}},'definitions':{'a':{'$id':'b'}},'patternProperties':{'^x':{'$id':1}},"
                 "'dependentSchemas':{'d':{'$schema':2}}}",
                 0),
           "{'$defs':{'$comment':{}},'definitions':{'a':{}},'patternProperties':{'^x':{}},'dependentSchemas':{'d':{}}}");
    /* enum, const, default, examples, required: data, copied whole */
    is_str(clean("{'default':{'$schema':'data','pattern':'\\\\p{L}'},'enum':[{'$id':1},'\\\\p{L}'],'const':{'$comment':null},"
                 "'examples':[[{'$id':2}]],'required':['$id','pattern']}",
                 0),
           "{'default':{'$schema':'data','pattern':'\\\\p{L}'},'enum':[{'$id':1},'\\\\p{L}'],'const':{'$comment':null},"
           "'examples':[[{'$id':2}]],'required':['$id','pattern']}");
    /* an array where names were expected holds data */
    is_str(clean("{'properties':[{'$id':1}]}", 0), "{'properties':[{'$id':1}]}");
    /* strings are written escaped again */
    is_str(clean("{'description':'a\\'b\\n\\u00e9'}", 0), "{'description':'a\\'b\\n\xc3\xa9'}");
}

static void test_patterns(void)
{
    /* a pattern ECMA-262 compiles stays, in place */
    is_str(clean("{'type':'string','pattern':'^[a-z]+(?:-[a-z]+)*$','minLength':1}", 0),
           "{'type':'string','pattern':'^[a-z]+(?:-[a-z]+)*$','minLength':1}");
    /* one it cannot goes with its key */
    is_str(clean("{'type':'string','pattern':'^\\\\p{L}+$','minLength':1}", 0), "{'type':'string','minLength':1}");
    is_str(clean("{'pattern':'(?i)abc'}", 0), "{}");
    is_str(clean("{'pattern':'(?i)abc','type':'string'}", 0), "{'type':'string'}");
    /* a pattern that is not a string is not a pattern to judge: kept */
    is_str(clean("{'pattern':5,'type':'string'}", 0), "{'pattern':5,'type':'string'}");
    is_str(clean("{'pattern':{'a':1}}", 0), "{'pattern':{'a':1}}");
}

static void test_minimal(void)
{
    /* at each schema level: type, properties, required, items; names under properties are kept */
    is_str(clean("{'$schema':'s','type':'object','description':'d','properties':{'description':{'type':'array','items':"
                 "{'type':'string','minLength':1},'description':'x'},'b':{'anyOf':[{'type':'string'}]}},'required':['a'],"
                 "'additionalProperties':false}",
                 1),
           "{'type':'object','properties':{'description':{'type':'array','items':{'type':'string'}},'b':{}},'required':['a']}");
    is_str(clean("{'pattern':'^a$','type':'string'}", 1), "{'type':'string'}");
}

static void test_ecma(void)
{
    static const struct {
        const char *pattern;
        int refused;
    } cases[] = {
        {"^[a-z]+$", 0},    {"\\d{3}-\\d{4}", 0}, {"(?:a|b)", 0},    {"(?=x)", 0},     {"(?!x)", 0},
        {"(?<=x)", 0},      {"(?<!x)", 0},        {"(?<name>x)", 0}, {"[\\p]", 1},     {"\\p{L}", 1},
        {"\\P{Lu}", 1},     {"\\Aabc\\z", 1},     {"abc\\Z", 1},     {"\\Qa.b\\E", 1}, {"\\h\\R\\X\\K\\G", 1},
        {"[[:alpha:]]", 1}, {"[a:]", 0},          {"(?i)a", 1},      {"(?>a)", 1},     {"(?P<n>a)", 1},
        {"(?#c)", 1},       {"(?R)", 1},          {"a*+", 1},        {"a++", 1},       {"a?+", 1},
        {"a{2}+", 1},       {"a+b", 0},           {"\\", 1},         {"[\\]]", 0},     {"", 0},
    };
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        int got = non_ecma_pattern(cases[i].pattern, strlen(cases[i].pattern));
        is_int(got, cases[i].refused);
        if (got != cases[i].refused)
            note("pattern %s", cases[i].pattern);
    }
}

void test_src__translate_schema_c(void)
{
    subtest("keywords", test_keywords);
    subtest("names and data", test_names_and_data);
    subtest("patterns", test_patterns);
    subtest("minimal", test_minimal);
    subtest("ECMA-262 patterns", test_ecma);
}
