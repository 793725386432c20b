/* poe-gateway: MIT licence. Token usage noted from responses, whole or streamed, on the side: Anthropic's usage objects,
 * and OpenAI's (chat/completions) read as Anthropic's counts. */
#include <stdlib.h>
#include <string.h>
#include <h2o/socket.h>
#include "common/json_reader.h"
#include "common/usage.h"

#define IS(lit) (len == sizeof(lit) - 1 && memcmp(key, lit, len) == 0)

/* A key of the usage object itself: Anthropic's names, and OpenAI's (prompt_tokens waits for the object's end). */
static long long *field_for(pgw_usage_parser_t *p, const unsigned char *key, size_t len)
{
    pgw_usage_t *u = p->usage;
    if (IS("input_tokens"))
        return &u->input_tokens;
    if (IS("output_tokens") || IS("completion_tokens"))
        return &u->output_tokens;
    if (IS("cache_read_input_tokens"))
        return &u->cache_read_input_tokens;
    if (IS("cache_creation_input_tokens"))
        return &u->cache_creation_input_tokens;
    if (IS("prompt_tokens"))
        return &p->prompt_tokens;
    return NULL;
}

/* A key of OpenAI's usage.prompt_tokens_details. */
static long long *details_field_for(pgw_usage_parser_t *p, const unsigned char *key, size_t len)
{
    if (IS("cached_tokens"))
        return &p->details_cached;
    if (IS("cache_creation_tokens"))
        return &p->details_creation;
    return NULL;
}

#undef IS

/* The end of a usage object: OpenAI's prompt_tokens counts the cache too, Anthropic's input_tokens does not; the cache
 * counts are taken from one place, never both added (docs/mapping.md#usage). */
static void resolve_openai(pgw_usage_parser_t *p)
{
    pgw_usage_t *u = p->usage;
    if (p->details_cached >= 0)
        u->cache_read_input_tokens = p->details_cached;
    if (p->details_creation >= 0)
        u->cache_creation_input_tokens = p->details_creation;
    if (p->prompt_tokens >= 0) {
        /* what is left of prompt_tokens after each cache count, never below 0 and never overflowing (the counts are
         * Poe's numbers, of any size or sign) */
        long long input = p->prompt_tokens, parts[2] = {u->cache_read_input_tokens, u->cache_creation_input_tokens};
        for (size_t i = 0; i != 2; ++i)
            if (parts[i] > 0)
                input = parts[i] >= input ? 0 : input - parts[i];
        u->input_tokens = input;
    }
    p->prompt_tokens = p->details_cached = p->details_creation = -1;
}

static int on_value(void *ctx)
{
    pgw_usage_parser_t *p = ctx;
    p->field = NULL;
    p->pending_usage = p->pending_details = 0;
    return 1;
}

static int on_null(void *ctx)
{
    return on_value(ctx);
}

static int on_boolean(void *ctx, int b)
{
    return on_value(ctx);
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    return on_value(ctx);
}

static int on_number(void *ctx, const char *n, size_t len)
{
    pgw_usage_parser_t *p = ctx;
    if (p->field != NULL && len < 32) {
        char buf[32];
        memcpy(buf, n, len);
        buf[len] = '\0';
        *p->field = strtoll(buf, NULL, 10);
    }
    return on_value(ctx);
}

static int on_start_map(void *ctx)
{
    pgw_usage_parser_t *p = ctx;
    ++p->depth;
    if (p->pending_usage && p->usage_depth == 0)
        p->usage_depth = p->depth;
    else if (p->pending_details && p->details_depth == 0)
        p->details_depth = p->depth;
    p->pending_usage = p->pending_details = 0;
    p->field = NULL;
    return 1;
}

static int on_map_key(void *ctx, const unsigned char *key, size_t len)
{
    pgw_usage_parser_t *p = ctx;
    int in_usage = p->usage_depth != 0 && p->depth == p->usage_depth;
    if (in_usage)
        p->field = field_for(p, key, len);
    else if (p->details_depth != 0 && p->depth == p->details_depth)
        p->field = details_field_for(p, key, len);
    else
        p->field = NULL;
    p->pending_usage = p->usage_depth == 0 && len == 5 && memcmp(key, "usage", 5) == 0;
    p->pending_details = in_usage && len == 21 && memcmp(key, "prompt_tokens_details", 21) == 0;
    return 1;
}

static int on_end_map(void *ctx)
{
    pgw_usage_parser_t *p = ctx;
    if (p->depth == p->details_depth) {
        p->details_depth = 0;
    } else if (p->depth == p->usage_depth) {
        p->usage_depth = 0;
        resolve_openai(p);
    }
    --p->depth;
    return on_value(ctx);
}

static int on_start_array(void *ctx)
{
    pgw_usage_parser_t *p = ctx;
    ++p->depth;
    return on_value(ctx);
}

static int on_end_array(void *ctx)
{
    pgw_usage_parser_t *p = ctx;
    --p->depth;
    return on_value(ctx);
}

static const yajl_callbacks callbacks = {on_null, on_boolean, NULL, NULL, on_number, on_string,
                                         on_start_map, on_map_key, on_end_map, on_start_array, on_end_array};

static void init_state(pgw_usage_parser_t *p, pgw_usage_t *usage)
{
    memset(p, 0, sizeof(*p));
    p->usage = usage;
    p->prompt_tokens = p->details_cached = p->details_creation = -1;
}

void pgw_usage_parser_init(pgw_usage_parser_t *p, pgw_usage_t *usage)
{
    init_state(p, usage);
    p->handle = yajl_alloc(&callbacks, NULL, p);
    yajl_config(p->handle, yajl_dont_validate_strings, 1);
}

void pgw_usage_parser_feed(pgw_usage_parser_t *p, const char *bytes, size_t len)
{
    if (!p->failed && yajl_parse(p->handle, (const unsigned char *)bytes, len) != yajl_status_ok)
        p->failed = 1;
}

int pgw_usage_parser_finish(pgw_usage_parser_t *p)
{
    if (!p->failed && yajl_complete_parse(p->handle) != yajl_status_ok)
        p->failed = 1;
    return p->failed ? -1 : 0;
}

void pgw_usage_parser_dispose(pgw_usage_parser_t *p)
{
    if (p->handle != NULL)
        yajl_free(p->handle);
    p->handle = NULL;
}

void pgw_usage_note_event(pgw_usage_t *usage, const char *data, size_t len)
{
    if (memmem(data, len, "\"usage\"", 7) == NULL)
        return;
    pgw_usage_parser_t p;

    /* the calls a yajl handle would make, without one to allocate for each event; what pgw_json_read leaves to yajl
     * (invalid UTF-8, which this parser lets through, malformed JSON) is read again from the usage as it was */
    pgw_usage_t before = *usage;
    h2o_buffer_t *scratch;
    size_t consumed;
    init_state(&p, usage);
    h2o_buffer_init(&scratch, &h2o_socket_buffer_prototype);
    pgw_json_read_t rd = pgw_json_read(data, len, &callbacks, &p, &scratch, &consumed, 0);
    h2o_buffer_dispose(&scratch);
    if (rd != PGW_JSON_READ_REFUSED)
        return; /* the callbacks never cancel */
    *usage = before;

    pgw_usage_parser_init(&p, usage);
    pgw_usage_parser_feed(&p, data, len);
    pgw_usage_parser_finish(&p);
    pgw_usage_parser_dispose(&p);
}
