/* poe-gateway: MIT licence. A first look at a Messages request body: valid JSON, and the fields routing needs. */
#include <stdio.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include "reqbody.h"

struct state {
    pgw_reqbody_t *info;
    const char *body;
    yajl_handle handle;
    int depth;   /* 0 outside the top-level value, 1 inside the top-level object */
    int toplevel_seen;
    int is_object;
    int model_too_long;
    int duplicate_model;
    enum { KEY_OTHER, KEY_MODEL, KEY_STREAM, KEY_MESSAGES, KEY_MAX_TOKENS } key;
};

static int on_scalar(struct state *s)
{
    if (s->depth == 0) {
        s->toplevel_seen = 1;
        return 1;
    }
    return 1;
}

static int on_null(void *ctx)
{
    return on_scalar(ctx);
}

static int on_boolean(void *ctx, int b)
{
    struct state *s = ctx;
    if (s->depth == 1 && s->key == KEY_STREAM)
        s->info->stream = b;
    return on_scalar(s);
}

static int on_number(void *ctx, const char *n, size_t len)
{
    struct state *s = ctx;
    if (s->depth == 1 && s->key == KEY_MAX_TOKENS)
        s->info->has_max_tokens = 1;
    return on_scalar(s);
}

static int on_string(void *ctx, const unsigned char *str, size_t len)
{
    struct state *s = ctx;
    if (s->depth == 1 && s->key == KEY_MODEL) {
        if (s->info->model_end != 0) {
            /* JSON parsers disagree on duplicate keys: the gateway and Poe must not read different models */
            s->duplicate_model = 1;
            return 0;
        }
        if (len >= sizeof(s->info->model)) {
            s->model_too_long = 1;
            return 0;
        }
        memcpy(s->info->model, str, len);
        s->info->model[len] = '\0';
        s->info->model_len = len;
        /* Inside a callback yajl's consumed count stands just past the string's closing quote; the opening quote is the
         * nearest earlier quote not escaped by an odd run of backslashes. */
        size_t end = yajl_get_bytes_consumed(s->handle), i = end - 1;
        while (i-- != 0) {
            if (s->body[i] != '"')
                continue;
            size_t bs = 0;
            while (i - bs != 0 && s->body[i - bs - 1] == '\\')
                ++bs;
            if (bs % 2 == 0)
                break;
        }
        s->info->model_offset = i;
        s->info->model_end = end;
    }
    return on_scalar(s);
}

static int on_start_map(void *ctx)
{
    struct state *s = ctx;
    if (s->depth++ == 0) {
        s->toplevel_seen = 1;
        s->is_object = 1;
    }
    return 1;
}

static int on_map_key(void *ctx, const unsigned char *key, size_t len)
{
    struct state *s = ctx;
    if (s->depth != 1)
        return 1;
#define IS(lit) (len == sizeof(lit) - 1 && memcmp(key, lit, len) == 0)
    s->key = IS("model") ? KEY_MODEL : IS("stream") ? KEY_STREAM : IS("messages") ? KEY_MESSAGES : IS("max_tokens") ? KEY_MAX_TOKENS : KEY_OTHER;
#undef IS
    return 1;
}

static int on_end_map(void *ctx)
{
    struct state *s = ctx;
    --s->depth;
    return 1;
}

static int on_start_array(void *ctx)
{
    struct state *s = ctx;
    if (s->depth == 1 && s->key == KEY_MESSAGES)
        s->info->has_messages = 1;
    if (s->depth++ == 0)
        s->toplevel_seen = 1;
    return 1;
}

static int on_end_array(void *ctx)
{
    struct state *s = ctx;
    --s->depth;
    return 1;
}

static const yajl_callbacks callbacks = {on_null, on_boolean, NULL, NULL, on_number, on_string,
                                         on_start_map, on_map_key, on_end_map, on_start_array, on_end_array};

int pgw_reqbody_inspect(const char *body, size_t len, pgw_reqbody_t *info, char *err, size_t errsz)
{
    struct state s = {info, body};
    int ret = -1;

    memset(info, 0, sizeof(*info));
    s.handle = yajl_alloc(&callbacks, NULL, &s);
    yajl_config(s.handle, yajl_dont_validate_strings, 0);
    if (len == 0) {
        snprintf(err, errsz, "request body is empty; expected a JSON object");
        goto Exit;
    }
    if (yajl_parse(s.handle, (const unsigned char *)body, len) != yajl_status_ok ||
        yajl_complete_parse(s.handle) != yajl_status_ok) {
        if (s.model_too_long) {
            snprintf(err, errsz, "model: name longer than %zu bytes", sizeof(info->model) - 1);
            goto Exit;
        }
        if (s.duplicate_model) {
            snprintf(err, errsz, "model: given more than once");
            goto Exit;
        }
        unsigned char *msg = yajl_get_error(s.handle, 0, (const unsigned char *)body, len);
        snprintf(err, errsz, "request body is not valid JSON: %s (at byte %zu)", (const char *)msg,
                 yajl_get_bytes_consumed(s.handle));
        yajl_free_error(s.handle, msg);
        goto Exit;
    }
    if (!s.is_object) {
        snprintf(err, errsz, "request body must be a JSON object");
        goto Exit;
    }
    ret = 0;
Exit:
    yajl_free(s.handle);
    return ret;
}
