/* poe-gateway: MIT licence. Unit tests for src/metrics.c. */
#include <stdio.h>
#include <string.h>
#include <h2o/socket.h>
#include "../../../src/metrics.c"
#include "../test.h"

static const char *render(pgw_metrics_t **all, size_t n, h2o_buffer_t **buf)
{
    pgw_metrics_gauges_t g = {3, 1, 2, 1764150000000ULL, 4};
    (*buf)->size = 0;
    pgw_metrics_render(all, n, &g, buf);
    pgw_buf_append(buf, "", 1);
    return (*buf)->bytes;
}

void test_src__metrics_c(void)
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
