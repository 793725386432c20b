/* poe-gateway: MIT licence. libFuzzer target: the per-worker metrics tables and their sum behind /metrics and /usage
 * (src/serve/metrics.c).
 *
 * Input: one byte for the number of workers (1 to 4), then records of 4 bytes each:
 *   byte 0: worker (bits 0-1), key (bits 2-4, out of eight, one of them with characters to escape), status (bits 5-7)
 *   bytes 1-2: the model, a 16-bit number: 0 is "-" (not routed), 1 to 3 names with characters to escape, others
 *              "claude-<n>" (so a wildcard's flood of names is a few bytes each); the route is "r<n % 24>"
 *   byte 3: bits 0-5 the tokens reported; bit 6 moves this worker on to the next day (once); bit 7 records 16 models
 *           never seen before in one go (up to 1,024 in an input), so that inputs reach every table's bound quickly.
 * Every record is also counted here. After every 64 records and at the end, both documents are rendered, and:
 *   - /usage is one valid JSON document, with at most TOKEN_MAX rows, keys and models in order, and its requests, in
 *     total and today, and its input tokens are what was recorded (routed requests only): folding loses nothing;
 *   - /metrics has only comment lines and `name{labels} value` lines, at most REQUEST_MAX request series,
 *     TOKEN_MAX token series and ROUTE_MAX histograms, and its requests_total and request_duration_seconds_count add
 *     up to every request.
 */
#include <yajl/yajl_tree.h>
#include <h2o/socket.h>
#include "fuzz.h"
/* the same code with small bounds, so that a few records reach them (the bound is a parameter of the code, not of its
 * logic) */
#define REQUEST_MAX 64
#define TOKEN_MAX 32
#define ROUTE_MAX 16
#define FALLBACK_MAX 16
#include "../src/serve/metrics.c"

#define MAX_WORKERS 4

static const char *const keys[] = {"master", "alice", "bob", "-", "k\"e\\y\n", "carol", "dave", "(other)"};
static const int statuses[] = {200, 200, 400, 404, 429, 500, 529, 502};

struct expect {
    unsigned long long requests, routed, routed_today, tokens_input;
};

static void check_usage(pgw_metrics_t **all, size_t n, uint64_t now_ms, const struct expect *e)
{
    h2o_buffer_t *buf;
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);
    pgw_metrics_render_usage(all, n, 1764150000000ULL, now_ms, &buf);
    FUZZ_ASSERT(fuzz_json_valid(buf->bytes, buf->size), "/usage is not JSON: %.*s", (int)(buf->size < 300 ? buf->size : 300),
                buf->bytes);
    pgw_buf_append(&buf, "", 1);
    char err[256];
    yajl_val doc = yajl_tree_parse(buf->bytes, err, sizeof(err));
    const char *keys_path[] = {"keys", NULL};
    yajl_val ks = yajl_tree_get(doc, keys_path, yajl_t_object);
    FUZZ_ASSERT(ks != NULL, "/usage has no keys object");
    unsigned long long rows = 0, requests = 0, today = 0, input = 0;
    for (size_t i = 0; i != ks->u.object.len; ++i) {
        FUZZ_ASSERT(i == 0 || strcmp(ks->u.object.keys[i - 1], ks->u.object.keys[i]) < 0, "keys out of order");
        yajl_val models = ks->u.object.values[i];
        FUZZ_ASSERT(YAJL_IS_OBJECT(models) && models->u.object.len != 0, "a key without models");
        for (size_t j = 0; j != models->u.object.len; ++j) {
            const char *total_path[] = {"total", "requests", NULL}, *today_path[] = {"today", "requests", NULL},
                       *input_path[] = {"total", "input_tokens", NULL};
            FUZZ_ASSERT(j == 0 || strcmp(models->u.object.keys[j - 1], models->u.object.keys[j]) < 0, "models out of order");
            yajl_val row = models->u.object.values[j];
            requests += YAJL_GET_INTEGER(yajl_tree_get(row, total_path, yajl_t_number));
            today += YAJL_GET_INTEGER(yajl_tree_get(row, today_path, yajl_t_number));
            input += YAJL_GET_INTEGER(yajl_tree_get(row, input_path, yajl_t_number));
            ++rows;
        }
    }
    FUZZ_ASSERT(rows <= TOKEN_MAX, "/usage has %llu rows", rows);
    FUZZ_ASSERT(requests == e->routed, "/usage counts %llu requests of %llu", requests, e->routed);
    FUZZ_ASSERT(today == e->routed_today, "/usage counts %llu requests today of %llu", today, e->routed_today);
    FUZZ_ASSERT(input == e->tokens_input, "/usage counts %llu input tokens of %llu", input, e->tokens_input);
    yajl_tree_free(doc);
    h2o_buffer_dispose(&buf);
}

