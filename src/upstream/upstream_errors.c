/* poe-gateway: MIT licence. What the client gets when Poe answers with an error, on routes of both kinds
 * (docs/errors.md#upstream-errors).
 *
 * Two entries share one mapping. pgw_map_upstream_error reads an error body (Poe's or OpenAI's shape, whole or found
 * inside a 2xx answer by a translator) into the client's status, Anthropic error type and message. The routes call
 * pgw_upstream_error_answer for an error status: it settles first what does not depend on the body (Poe refusing the
 * route's own key, a redirect, a status that is no error), maps the rest, and copies Retry-After. Every message that
 * names Poe refusing the gateway's key is written here, by key_refused.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_tree.h>
#include <h2o.h>
#include "config/config.h"
#include "common/errors.h"
#include "common/log.h"
#include "upstream/upstream.h"
#include "upstream/upstream_errors.h"

#define MODULE_NAME "upstream_errors"

/* longest raw (non-JSON) body quoted in a message */
#define RAW_MESSAGE_MAX 200
/* bodies longer than this are not parsed as JSON, only quoted */
#define PARSE_MAX (256 * 1024)

struct parsed_error {
    const char *message; /* points into the tree, or NULL */
    const char *code;    /* string code, or NULL */
    long long code_num;  /* integer code, or 0 */
    const char *type;    /* Poe's / OpenAI's error type, used only to infer a status; never copied */
};

static yajl_val get(yajl_val v, const char *k1, const char *k2, yajl_type type)
{
    const char *path[] = {k1, k2, NULL};
    return v != NULL ? yajl_tree_get(v, path, type) : NULL;
}

static const char *nonempty_string(yajl_val v)
{
    return v != NULL && YAJL_IS_STRING(v) && YAJL_GET_STRING(v)[0] != '\0' ? YAJL_GET_STRING(v) : NULL;
}

/* code may be an integer (401) or a string ("model_not_found") */
static void read_code(yajl_val v, struct parsed_error *e)
{
    if (v == NULL)
        return;
    if (YAJL_IS_INTEGER(v))
        e->code_num = YAJL_GET_INTEGER(v);
    else if (YAJL_IS_STRING(v) && YAJL_GET_STRING(v)[0] != '\0')
        e->code = YAJL_GET_STRING(v);
}

static void parse_error(yajl_val root, struct parsed_error *e)
{
    memset(e, 0, sizeof(*e));
    if (root == NULL || !YAJL_IS_OBJECT(root))
        return;
    yajl_val err = get(root, "error", NULL, yajl_t_any);
    /* error.message, else detail.message, else message / Message, else a bare string error/detail
     * (docs/errors.md#upstream-errors) */
    if ((e->message = nonempty_string(get(root, "error", "message", yajl_t_string))) == NULL &&
        (e->message = nonempty_string(get(root, "detail", "message", yajl_t_string))) == NULL &&
        (e->message = nonempty_string(get(root, "message", NULL, yajl_t_string))) == NULL &&
        (e->message = nonempty_string(get(root, "Message", NULL, yajl_t_string))) == NULL &&
        (e->message = nonempty_string(err)) == NULL)
        e->message = nonempty_string(get(root, "detail", NULL, yajl_t_string));
    if (err != NULL && YAJL_IS_OBJECT(err)) {
        read_code(get(err, "code", NULL, yajl_t_any), e);
        e->type = nonempty_string(get(err, "type", NULL, yajl_t_string));
    } else {
        read_code(get(root, "code", NULL, yajl_t_any), e);
        e->type = nonempty_string(get(root, "type", NULL, yajl_t_string));
    }
}

/* Writes a formatted message, cut at a UTF-8 character boundary when it does not fit. */
__attribute__((format(printf, 2, 3))) static void set_message(pgw_upstream_failure_t *out, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(out->message, sizeof(out->message), fmt, args);
    va_end(args);
    if (n < 0) {
        out->message[0] = '\0';
    } else if ((size_t)n >= sizeof(out->message)) {
        size_t len = sizeof(out->message) - 1;
        /* drop a multi-byte character whose tail did not fit */
        size_t start = len;
        while (start != 0 && ((unsigned char)out->message[start - 1] & 0xc0) == 0x80)
            --start;
        if (start != 0) {
            unsigned char lead = (unsigned char)out->message[start - 1];
            size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
            if (lead >= 0x80 && len - (start - 1) < need)
                len = start - 1;
        }
        out->message[len] = '\0';
    }
}

