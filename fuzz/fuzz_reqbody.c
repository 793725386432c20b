/* poe-gateway: MIT licence. libFuzzer target: the first look at every client body (src/serve/reqbody.c), and the rename that
 * src/relay/passthrough.c makes with its offsets.
 *
 * Input: the body. Oracles: src/serve/reqbody.c is a hand-written scanner, checked against yajl: it accepts what yajl
 * accepts, except strings that are not UTF-8 by RFC 3629 (yajl lets overlong forms and encoded surrogates through),
 * \v and \f as whitespace (yajl takes them), trailing garbage that opens a string and never closes it (yajl misses it),
 * a top level that is not an object, and the model errors; it accepts nothing yajl refuses; the fields it reports
 * (stream, messages, max_tokens, the model) are what yajl's callbacks see, but for a model spelt with surrogate escapes,
 * which yajl decodes wrongly: that one must be UTF-8. A success that found a model gives offsets
 * inside the body, on a quoted string whose decoded value is the model; replacing that string with another (as an
 * anthropic/ route does) leaves valid JSON. A failure has a message. */
#include <h2o/socket.h>
#include "fuzz.h"
#include "common/json.h"
#include "serve/reqbody.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_logs();
    return 0;
}

/* Collects the one top-level string value of "model" as yajl decodes it. */
struct decoded {
    int depth;
    int at_model;
    int key; /* 0 none, 1 stream, 2 messages, 3 max_tokens, at depth 1 */
    int stream, has_messages, has_max_tokens, models;
    char value[256];
    size_t len;
    int found;
};

static int d_string(void *ctx, const unsigned char *s, size_t len)
{
    struct decoded *d = ctx;
    if (d->at_model) {
        memcpy(d->value, s, len < sizeof(d->value) ? len : sizeof(d->value));
        d->len = len;
        d->found = 1;
    }
    d->at_model = 0;
    d->key = 0;
    return 1;
}
static int d_scalar(void *ctx)
{
    struct decoded *d = ctx;
    d->at_model = 0;
    d->key = 0;
    return 1;
}
static int d_null(void *ctx)
{
    return d_scalar(ctx);
}
static int d_bool(void *ctx, int b)
{
    struct decoded *d = ctx;
    if (d->key == 1)
        d->stream = b;
    return d_scalar(ctx);
}
static int d_number(void *ctx, const char *s, size_t l)
{
    struct decoded *d = ctx;
    if (d->key == 3)
        d->has_max_tokens = 1;
    return d_scalar(ctx);
}
static int d_start(void *ctx)
{
    struct decoded *d = ctx;
    ++d->depth;
    d->at_model = 0;
    d->key = 0;
    return 1;
}
static int d_start_array(void *ctx)
{
    struct decoded *d = ctx;
    if (d->key == 2)
        d->has_messages = 1;
    return d_start(ctx);
}
static int d_end(void *ctx)
{
    --((struct decoded *)ctx)->depth;
    return 1;
}
static int d_key(void *ctx, const unsigned char *k, size_t len)
{
    struct decoded *d = ctx;
    d->at_model = d->depth == 1 && len == 5 && memcmp(k, "model", 5) == 0;
    d->models += d->at_model;
#define IS(lit) (len == sizeof(lit) - 1 && memcmp(k, lit, len) == 0)
    d->key = d->depth != 1 ? 0 : IS("stream") ? 1 : IS("messages") ? 2 : IS("max_tokens") ? 3 : 0;
#undef IS
    return 1;
}
static const yajl_callbacks dcb = {d_null, d_bool, NULL, NULL, d_number, d_string, d_start, d_key, d_end, d_start_array, d_end};

/* 1 when s opens a JSON string that is still open at its end (escapes included): yajl waits for more input there and
 * then, at the end, forgets it was parsing trailing garbage */
static int opens_string(const char *s, size_t len)
{
    if (len == 0 || s[0] != '"')
        return 0;
    for (size_t i = 1; i < len; ++i) {
        if (s[i] == '\\')
            ++i;
        else if (s[i] == '"')
            return 0;
    }
    return 1;
}

