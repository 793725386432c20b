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
    /* on an HTTP/1.x connection that closes after the answer (a request whose body was refused unread, src/bodies.c), a
     * length says where the answer ends: a client still sending reads it whole, however the connection ends */
    if (req->version < 0x200 && !req->http1_is_persistent)
        req->res.content_length = copy.len;
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

void pgw_redact(char *text, const char *secret)
{
    static const char marker[] = "[redacted]";
    size_t slen;
    char *p;
    if (secret == NULL || (slen = strlen(secret)) < 4)
        return;
    while ((p = strstr(text, secret)) != NULL) {
        size_t mlen = slen < sizeof(marker) - 1 ? slen : sizeof(marker) - 1;
        memcpy(p, marker, mlen);
        memmove(p + mlen, p + slen, strlen(p + slen) + 1);
    }
}
