/* poe-gateway: MIT licence. The one place that writes error bodies: Anthropic's shape, and OpenAI's for the OpenAI-format
 * endpoint (docs/errors.md#the-error-body). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "common/errors.h"
#include "common/json.h"

const char *pgw_status_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 529:
        return "Overloaded";
    default:
        return "Error";
    }
}

const char *pgw_error_quote(h2o_mem_pool_t *pool, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char *out = h2o_mem_alloc_pool(pool, len * 6 + 1), *d = out;
    for (size_t i = 0; i != len; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\') {
            *d++ = '\\';
            *d++ = '\\';
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(d, "\\u00", 4);
            d[4] = hex[c >> 4];
            d[5] = hex[c & 15];
            d += 6;
        } else {
            *d++ = (char)c;
        }
    }
    *d = '\0';
    return out;
}

void pgw_error_json(h2o_buffer_t **buf, const char *type, const char *message, size_t message_len)
{
    pgw_buf_append_lit(buf, "{\"type\":\"error\",\"error\":{\"type\":");
    pgw_json_append_string(buf, type, strlen(type));
    pgw_buf_append_lit(buf, ",\"message\":");
    pgw_json_append_string(buf, message, message_len);
    pgw_buf_append_lit(buf, "}}");
}

void pgw_send_body(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = pgw_status_reason(status);
    h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, content_type, strlen(content_type), 1);
    /* a known length keeps an HTTP/1.1 connection open: libh2o 2.2.5 closes it after a non-200 answer of unknown length
     * (it chunks only 200s), which would drop every request the client pipelined behind an error */
    req->res.content_length = len;
    /* the length also says where the answer ends on a connection that closes after it (a request whose body was refused
     * unread, src/serve/bodies.c): a client still sending reads it whole, however the connection ends */
    h2o_iovec_t copy = h2o_strdup(&req->pool, body, len);
    h2o_send_inline(req, copy.base, copy.len);
}

void pgw_error_no_retry(h2o_req_t *req)
{
    h2o_set_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-should-retry"), 0, H2O_STRLIT("false"), 1);
}

void pgw_openai_error_json(h2o_buffer_t **buf, int status, const char *type, const char *message, size_t message_len)
{
    char code[16];
    pgw_buf_append_lit(buf, "{\"error\":{\"message\":");
    pgw_json_append_string(buf, message, message_len);
    pgw_buf_append_lit(buf, ",\"type\":");
    pgw_json_append_string(buf, type, strlen(type));
    int n = snprintf(code, sizeof(code), "%d", status);
    pgw_buf_append_lit(buf, ",\"param\":null,\"code\":");
    pgw_json_append_string(buf, code, n);
    pgw_buf_append_lit(buf, "}}");
}

/* Formats the message and sends the error body in the shape asked for. */
static void send_error(h2o_req_t *req, int openai, int status, const char *type, const char *fmt, va_list args)
{
    char message[1024];
    int n = vsnprintf(message, sizeof(message), fmt, args);
    if (n < 0)
        n = 0;
    if (n >= (int)sizeof(message))
        n = sizeof(message) - 1;

    h2o_buffer_t *buf;
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);
    if (openai)
        pgw_openai_error_json(&buf, status, type, message, n);
    else
        pgw_error_json(&buf, type, message, n);
    pgw_send_body(req, status, "application/json", buf->bytes, buf->size);
    h2o_buffer_dispose(&buf);
}

void pgw_send_error(h2o_req_t *req, int status, const char *type, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    send_error(req, 0, status, type, fmt, args);
    va_end(args);
}

void pgw_send_error_as(h2o_req_t *req, int openai, int status, const char *type, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    send_error(req, openai, status, type, fmt, args);
    va_end(args);
}

/*
 * libh2o answers some requests before any handler sees them: a body over max_request_entity_size (413), a body it
 * cannot read (400: a bad Content-Length or chunk, an unknown Transfer-Encoding), an unknown Expect (417), invalid
 * HTTP/2 header characters (400). It writes those with h2o_send_error_generic: text/plain, on the host's fallback path
 * (no path is bound yet). A filter there puts each such body into the Anthropic shape before the head goes out; the
 * status, and libh2o's decision to close the connection, stay as they are.
 */