/* yajl's view of the body, or 0 when yajl refuses it */
static int yajl_view(const char *body, size_t size, struct decoded *d)
{
    yajl_handle h = yajl_alloc(&dcb, NULL, d);
    int ok = yajl_parse(h, (const unsigned char *)body, size) == yajl_status_ok && yajl_complete_parse(h) == yajl_status_ok;
    yajl_free(h);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = malloc(size ? size : 1);
    memcpy(body, data, size);
    pgw_reqbody_t info;
    char err[256];
    memset(err, 'x', sizeof(err));
    struct decoded y = {0};
    int yajl_ok = yajl_view(body, size, &y);
    size_t skip = 0;
    while (skip < size && strchr(" \t\r\n", body[skip]) != NULL)
        ++skip;
    if (pgw_reqbody_inspect(body, size, &info, err, sizeof(err)) != 0) {
        FUZZ_ASSERT(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0', "a refusal without a message");
        /* yajl also takes \v and \f for whitespace; RFC 8259 does not, nor does the scanner */
        const char *at = strstr(err, "(at byte ");
        size_t pos = at != NULL ? strtoul(at + 9, NULL, 10) : size;
        /* and yajl misses trailing garbage that opens a string it never closes ({}"x) */
        int excused = (pos < size && (body[pos] == '\v' || body[pos] == '\f')) ||
                      (strstr(err, "trailing garbage") != NULL && opens_string(body + pos, size - pos)) || !fuzz_utf8_strict((const unsigned char *)body, size) || (skip < size && body[skip] != '{') || y.models > 1 ||
                      (y.found && y.len > 255) ||
                      (strstr(err, "model: name longer") != NULL && fuzz_has_surrogate_escape(body, size));
        FUZZ_ASSERT(!yajl_ok || excused, "refused a body yajl accepts: %s", err);
        free(body);
        return 0;
    }
    FUZZ_ASSERT(yajl_ok, "accepted a body that yajl refuses");
    FUZZ_ASSERT(y.models <= 1, "accepted a body with %d model keys", y.models);
    FUZZ_ASSERT(info.stream == y.stream && info.has_messages == y.has_messages && info.has_max_tokens == y.has_max_tokens,
                "fields differ from yajl's: stream %d/%d messages %d/%d max_tokens %d/%d", info.stream, y.stream, info.has_messages,
                y.has_messages, info.has_max_tokens, y.has_max_tokens);
    /* yajl 2.1 decodes surrogate escapes wrongly (a lone one is not UTF-8 after it): there the model is checked as UTF-8 */
    if (info.model_len != 0 && fuzz_has_surrogate_escape(body + info.model_offset, info.model_end - info.model_offset))
        FUZZ_ASSERT(fuzz_utf8_strict((const unsigned char *)info.model, info.model_len), "model '%s' is not UTF-8", info.model);
    else
        FUZZ_ASSERT(info.model_len == (y.found ? y.len : 0) && memcmp(info.model, y.value, info.model_len) == 0,
                    "model '%s' (%zu bytes) is not what yajl read (%zu bytes)", info.model, info.model_len, y.len);
    if (info.model_len != 0) {
        FUZZ_ASSERT(info.model_len < sizeof(info.model) && info.model[info.model_len] == '\0', "model not terminated");
        FUZZ_ASSERT(info.model_offset < info.model_end && info.model_end <= size, "model at [%zu, %zu) of %zu bytes", info.model_offset,
                    info.model_end, size);
        FUZZ_ASSERT(body[info.model_offset] == '"' && body[info.model_end - 1] == '"', "the offsets do not frame a string");
        /* the rename passthrough.c makes keeps the body JSON */
        h2o_buffer_t *renamed;
        h2o_buffer_init(&renamed, &h2o_socket_buffer_prototype);
        pgw_buf_append(&renamed, body, info.model_offset);
        pgw_json_append_string(&renamed, "claude-sonnet-4.5", 17);
        pgw_buf_append(&renamed, body + info.model_end, size - info.model_end);
        FUZZ_ASSERT(fuzz_json_valid(renamed->bytes, renamed->size), "the renamed body is not JSON: %.*s",
                    (int)(renamed->size > 500 ? 500 : renamed->size), renamed->bytes);
        h2o_buffer_dispose(&renamed);
    }
    free(body);
    return 0;
}
