/* poe-gateway: MIT licence. Unit tests for src/common/json_reader.c: pgw_json_read against yajl, call for call. */
#include <stdio.h>
#include <stdlib.h>
#include <h2o/socket.h>
#include "../../../../src/common/json_reader.c"
#include "../../test.h"

/* ---- a log of the calls, with the offset each was made at ---- */

struct log {
    h2o_buffer_t *buf;
    yajl_handle handle; /* yajl's, or NULL for pgw_json_read's */
    size_t consumed;    /* pgw_json_read's */
    int cancel_at;      /* the call that returns 0 (counting from 1), 0 for none */
    int calls;
};

static int put(struct log *l, const char *what, const void *s, size_t len)
{
    char at[32];
    size_t consumed = l->handle != NULL ? yajl_get_bytes_consumed(l->handle) : l->consumed;
    pgw_buf_append(&l->buf, what, strlen(what));
    pgw_buf_append(&l->buf, s, len);
    snprintf(at, sizeof(at), "@%zu\n", consumed);
    pgw_buf_append(&l->buf, at, strlen(at));
    return ++l->calls != l->cancel_at;
}

static int l_null(void *ctx)
{
    return put(ctx, "null", "", 0);
}

static int l_bool(void *ctx, int b)
{
    return put(ctx, b ? "true" : "false", "", 0);
}

static int l_number(void *ctx, const char *s, size_t len)
{
    return put(ctx, "n:", s, len);
}

static int l_string(void *ctx, const unsigned char *s, size_t len)
{
    return put(ctx, "s:", s, len);
}

static int l_key(void *ctx, const unsigned char *s, size_t len)
{
    return put(ctx, "k:", s, len);
}

static int l_start_map(void *ctx)
{
    return put(ctx, "{", "", 0);
}

static int l_end_map(void *ctx)
{
    return put(ctx, "}", "", 0);
}

static int l_start_array(void *ctx)
{
    return put(ctx, "[", "", 0);
}

static int l_end_array(void *ctx)
{
    return put(ctx, "]", "", 0);
}

static const yajl_callbacks logged = {l_null,      l_bool, NULL,      NULL,          l_number,   l_string,
                                      l_start_map, l_key,  l_end_map, l_start_array, l_end_array};

static int compared, read_whole, refused, canceled, wrong;

/*
 * Reads `doc` both ways (cancelling at call `cancel_at`, 0 for never) and checks the contract: OK only where yajl
 * accepts, with the same calls at the same offsets; CANCELED where yajl would cancel, after the same calls; REFUSED
 * after a prefix of yajl's calls. Strings are compared byte for byte: without PGW_JSON_READ_YAJL_STRINGS, the documents
 * hold no lone surrogate escape, where pgw_json_unescape and yajl differ.
 */
