/* poe-gateway: MIT licence. Unit tests for src/serve/metrics.c. */
#include <stdio.h>
#include <string.h>
#include <h2o/socket.h>
#include <yajl/yajl_tree.h>
#include "../../../../src/serve/metrics.c"
#include "../../test.h"

static const char *render(pgw_metrics_t **all, size_t n, h2o_buffer_t **buf)
{
    pgw_metrics_gauges_t g = {3, 1, 2, 1764150000000ULL, 4};
    (*buf)->size = 0;
    pgw_metrics_render(all, n, &g, buf);
    pgw_buf_append(buf, "", 1);
    return (*buf)->bytes;
}

/* What a /usage document adds up to: its rows (key x model) and their requests, in total and today. -1 rows: not JSON. */
struct usage_sum {
    long long rows, keys, requests, today;
    int sorted; /* keys and each key's models in bytewise order */
};

static struct usage_sum sum_usage(const char *json)
{
    struct usage_sum u = {0, 0, 0, 0, 1};
    char err[256];
    yajl_val doc = yajl_tree_parse(json, err, sizeof(err));
    const char *keys_path[] = {"keys", NULL};
    yajl_val keys = doc != NULL ? yajl_tree_get(doc, keys_path, yajl_t_object) : NULL;
    if (keys == NULL) {
        u.rows = -1;
        yajl_tree_free(doc);
        return u;
    }
    for (size_t i = 0; i != keys->u.object.len; ++i) {
        yajl_val models = keys->u.object.values[i];
        ++u.keys;
        if (i != 0 && strcmp(keys->u.object.keys[i - 1], keys->u.object.keys[i]) >= 0)
            u.sorted = 0;
        for (size_t j = 0; j != models->u.object.len; ++j) {
            const char *total[] = {"total", "requests", NULL}, *today[] = {"today", "requests", NULL};
            ++u.rows;
            u.requests += YAJL_GET_INTEGER(yajl_tree_get(models->u.object.values[j], total, yajl_t_number));
            u.today += YAJL_GET_INTEGER(yajl_tree_get(models->u.object.values[j], today, yajl_t_number));
            if (j != 0 && strcmp(models->u.object.keys[j - 1], models->u.object.keys[j]) >= 0)
                u.sorted = 0;
        }
    }
    yajl_tree_free(doc);
    return u;
}

static struct usage_sum usage_of(pgw_metrics_t **all, size_t n, uint64_t now_ms, h2o_buffer_t **buf)
{
    (*buf)->size = 0;
    pgw_metrics_render_usage(all, n, now_ms, now_ms, buf);
    pgw_buf_append(buf, "", 1);
    return sum_usage((*buf)->bytes);
}

/* The sum of the values of the lines of /metrics starting with `prefix`, and how many there are. */
static unsigned long long sum_lines(const char *text, const char *prefix, size_t *count)
{
    unsigned long long total = 0;
    *count = 0;
    for (const char *line = text; *line != '\0';) {
        const char *end = strchr(line, '\n');
        if (end == NULL)
            end = line + strlen(line);
        if (strncmp(line, prefix, strlen(prefix)) == 0) {
            const char *sp = end;
            while (sp != line && sp[-1] != ' ')
                --sp;
            total += strtoull(sp, NULL, 10);
            ++*count;
        }
        line = *end != '\0' ? end + 1 : end;
    }
    return total;
}

static void record(pgw_metrics_t *m, const char *key, const char *model, int status, uint64_t now_ms)
{
    pgw_usage_t u = {10, 1, 0, 0};
    pgw_metrics_request_t r = {key, "claude-*", model, status, 0.01, 0.02, &u};
    pgw_metrics_record(m, &r, now_ms);
}