/* A non-JSON body quoted in the message: whitespace runs collapsed, cut at a character boundary. */
static void quote_raw(const char *body, size_t len, char *dst, size_t dstsz)
{
    size_t o = 0;
    int space = 0;
    for (size_t i = 0; i != len && o + 4 < dstsz && o < RAW_MESSAGE_MAX; ++i) {
        unsigned char c = (unsigned char)body[i];
        if (isspace(c) || c < 0x20) {
            space = o != 0;
            continue;
        }
        if (space) {
            dst[o++] = ' ';
            space = 0;
        }
        dst[o++] = (char)c;
    }
    /* do not end inside a multi-byte character */
    size_t start = o;
    while (start != 0 && ((unsigned char)dst[start - 1] & 0xc0) == 0x80)
        --start;
    if (start != 0 && (unsigned char)dst[start - 1] >= 0xc0) {
        unsigned char lead = (unsigned char)dst[start - 1];
        size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
        if (o - (start - 1) < need)
            o = start - 1;
    }
    dst[o] = '\0';
}

static int contains_ci(const char *hay, const char *needle)
{
    return hay != NULL && strcasestr(hay, needle) != NULL;
}

/* For an error found inside a 2xx body (an in-stream `error` chunk): the status it stands for. */
static int infer_status(const struct parsed_error *e)
{
    static const struct {
        const char *name;
        int status;
    } names[] = {
        {"invalid_request_error", 400},
        {"context_length_exceeded", 400},
        {"authentication_error", 401},
        {"invalid_api_key", 401},
        {"insufficient_credits", 402},
        {"billing_error", 402},
        {"moderation_error", 403},
        {"permission_error", 403},
        {"not_found_error", 404},
        {"model_not_found", 404},
        {"timeout_error", 408},
        {"request_too_large", 413},
        {"rate_limit_error", 429},
        {"rate_limit_exceeded", 429},
        {"provider_error", 500},
        {"server_error", 500},
        {"api_error", 500},
        {"upstream_error", 502},
        {"overloaded_error", 529},
        {"service_unavailable", 503},
    };
    if (e->code_num >= 400 && e->code_num <= 599)
        return (int)e->code_num;
    if (e->code != NULL) {
        char *end;
        long n = strtol(e->code, &end, 10);
        if (*end == '\0' && n >= 400 && n <= 599)
            return (int)n;
    }
    for (size_t i = 0; i != sizeof(names) / sizeof(names[0]); ++i)
        if ((e->code != NULL && strcmp(e->code, names[i].name) == 0) || (e->type != NULL && strcmp(e->type, names[i].name) == 0))
            return names[i].status;
    return 502;
}

static int is_context_overflow(const struct parsed_error *e, const char *message)
{
    return (e->code != NULL && strcmp(e->code, "context_length_exceeded") == 0) ||
           (e->type != NULL && strcmp(e->type, "context_length_exceeded") == 0) ||
           contains_ci(message, "context_length_exceeded") || contains_ci(message, "maximum context length") ||
           contains_ci(message, "context window") || contains_ci(message, "context length") ||
           contains_ci(message, "prompt is too long");
}

/* Reads an integer that may be grouped with commas ("128,000"); returns the character after it. */
static const char *read_int(const char *p, long long *v)
{
    long long n = 0;
    const char *start = p;
    while (isdigit((unsigned char)*p) || (*p == ',' && p != start && isdigit((unsigned char)p[1]))) {
        if (*p != ',' && n < 1000000000000LL)
            n = n * 10 + (*p - '0');
        ++p;
    }
    *v = n;
    return p;
}

/* The first integer within `window` characters after `p`, or -1. */
static long long int_after(const char *p, size_t window)
{
    for (size_t i = 0; i != window && p[i] != '\0'; ++i)
        if (isdigit((unsigned char)p[i])) {
            long long v;
            read_int(p + i, &v);
            return v;
        }
    return -1;
}

/* The last integer ending within `window` characters before `p` (not before `start`), or -1. */
static long long int_before(const char *start, const char *p, size_t window)
{
    const char *q = p;
    while (q != start && (size_t)(p - q) < window && !isdigit((unsigned char)q[-1]))
        --q;
    if (q == start || !isdigit((unsigned char)q[-1]))
        return -1;
    while (q != start && (isdigit((unsigned char)q[-1]) || (q[-1] == ',' && q - 1 != start && isdigit((unsigned char)q[-2]))))
        --q;
    long long v;
    read_int(q, &v);
    return v;
}

