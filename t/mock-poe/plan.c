/* poe-gateway: MIT licence. What the mock's answers are made of: response plans and how a handler fills them (plan.h), and
 * the small string, time and JSON helpers that both the server (mock-poe.c) and the default answers (poe.c) use. Nothing
 * here plays a plan or knows a route: mock-poe.c plays plans (and fills them from scripts), poe.c fills them with Poe's
 * default answers, so dependencies point one way (mock-poe.c -> poe.c -> plan.c, mock-poe.c -> plan.c). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include "plan.h"

uint64_t mock_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

int mock_iovec_is(h2o_iovec_t v, const char *s)
{
    return h2o_memis(v.base, v.len, s, strlen(s));
}

h2o_iovec_t mock_pool_printf(h2o_mem_pool_t *pool, const char *fmt, ...)
{
    va_list args;
    char small[256];
    int len;

    va_start(args, fmt);
    len = vsnprintf(small, sizeof(small), fmt, args);
    va_end(args);
    if (len < 0)
        h2o_fatal("vsnprintf failed");
    char *p = h2o_mem_alloc_pool(pool, (size_t)len + 1);
    if ((size_t)len < sizeof(small)) {
        memcpy(p, small, (size_t)len + 1);
    } else {
        va_start(args, fmt);
        vsnprintf(p, (size_t)len + 1, fmt, args);
        va_end(args);
    }
    return h2o_iovec_init(p, (size_t)len);
}

/* JSON writing */

yajl_gen mock_gen_new(void)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (g == NULL)
        h2o_fatal("no memory");
    return g;
}

void mock_gen_strn(yajl_gen g, const char *s, size_t len)
{
    yajl_gen_string(g, (const unsigned char *)s, len);
}

void mock_gen_str(yajl_gen g, const char *s)
{
    mock_gen_strn(g, s, strlen(s));
}

void mock_gen_kv_str(yajl_gen g, const char *key, const char *value)
{
    mock_gen_str(g, key);
    mock_gen_str(g, value);
}

void mock_gen_kv_int(yajl_gen g, const char *key, long long value)
{
    mock_gen_str(g, key);
    yajl_gen_integer(g, value);
}

void mock_gen_kv_null(yajl_gen g, const char *key)
{
    mock_gen_str(g, key);
    yajl_gen_null(g);
}

/* Copies the generated text to the pool and frees the generator. */
h2o_iovec_t mock_gen_finish(yajl_gen g, h2o_mem_pool_t *pool)
{
    const unsigned char *buf;
    size_t len;

    yajl_gen_get_buf(g, &buf, &len);
    h2o_iovec_t ret = h2o_strdup(pool, (const char *)buf, len);
    yajl_gen_free(g);
    return ret;
}

/* JSON reading */

yajl_val mock_json_get(yajl_val obj, const char *key)
{
    if (!YAJL_IS_OBJECT(obj))
        return NULL;
    for (size_t i = 0; i != obj->u.object.len; ++i)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return obj->u.object.values[i];
    return NULL;
}

/* Parses the request body as JSON; NULL when there is none or it is not JSON. The caller frees with yajl_tree_free. */
yajl_val mock_parse_body(h2o_req_t *req)
{
    if (req->entity.base == NULL)
        return NULL;
    char *text = h2o_mem_alloc_pool(&req->pool, req->entity.len + 1);
    memcpy(text, req->entity.base, req->entity.len);
    text[req->entity.len] = '\0';
    return yajl_tree_parse(text, NULL, 0);
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
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
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 529:
        return "Site Overloaded";
    default:
        return status < 400 ? "OK" : "Error";
    }
}

void mock_resp_status(mock_resp_t *resp, int status)
{
    resp->req->res.status = status;
    resp->req->res.reason = reason_phrase(status);
}

void mock_resp_header(mock_resp_t *resp, const char *name, h2o_iovec_t value)
{
    h2o_req_t *req = resp->req;
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, value.base, value.len);
}

void mock_resp_chunk(mock_resp_t *resp, h2o_iovec_t chunk)
{
    h2o_vector_reserve(&resp->req->pool, &resp->chunks, resp->chunks.size + 1);
    resp->chunks.entries[resp->chunks.size++] = chunk;
}

void mock_resp_body(mock_resp_t *resp, const char *content_type, h2o_iovec_t body)
{
    if (content_type != NULL)
        mock_resp_header(resp, "content-type", h2o_iovec_init(content_type, strlen(content_type)));
    mock_resp_chunk(resp, body);
    resp->content_length = body.len;
}

void mock_resp_json(mock_resp_t *resp, int status, h2o_iovec_t body)
{
    mock_resp_status(resp, status);
    mock_resp_body(resp, "application/json", body);
}