/* #15: every worker's table may hold TOKEN_MAX series; their union used to overflow /usage's arrays (a crash) */
static void test_bounded_sum(void)
{
    enum { WORKERS = 4 };
    pgw_metrics_t *w[WORKERS];
    h2o_buffer_t *buf;
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);
    uint64_t now = 1764150000000ULL;
    char model[32];
    long long recorded = 0;

    for (size_t i = 0; i != WORKERS; ++i)
        w[i] = pgw_metrics_create();
    /* 1,500 distinct models from one key on each worker, a different 1,500 each: 6,000 in all */
    for (size_t i = 0; i != WORKERS; ++i) {
        for (int k = 0; k != 1500; ++k, ++recorded) {
            snprintf(model, sizeof(model), "claude-%zu-%d", i, k);
            record(w[i], "eve", model, 200, now);
        }
    }
    /* then other keys, on every worker: their usage is still theirs */
    for (size_t i = 0; i != WORKERS; ++i, recorded += 2) {
        record(w[i], "bob", "claude-sonnet-4-5", 200, now);
        record(w[i], "master", "claude-haiku-4-5", 200, now);
    }
    for (size_t i = 0; i != WORKERS; ++i)
        is_int(w[i]->num_tokens, TOKEN_MAX - TOKEN_MAX / 8 + 3); /* its own, then eve's, bob's and master's (other) */

    struct usage_sum u = usage_of(w, WORKERS, now, &buf);
    ok(u.rows > 0 && u.rows <= TOKEN_MAX);
    is_int(u.keys, 3);
    is_int(u.requests, recorded); /* nothing dropped */
    is_int(u.today, recorded);
    ok(u.sorted);
    ok(strstr(buf->bytes, "\"bob\":{\"(other)\":{\"total\":{\"requests\":4,") != NULL);
    ok(strstr(buf->bytes, "\"master\":{\"(other)\":{\"total\":{\"requests\":4,") != NULL);

    /* /metrics: the same bound, the same sums */
    pgw_metrics_gauges_t g = {0};
    buf->size = 0;
    pgw_metrics_render(w, WORKERS, &g, &buf);
    pgw_buf_append(&buf, "", 1);
    size_t lines;
    is_int(sum_lines(buf->bytes, "poe_gateway_requests_total{", &lines), recorded);
    ok(lines > 0 && lines <= REQUEST_MAX);
    is_int(sum_lines(buf->bytes, "poe_gateway_tokens_total{", &lines), recorded * 11);
    ok(lines > 0 && lines <= TOKEN_MAX * 4);
    is_int(sum_lines(buf->bytes, "poe_gateway_request_duration_seconds_count{", &lines), recorded);
    is_int(lines, 1);

    /* more keys than the fold can keep apart: the last series takes them, still counted */
    for (int k = 0; k != 200; ++k, ++recorded) {
        char key[16];
        snprintf(key, sizeof(key), "key%d", k);
        record(w[0], key, "claude-x", 404, now);
    }
    is_int(w[0]->num_tokens, TOKEN_MAX);
    u = usage_of(w, WORKERS, now, &buf);
    ok(u.rows > 0 && u.rows <= TOKEN_MAX);
    is_int(u.requests, recorded);
    ok(strstr(buf->bytes, "\"(other)\":{\"(other)\":{\"total\"") != NULL);
    buf->size = 0;
    pgw_metrics_render(w, WORKERS, &g, &buf);
    pgw_buf_append(&buf, "", 1);
    is_int(sum_lines(buf->bytes, "poe_gateway_requests_total{", &lines), recorded);
    /* every 404 is still an error: those that folded as far as the last series have status 0 and are not */
    unsigned long long folded = sum_lines(buf->bytes, "poe_gateway_requests_total{key=\"(other)\",route=\"(other)\",model=\"(other)\",status=\"0\"}", &lines);
    is_int(sum_lines(buf->bytes, "poe_gateway_errors_total{type=\"not_found_error\"}", &lines) + folded, 200);

    h2o_buffer_dispose(&buf);
    for (size_t i = 0; i != WORKERS; ++i)
        pgw_metrics_destroy(w[i]);
}

/* The fold does not depend on how many workers there are: one worker's table and four tables hold the same bound. */
static void test_routes_bounded(void)
{
    pgw_metrics_t *w[2] = {pgw_metrics_create(), pgw_metrics_create()};
    pgw_usage_t u = {0};
    char route[32];
    for (int i = 0; i != 2 * ROUTE_MAX; ++i) {
        snprintf(route, sizeof(route), "r%d", i);
        pgw_metrics_request_t r = {"-", route, "-", 404, 0.001, 0.001, &u};
        pgw_metrics_record(w[i % 2], &r, 0);
    }
    h2o_buffer_t *buf;
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);
    pgw_metrics_gauges_t g = {0};
    pgw_metrics_render(w, 2, &g, &buf);
    pgw_buf_append(&buf, "", 1);
    size_t lines;
    is_int(sum_lines(buf->bytes, "poe_gateway_request_duration_seconds_count{", &lines), 2 * ROUTE_MAX);
    ok(lines <= ROUTE_MAX);
    ok(strstr(buf->bytes, "poe_gateway_request_duration_seconds_count{route=\"(other)\"}") != NULL);
    h2o_buffer_dispose(&buf);
    pgw_metrics_destroy(w[0]);
    pgw_metrics_destroy(w[1]);
}

