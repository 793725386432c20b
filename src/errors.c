/* poe-gateway: MIT licence. The one place that writes Anthropic-shaped error bodies. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "errors.h"
#include "json.h"

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
    h2o_iovec_t copy = h2o_strdup(&req->pool, body, len);
    h2o_send_inline(req, copy.base, copy.len);
}

void pgw_send_error(h2o_req_t *req, int status, const char *type, const char *fmt, ...)
{
    char message[1024];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(message, sizeof(message), fmt, args);
    va_end(args);
    if (n < 0)
        n = 0;
    if (n >= (int)sizeof(message))
        n = sizeof(message) - 1;

    h2o_buffer_t *buf;
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);
    pgw_error_json(&buf, type, message, n);
    pgw_send_body(req, status, "application/json", buf->bytes, buf->size);
    h2o_buffer_dispose(&buf);
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