static void rewrite_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt, h2o_send_state_t state)
{
    char message[256];
    int n;
    h2o_buffer_t *buf;

    if (req->res.status == 413) {
        n = snprintf(message, sizeof(message), "request body is larger than gateway.max_body_bytes (%zu bytes)",
                     req->conn->ctx->globalconf->max_request_entity_size);
    } else {
        /* libh2o's text ("broken chunked-encoding"), whole in one send; a HEAD has none, and gets the reason phrase */
        n = 0;
        for (size_t i = 0; i != bufcnt && n < (int)sizeof(message) - 1; ++i)
            n += snprintf(message + n, sizeof(message) - n, "%.*s", (int)bufs[i].len, bufs[i].base);
        if (n == 0)
            n = snprintf(message, sizeof(message), "%s", req->res.reason);
    }
    if (n >= (int)sizeof(message))
        n = sizeof(message) - 1;
    const char *type = PGW_ERR_INVALID_REQUEST;
    if (req->res.status == 413)
        type = PGW_ERR_REQUEST_TOO_LARGE;
    else if (req->res.status >= 500)
        type = PGW_ERR_API;
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);
    pgw_error_json(&buf, type, message, n);
    h2o_iovec_t body = h2o_strdup(&req->pool, buf->bytes, buf->size);
    h2o_buffer_dispose(&buf);

    /* the head is written by the next stream's first send, so it is still ours to change */
    req->res.content_length = body.len;
    h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, H2O_STRLIT("application/json"), 1);
    int is_head = h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD"));
    h2o_ostream_send_next(self, req, &body, is_head ? 0 : 1, state);
}

static void rewrite_setup(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    ssize_t i;
    if (req->res.status >= 400 && (i = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1)) != -1 &&
        h2o_memis(req->res.headers.entries[i].value.base, req->res.headers.entries[i].value.len,
                  H2O_STRLIT("text/plain; charset=utf-8"))) {
        h2o_ostream_t *ostream = h2o_add_ostream(req, sizeof(*ostream), slot);
        ostream->do_send = rewrite_send;
        slot = &ostream->next;
    }
    h2o_setup_next_ostream(req, slot);
}

void pgw_errors_register(h2o_hostconf_t *hostconf)
{
    h2o_filter_t *filter = h2o_create_filter(&hostconf->fallback_path, sizeof(*filter));
    filter->on_setup_ostream = rewrite_setup;
}

/*
 * A secret can also be cut short where a message was truncated to fit: a tail of the text that is the start of the
 * secret (8 bytes or more, or the whole secret when it is shorter) is redacted too.
 */
size_t pgw_redact_bytes(char *bytes, size_t len, const char *secret)
{
    static const char marker[] = "[redacted]";
    size_t slen, mlen;
    if (len == 0 || secret == NULL || (slen = strlen(secret)) < 4)
        return len;
    mlen = slen < sizeof(marker) - 1 ? slen : sizeof(marker) - 1;
    for (char *p = bytes; (p = memmem(p, len - (size_t)(p - bytes), secret, slen)) != NULL; p += mlen) {
        memcpy(p, marker, mlen);
        memmove(p + mlen, p + slen, len - (size_t)(p + slen - bytes));
        len -= slen - mlen;
    }
    size_t min_tail = slen < 8 ? slen : 8;
    for (size_t tail = (len < slen - 1 ? len : slen - 1); tail >= min_tail; --tail) {
        if (memcmp(bytes + len - tail, secret, tail) == 0) {
            size_t keep = tail < mlen ? tail : mlen;
            memcpy(bytes + len - tail, marker, keep);
            len -= tail - keep;
            break;
        }
    }
    return len;
}

void pgw_redact(char *text, const char *secret)
{
    text[pgw_redact_bytes(text, strlen(text), secret)] = '\0';
}

int pgw_error_status(const char *type)
{
    static const struct {
        const char *type;
        int status;
    } map[] = {{PGW_ERR_INVALID_REQUEST, 400},   {PGW_ERR_BILLING, 402},    {PGW_ERR_PERMISSION, 403}, {PGW_ERR_NOT_FOUND, 404},
               {PGW_ERR_REQUEST_TOO_LARGE, 413}, {PGW_ERR_RATE_LIMIT, 429}, {PGW_ERR_TIMEOUT, 504},    {PGW_ERR_OVERLOADED, 529}};
    for (size_t i = 0; i != sizeof(map) / sizeof(map[0]); ++i)
        if (strcmp(type, map[i].type) == 0)
            return map[i].status;
    return 502;
}