static void test_basics(void)
{
    pgw_metrics_t *w[2] = {pgw_metrics_create(), pgw_metrics_create()};
    pgw_usage_t u = {10, 20, 30, 40};
    h2o_buffer_t *buf;
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);
    uint64_t day1 = 1764150000000ULL, day2 = day1 + 86400000ULL;

    pgw_metrics_request_t a = {"alice", "claude-*", "claude-x", 200, 0.02, 1.5, &u};
    pgw_metrics_record(w[0], &a, day1);
    pgw_metrics_record(w[1], &a, day1);
    pgw_metrics_record(w[1], &a, day1);
    pgw_metrics_request_t odd = {"bob", "r", "we\"ird\\mo\ndel", 404, 0.001, 0.001, &u};
    pgw_metrics_record(w[0], &odd, day1);

    const char *t = render(w, 2, &buf);
    ok(strstr(t, "poe_gateway_requests_total{key=\"alice\",route=\"claude-*\",model=\"claude-x\",status=\"200\"} 3\n") != NULL);
    ok(strstr(t, "model=\"we\\\"ird\\\\mo\\ndel\"") != NULL); /* escaped label value */
    ok(strstr(t, "poe_gateway_tokens_total{key=\"alice\",model=\"claude-x\",kind=\"output\"} 60\n") != NULL);
    ok(strstr(t, "poe_gateway_errors_total{type=\"not_found_error\"} 1\n") != NULL);
    ok(strstr(t, "poe_gateway_request_duration_seconds_bucket{route=\"claude-*\",le=\"1\"} 0\n") != NULL);
    ok(strstr(t, "poe_gateway_request_duration_seconds_bucket{route=\"claude-*\",le=\"2.5\"} 3\n") != NULL);
    ok(strstr(t, "poe_gateway_request_duration_seconds_count{route=\"claude-*\"} 3\n") != NULL);
    ok(strstr(t, "poe_gateway_requests_in_flight 3\n") != NULL);
    ok(strstr(t, "poe_gateway_queued_requests 4\n") != NULL);
    /* each label set once, however many workers hold it */
    const char *first = strstr(t, "key=\"alice\",route=\"claude-*\",model=\"claude-x\",status=\"200\"");
    ok(first != NULL && strstr(first + 1, "key=\"alice\",route=\"claude-*\",model=\"claude-x\",status=\"200\"") == NULL);

    /* usage: today resets on a new day, totals do not */
    buf->size = 0;
    pgw_metrics_record(w[0], &a, day2);
    pgw_metrics_render_usage(w, 2, day1, day2, &buf);
    pgw_buf_append(&buf, "", 1);
    ok(strstr(buf->bytes, "\"alice\":{\"claude-x\":{\"total\":{\"requests\":4,\"input_tokens\":40,") != NULL);
    ok(strstr(buf->bytes, "\"today\":{\"requests\":1,\"input_tokens\":10,") != NULL);

    /* a flood of distinct models ends in one (other) series, not in unbounded memory */
    char model[32];
    for (int i = 0; i != 3000; ++i) {
        snprintf(model, sizeof(model), "m%d", i);
        pgw_metrics_request_t r = {"eve", "claude-*", model, 200, 0, 0, &u};
        pgw_metrics_record(w[0], &r, day1);
    }
    t = render(w, 2, &buf);
    ok(strstr(t, "model=\"(other)\"") != NULL);
    h2o_buffer_dispose(&buf);
    pgw_metrics_destroy(w[0]);
    pgw_metrics_destroy(w[1]);
}

/* Fallbacks by (from, to), summed over workers, and bounded like the other tables. */
static void test_fallbacks(void)
{
    pgw_metrics_t *w[2] = {pgw_metrics_create(), pgw_metrics_create()};
    h2o_buffer_t *buf;
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);

    pgw_metrics_fallback(w[0], "claude-sonnet", "claude-via-openai");
    pgw_metrics_fallback(w[1], "claude-sonnet", "claude-via-openai");
    pgw_metrics_fallback(w[1], "gpt-5", "claude-*");
    const char *t = render(w, 2, &buf);
    ok(strstr(t, "# TYPE poe_gateway_fallbacks_total counter\n") != NULL);
    ok(strstr(t, "poe_gateway_fallbacks_total{from=\"claude-sonnet\",to=\"claude-via-openai\"} 2\n") != NULL);
    ok(strstr(t, "poe_gateway_fallbacks_total{from=\"gpt-5\",to=\"claude-*\"} 1\n") != NULL);

    char from[32];
    for (int i = 0; i != 2 * FALLBACK_MAX; ++i) {
        snprintf(from, sizeof(from), "r%d", i);
        pgw_metrics_fallback(w[i % 2], from, "x");
    }
    t = render(w, 2, &buf);
    size_t lines;
    is_int(sum_lines(t, "poe_gateway_fallbacks_total{", &lines), 3 + 2 * FALLBACK_MAX);
    ok(lines <= FALLBACK_MAX);
    ok(strstr(t, "poe_gateway_fallbacks_total{from=\"(other)\",to=\"(other)\"}") != NULL);
    h2o_buffer_dispose(&buf);
    pgw_metrics_destroy(w[0]);
    pgw_metrics_destroy(w[1]);
}

void test_src__metrics_c(void)
{
    subtest("fallbacks", test_fallbacks);
    subtest("basics", test_basics);
    subtest("bounded sum", test_bounded_sum);
    subtest("routes bounded", test_routes_bounded);
}