/*
 * Finds the prompt size and the limit in an overflow message. Known shapes: Anthropic's "prompt is too long: N tokens >
 * M maximum", Poe's 413 "... N tokens > context window M", OpenAI/vLLM's "maximum context length is M tokens. However,
 * your messages resulted in N tokens" / "you requested N tokens (P in the messages, C in the completion)".
 */
static int overflow_numbers(const char *m, long long *tokens, long long *max)
{
    const char *p;
    *tokens = *max = -1;
    if ((p = strcasestr(m, "tokens >")) != NULL || (p = strcasestr(m, "tokens>")) != NULL) {
        *tokens = int_before(m, p, 8);
        *max = int_after(strchr(p, '>') + 1, 40);
    } else if ((p = strcasestr(m, "maximum context length")) != NULL) {
        *max = int_after(p, 40);
        const char *q;
        if ((q = strcasestr(m, " in the messages")) != NULL)
            *tokens = int_before(m, q, 4);
        else if ((q = strcasestr(m, "resulted in")) != NULL)
            *tokens = int_after(q, 20);
        else if ((q = strcasestr(m, "requested")) != NULL)
            *tokens = int_after(q, 20);
    }
    return *tokens > 0 && *max > 0;
}

/*
 * Poe refused the gateway's own key for `route`: 502, never 401 (the client's own credential was fine, and Claude Code
 * answers a 401 by asking its user to log in again). `key_env` is the variable the key came from, or NULL when that is
 * not known here; `poe_said` Poe's own message, or NULL.
 */
static void key_refused(pgw_upstream_failure_t *out, const char *route, const char *key_env, const char *poe_said)
{
    out->status = 502;
    out->type = PGW_ERR_API;
    out->no_retry = 1;
    set_message(out, "Poe refused the API key configured for route %s; check %s%s%s%s", route,
                key_env != NULL ? key_env : "the route's api_key", poe_said != NULL ? " (Poe said: " : "",
                poe_said != NULL ? poe_said : "", poe_said != NULL ? ")" : "");
}

/* pgw_map_upstream_error, with the variable the route's key came from when the caller knows it */
static void map_error(int status, const char *body, size_t len, const char *route, const char *key_env, const char *secret,
                      pgw_upstream_failure_t *out)
{
    struct parsed_error e;
    yajl_val root = NULL;
    char raw[RAW_MESSAGE_MAX + 8], suffix[96] = "";
    const char *m;
    int poe_said = 1; /* `m` is Poe's own words, not the gateway's stand-in for none */

    out->no_retry = 0;
    if (route == NULL)
        route = "(unnamed)";
    if (len != 0 && len <= PARSE_MAX) {
        char *copy = h2o_mem_alloc(len + 1), errbuf[64];
        memcpy(copy, body, len);
        copy[len] = '\0';
        root = yajl_tree_parse(copy, errbuf, sizeof(errbuf));
        free(copy);
    }
    parse_error(root, &e);
    if ((m = e.message) == NULL) {
        quote_raw(body, len, raw, sizeof(raw));
        if (raw[0] == '\0') {
            snprintf(raw, sizeof(raw), "Poe answered HTTP %d with no error message", status);
            poe_said = 0;
        }
        m = raw;
    }
    /* an error object in a 2xx body (inside a stream) carries its status in its code or type */
    if (status < 400)
        status = infer_status(&e);
    else if (status > 599)
        status = 502;
    /* Poe's code helps when it says more than the status does ("unsupported_feature_for_model", "model_not_found") */
    if (e.code != NULL && strstr(m, e.code) == NULL && atoi(e.code) != status)
        snprintf(suffix, sizeof(suffix), " (%.80s)", e.code);
    else if (e.code_num != 0 && e.code_num != status)
        snprintf(suffix, sizeof(suffix), " (code %lld)", e.code_num);

    out->status = status;
    out->type = PGW_ERR_API;
    switch (status) {
    case 401:
        key_refused(out, route, key_env, poe_said ? m : NULL);
        goto Exit;
    case 402:
        out->type = PGW_ERR_BILLING;
        set_message(out, "Poe points exhausted for the key of route '%s' (add points or use another key): %s%s", route, m, suffix);
        goto Exit;
    case 403:
        out->type = PGW_ERR_PERMISSION;
        break;
    case 404:
        out->type = PGW_ERR_NOT_FOUND;
        break;
    case 408:
    case 504:
        out->status = 504;
        out->type = PGW_ERR_TIMEOUT;
        break;
    case 429:
        out->type = PGW_ERR_RATE_LIMIT;
        break;
    case 503:
    case 529:
        out->status = 529;
        out->type = PGW_ERR_OVERLOADED;
        break;
    case 502:
        break;
    default:
        /* 400, 413, other 4xx, and 500 (Poe also answers some invalid requests with 500) may be a context overflow */
        if (status <= 500 && is_context_overflow(&e, m)) {
            /* Claude Code's reactive compaction looks for this wording, and the numbers when known
             * (docs/errors.md#context-overflow) */
            long long tokens, max;
            out->status = 400;
            out->type = PGW_ERR_INVALID_REQUEST;
            if (overflow_numbers(m, &tokens, &max))
                set_message(out, "prompt is too long: %lld tokens > %lld maximum", tokens, max);
            else if (strncasecmp(m, "prompt is too long", 18) == 0)
                set_message(out, "%s%s", m, suffix);
            else
                set_message(out, "prompt is too long: %s%s", m, suffix);
            goto Exit;
        }
        if (status == 413) {
            out->type = PGW_ERR_REQUEST_TOO_LARGE;
        } else if (status >= 500) {
            out->type = PGW_ERR_API; /* 500 (Poe's provider_error) and other 5xx keep their status */
        } else {
            out->status = 400; /* 400 and any other 4xx */
            out->type = PGW_ERR_INVALID_REQUEST;
        }
        break;
    }
    set_message(out, "%s%s", m, suffix);
Exit:
    pgw_redact(out->message, secret);
    if (root != NULL)
        yajl_tree_free(root);
}