static void check_metrics(pgw_metrics_t **all, size_t n, const struct expect *e)
{
    h2o_buffer_t *buf;
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);
    pgw_metrics_gauges_t g = {0};
    pgw_metrics_render(all, n, &g, &buf);
    unsigned long long requests = 0, durations = 0;
    size_t request_lines = 0, token_lines = 0, route_lines = 0;
    const char *p = buf->bytes, *end = buf->bytes + buf->size;
    FUZZ_ASSERT(buf->size != 0 && end[-1] == '\n', "/metrics does not end with a line");
    while (p != end) {
        const char *eol = memchr(p, '\n', end - p);
        size_t len = eol - p;
        if (len != 0 && p[0] != '#') {
            /* name, optional {labels} where quotes are escaped, a space, a number */
            FUZZ_ASSERT(len > 13 && memcmp(p, "poe_gateway_", 12) == 0, "a line that is no sample: %.*s", (int)len, p);
            const char *q = p, *value;
            while (q != eol && *q != '{' && *q != ' ')
                ++q;
            if (*q == '{') {
                int in_string = 0;
                for (++q; q != eol && (in_string || *q != '}'); ++q) {
                    if (in_string && *q == '\\')
                        ++q;
                    else if (*q == '"')
                        in_string = !in_string;
                }
                FUZZ_ASSERT(q != eol, "labels not closed: %.*s", (int)len, p);
                ++q;
            }
            FUZZ_ASSERT(q != eol && *q == ' ' && q + 1 != eol, "no value: %.*s", (int)len, p);
            value = q + 1;
            unsigned long long v = strtoull(value, NULL, 10);
            if (len > 27 && memcmp(p, "poe_gateway_requests_total{", 27) == 0) {
                requests += v;
                ++request_lines;
            } else if (memcmp(p, "poe_gateway_tokens_total{", 25) == 0) {
                ++token_lines;
            } else if (len > 43 && memcmp(p, "poe_gateway_request_duration_seconds_count{", 43) == 0) {
                durations += v;
                ++route_lines;
            }
        }
        p = eol + 1;
    }
    FUZZ_ASSERT(request_lines <= REQUEST_MAX, "%zu request series", request_lines);
    FUZZ_ASSERT(token_lines <= 4 * TOKEN_MAX, "%zu token lines", token_lines);
    FUZZ_ASSERT(route_lines <= ROUTE_MAX, "%zu histograms", route_lines);
    FUZZ_ASSERT(requests == e->requests, "/metrics counts %llu requests of %llu", requests, e->requests);
    FUZZ_ASSERT(durations == e->requests, "/metrics times %llu requests of %llu", durations, e->requests);
    h2o_buffer_dispose(&buf);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_logs();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = fuzz_take(&data, &size) % MAX_WORKERS + 1;
    pgw_metrics_t *all[MAX_WORKERS];
    uint64_t day0 = 1764150000000ULL, now[MAX_WORKERS];
    struct expect e = {0};
    unsigned fresh = 0, num_records = 0;
    char model[32], route[16];

    for (size_t i = 0; i != n; ++i) {
        all[i] = pgw_metrics_create();
        now[i] = day0;
    }
    while (size >= 4) {
        uint8_t b0 = data[0], b3 = data[3];
        unsigned m = data[1] | data[2] << 8;
        data += 4;
        size -= 4;
        size_t w = (b0 & 3) % n;
        if ((b3 & 0x40) && now[w] == day0)
            now[w] += 86400000; /* a worker's clock only moves on */
        pgw_usage_t usage = {b3 & 0x3f, 1, 0, 0};
        snprintf(route, sizeof(route), "r%u", m % 24);
        pgw_metrics_request_t r = {keys[(b0 >> 2) & 7], route, model, statuses[b0 >> 5], 0.001 * m, 0.002 * m, &usage};
        int burst = (b3 & 0x80) && fresh < 1024;
        for (int k = 0; k != (burst ? 16 : 1); ++k) {
            if (burst)
                snprintf(model, sizeof(model), "fresh-%u", fresh++);
            else if (m <= 3)
                snprintf(model, sizeof(model), "%s", (const char *[]){"-", "a\"b", "c\\d\n", "\xe2\x82\xac\x01"}[m]);
            else
                snprintf(model, sizeof(model), "claude-%u", m);
            pgw_metrics_record(all[w], &r, now[w]);
            ++e.requests;
            if (strcmp(model, "-") != 0) {
                ++e.routed;
                e.tokens_input += usage.input_tokens;
                /* the documents are read on day 1: only what was recorded on day 1 is today's */
                if (now[w] != day0)
                    ++e.routed_today;
            }
        }
        if (++num_records % 64 == 0) {
            check_usage(all, n, day0 + 86400000, &e);
            check_metrics(all, n, &e);
        }
    }
    /* read on day 1, which every record precedes or falls on */
    check_usage(all, n, day0 + 86400000, &e);
    check_metrics(all, n, &e);
    for (size_t i = 0; i != n; ++i)
        pgw_metrics_destroy(all[i]);
    return 0;
}
