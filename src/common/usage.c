/* poe-gateway: MIT licence. Token usage noted from Anthropic-shaped responses, whole or streamed, on the side. */
#include <stdlib.h>
#include <string.h>
#include "common/usage.h"

static long long *field_for(pgw_usage_t *u, const unsigned char *key, size_t len)
{
#define IS(lit) (len == sizeof(lit) - 1 && memcmp(key, lit, len) == 0)
    if (IS("input_tokens"))
        return &u->input_tokens;
    if (IS("output_tokens"))
        return &u->output_tokens;
    if (IS("cache_read_input_tokens"))
        return &u->cache_read_input_tokens;
    if (IS("cache_creation_input_tokens"))
        return &u->cache_creation_input_tokens;
    return NULL;
#undef IS
}

static int on_value(void *ctx)
{
    pgw_usage_parser_t *p = ctx;
    p->field = NULL;
    p->pending_usage = 0;
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
    p->pending_usage = 0;
    p->field = NULL;
    return 1;
}

static int on_map_key(void *ctx, const unsigned char *key, size_t len)
{
    pgw_usage_parser_t *p = ctx;
    p->field = p->usage_depth != 0 && p->depth == p->usage_depth ? field_for(p->usage, key, len) : NULL;
    p->pending_usage = p->usage_depth == 0 && len == 5 && memcmp(key, "usage", 5) == 0;
    return 1;
}

static int on_end_map(void *ctx)
{
    pgw_usage_parser_t *p = ctx;
    if (p->depth == p->usage_depth)
        p->usage_depth = 0;
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

void pgw_usage_parser_init(pgw_usage_parser_t *p, pgw_usage_t *usage)
{
    memset(p, 0, sizeof(*p));
    p->usage = usage;
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
    pgw_usage_parser_init(&p, usage);
    pgw_usage_parser_feed(&p, data, len);
    pgw_usage_parser_finish(&p);
    pgw_usage_parser_dispose(&p);
}