static void check_with(const char *doc, size_t len, int cancel_at, unsigned flags)
{
    struct log mine = {NULL, NULL, 0, cancel_at}, theirs = {NULL, NULL, 0, cancel_at};
    h2o_buffer_t *scratch;
    h2o_buffer_init(&mine.buf, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&theirs.buf, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&scratch, &h2o_socket_buffer_prototype);

    pgw_json_read_t rd = pgw_json_read(doc, len, &logged, &mine, &scratch, &mine.consumed, flags);
    theirs.handle = yajl_alloc(&logged, NULL, &theirs);
    yajl_status st = yajl_parse(theirs.handle, (const unsigned char *)doc, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(theirs.handle);

    int prefix = mine.buf->size <= theirs.buf->size &&
                 (mine.buf->size == 0 || memcmp(mine.buf->bytes, theirs.buf->bytes, mine.buf->size) == 0);
    int same = prefix && mine.buf->size == theirs.buf->size;
    int good;
    switch (rd) {
    case PGW_JSON_READ_OK:
        good = st == yajl_status_ok && same;
        ++read_whole;
        break;
    case PGW_JSON_READ_CANCELED:
        good = st == yajl_status_client_canceled && same;
        ++canceled;
        break;
    default:
        good = prefix;
        ++refused;
        break;
    }
    if (!good) {
        ++wrong;
        note("pgw_json_read %d, yajl %d on %.*s\nmine:\n%.*s\nyajl's:\n%.*s", rd, st, (int)(len > 200 ? 200 : len), doc,
             (int)mine.buf->size, mine.buf->bytes, (int)theirs.buf->size, theirs.buf->bytes);
    }
    ++compared;
    yajl_free(theirs.handle);
    h2o_buffer_dispose(&mine.buf);
    h2o_buffer_dispose(&theirs.buf);
    h2o_buffer_dispose(&scratch);
}

/* both ways, with and without PGW_JSON_READ_YAJL_STRINGS */
static void check(const char *doc, size_t len, int cancel_at)
{
    check_with(doc, len, cancel_at, 0);
    check_with(doc, len, cancel_at, PGW_JSON_READ_YAJL_STRINGS);
}

static void check_str(const char *doc)
{
    check(doc, strlen(doc), 0);
}

static void test_cases(void)
{
    static const char *docs[] = {
        "{}",
        "[]",
        " { } ",
        "\n\t{\"a\":1}\r\n",
        "[1,2.5,-3e10,0,-0,0.0e+1,1E-2,true,false,null,\"x\"]",
        "{\"a\":{\"b\":[{},[],\"\"]},\"c\":\"d\"}",
        "{\"esc\":\"q\\\"b\\\\s\\/n\\nr\\rt\\tb\\bf\\f\\u00e9\\u4e2d\\ud83d\\ude00\"}",
        "{\"\\u0041key\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}",
        "[\"a\x7f\"]",
        /* what pgw_json_read refuses: malformed, or left to yajl */
        "",
        " ",
        "1",
        "\"top\"",
        "true",
        "{",
        "[",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "[1,]",
        "[,1]",
        "{\"a\" 1}",
        "[01]",
        "[1.]",
        "[.5]",
        "[1e]",
        "[-]",
        "[1]x",
        "[1] [2]",
        "{}}",
        "[\"\x01\"]",
        "[\"\\x\"]",
        "[\"\\u12\"]",
        "[\"\\u12g4\"]",
        "[\"\xff\"]",
        "[\"\xc0\xaf\"]",
        "[\"\xed\xa0\x80\"]",
        "[\"\xe2\x82\"]",
        "[\"abc",
        "[tru]",
        "[nul]",
        "[truex]",
        "[1\v]",
        "\f[]",
        "{\"a\":1 \"b\":2}",
        "[1 2]",
    };
    for (size_t i = 0; i != sizeof(docs) / sizeof(docs[0]); ++i)
        check_str(docs[i]);
    /* surrogate escapes, which yajl decodes its own way: refused with PGW_JSON_READ_YAJL_STRINGS */
    static const char *surrogates[] = {"[\"\\ud800\"]", "[\"\\udc00x\"]", "[\"\\uD83D\\uDE00\"]", "[\"\\ud83d\\u0041\"]",
                                       "{\"\\udbff\":1}"};
    for (size_t i = 0; i != sizeof(surrogates) / sizeof(surrogates[0]); ++i)
        check_with(surrogates[i], strlen(surrogates[i]), 0, PGW_JSON_READ_YAJL_STRINGS);
    /* a NUL inside a string, and a document that is a prefix of a longer buffer */
    check("[\"a\0b\"]", 7, 0);
    check("[1,2]]]", 5, 0);
    /* nesting at and past the reader's stack */
    for (size_t depth = PGW_JSON_READ_MAX_DEPTH - 1; depth <= PGW_JSON_READ_MAX_DEPTH + 1; ++depth) {
        char *doc = malloc(depth * 2);
        memset(doc, '[', depth);
        memset(doc + depth, ']', depth);
        check(doc, depth * 2, 0);
        free(doc);
    }
    /* every call cancelled in turn */
    static const char calls[] = "{\"a\":[1,true,false,null,\"s\\n\",{\"b\":{}}],\"c\":-2.5e3,\"d\":[[]],\"e\":\"\xc3\xa9\"}";
    for (int at = 1; at != 24; ++at)
        check(calls, sizeof(calls) - 1, at);
    is_int(wrong, 0);
    ok(canceled >= 46);
}

/* ---- random documents, then damaged ---- */

static uint64_t seed = 0x2545f4914f6cdd1dull;

static unsigned draw(unsigned n)
{
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)((seed >> 33) % n);
}