void pgw_map_upstream_error(int status, const char *body, size_t len, const char *route, const char *secret,
                            pgw_upstream_failure_t *out)
{
    map_error(status, body, len, route, NULL, secret, out);
}

/*
 * pgw_upstream_error_answer without the request and the transfer: `location` is Poe's Location header and
 * `*retry_after` its Retry-After (base NULL when absent), replaced by the Retry-After the client gets (base NULL: none).
 */
static int answer_error(const pgw_route_t *route, int status, const char *body, size_t len, h2o_iovec_t location,
                        h2o_iovec_t *retry_after, pgw_upstream_failure_t *out)
{
    int own = 1;

    out->no_retry = 0;
    /* a 429 always tells the client when to come back (docs/errors.md#retry-after) */
    if (retry_after->base == NULL && status == 429)
        *retry_after = h2o_iovec_init(H2O_STRLIT("1"));
    if (status == 401) {
        /* the route's own key: the variable to check is known here, unlike inside an answer */
        map_error(status, body, len, route->model_name, route->api_key_env, route->api_key, out);
        pgw_log_error(MODULE_NAME, "route %s: Poe answered 401: its api_key is refused", route->model_name);
    } else if (status >= 300 && status <= 399) {
        out->status = 502;
        out->type = PGW_ERR_API;
        out->no_retry = 1;
        set_message(out, "route %s: Poe answered %d, a redirect%s%.*s; check the route's api_base", route->model_name, status,
                    location.base != NULL ? " to " : "", (int)(location.len < 200 ? location.len : 200),
                    location.base != NULL ? location.base : "");
        pgw_redact(out->message, route->api_key); /* the Location is Poe's text */
    } else if (status < 300) {
        out->status = 502;
        out->type = PGW_ERR_API;
        set_message(out, "route %s: Poe answered %d with no usable body", route->model_name, status);
    } else {
        map_error(status, body, len, route->model_name, NULL, route->api_key, out);
        own = 0;
    }
    return own;
}

int pgw_upstream_error_answer(h2o_req_t *req, const pgw_route_t *route, pgw_upstream_transfer_t *t, int status, const char *body,
                              size_t len, pgw_upstream_failure_t *out)
{
    h2o_iovec_t retry_after = pgw_upstream_header(t, H2O_STRLIT("retry-after"));
    int own = answer_error(route, status, body, len, pgw_upstream_header(t, H2O_STRLIT("location")), &retry_after, out);
    if (retry_after.base != NULL) {
        h2o_iovec_t v = h2o_strdup(&req->pool, retry_after.base, retry_after.len); /* the transfer's headers go with it */
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, v.base, v.len);
    }
    if (out->no_retry)
        pgw_error_no_retry(req);
    return own;
}