/* appends one of the strings of `list` (pgw_buf_append_str would draw twice) */
#define APPEND_ONE(b, list)                                                                                                        \
    do {                                                                                                                           \
        const char *one_ = (list)[draw(sizeof(list) / sizeof((list)[0]))];                                                         \
        pgw_buf_append_str((b), one_);                                                                                             \
    } while (0)

static void gen_string(h2o_buffer_t **b)
{
    static const char *pieces[] = {"a",
                                   "word ",
                                   "Z",
                                   "0",
                                   " ",
                                   "\\n",
                                   "\\\"",
                                   "\\\\",
                                   "\\/",
                                   "\\t",
                                   "\\u00e9",
                                   "\\u4e2d",
                                   "\xc3\xa9",
                                   "\xe2\x82\xac",
                                   "\xf0\x9f\x98\x80",
                                   "a long run of plain text, 32 b.",
                                   "\x7f"};
    pgw_buf_append_lit(b, "\"");
    for (unsigned n = draw(12); n != 0; --n)
        APPEND_ONE(b, pieces);
    pgw_buf_append_lit(b, "\"");
}

static void gen_space(h2o_buffer_t **b)
{
    static const char *spaces[] = {"", "", "", " ", "\n", "\t", "\r\n  "};
    APPEND_ONE(b, spaces);
}

static void gen_value(h2o_buffer_t **b, int depth)
{
    static const char *scalars[] = {"0", "-1", "12345", "3.25", "-0.5e-7", "1E+30", "true", "false", "null"};
    unsigned kind = depth > 5 ? 2 + draw(2) : draw(4);
    gen_space(b);
    if (kind == 0 || kind == 1) {
        pgw_buf_append_str(b, kind == 0 ? "{" : "[");
        for (unsigned n = draw(5), i = 0; i != n; ++i) {
            if (i != 0)
                pgw_buf_append_lit(b, ",");
            if (kind == 0) {
                gen_space(b);
                gen_string(b);
                gen_space(b);
                pgw_buf_append_lit(b, ":");
            }
            gen_value(b, depth + 1);
        }
        gen_space(b);
        pgw_buf_append_str(b, kind == 0 ? "}" : "]");
    } else if (kind == 2) {
        gen_string(b);
    } else {
        APPEND_ONE(b, scalars);
    }
    gen_space(b);
}

static void test_random(void)
{
    static const char alphabet[] = "{}[]\",:0-1.eE+ \t\natnulfs\\/\x01\x7f\x80\xc3\xff";
    h2o_buffer_t *doc;
    h2o_buffer_init(&doc, &h2o_socket_buffer_prototype);
    for (int round = 0; round != 3000; ++round) {
        doc->size = 0;
        const char *open = draw(2) ? "{\"k\":" : "[";
        pgw_buf_append_str(&doc, open);
        gen_value(&doc, 0);
        pgw_buf_append_str(&doc, doc->bytes[0] == '{' ? "}" : "]");
        /* as made, then with up to three bytes replaced, then cut short */
        check(doc->bytes, doc->size, 0);
        char *copy = malloc(doc->size);
        memcpy(copy, doc->bytes, doc->size);
        for (unsigned n = 1 + draw(3); n != 0; --n)
            copy[draw((unsigned)doc->size)] = alphabet[draw(sizeof(alphabet) - 1)];
        check(copy, doc->size, 0);
        check(doc->bytes, draw((unsigned)doc->size), 0);
        free(copy);
    }
    h2o_buffer_dispose(&doc);
    is_int(wrong, 0);
}

void test_src__json_reader_c(void)
{
    subtest("cases", test_cases);
    subtest("random", test_random);
    note("%d documents: %d read whole, %d cancelled, %d refused", compared, read_whole, canceled, refused);
    ok(read_whole > 6000);
    ok(refused > 4000);
}
