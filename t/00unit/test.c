/* poe-gateway: MIT licence. The unit test binary: one translation unit that includes each file under test, printing TAP. */
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/log.h"
#include "test.h"

#define MAX_DEPTH 8

static struct {
    int num_tests;
    int failed;
} levels[MAX_DEPTH];
static int depth;

static void indent(void)
{
    for (int i = 0; i < depth; ++i)
        fputs("    ", stdout);
}

void note(const char *fmt, ...)
{
    va_list args;
    indent();
    fputs("# ", stdout);
    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);
    fputc('\n', stdout);
    fflush(stdout);
}

void ok_at(int cond, const char *expr, const char *file, int line)
{
    indent();
    printf("%s %d - %s:%d\n", cond ? "ok" : "not ok", ++levels[depth].num_tests, file, line);
    fflush(stdout);
    if (!cond) {
        levels[depth].failed = 1;
        note("failed: %s", expr);
    }
}

void is_str_at(const char *got, const char *expected, const char *expr, const char *file, int line)
{
    int same = got == expected || (got != NULL && expected != NULL && strcmp(got, expected) == 0);
    ok_at(same, expr, file, line);
    if (!same) {
        note("     got: %s%s%s", got != NULL ? "'" : "", got != NULL ? got : "NULL", got != NULL ? "'" : "");
        note("expected: %s%s%s", expected != NULL ? "'" : "", expected != NULL ? expected : "NULL", expected != NULL ? "'" : "");
    }
}

void is_int_at(long long got, long long expected, const char *expr, const char *file, int line)
{
    ok_at(got == expected, expr, file, line);
    if (got != expected) {
        note("     got: %lld", got);
        note("expected: %lld", expected);
    }
}

void subtest(const char *name, void (*cb)(void))
{
    if (depth + 1 == MAX_DEPTH) {
        fprintf(stderr, "subtests nested too deeply\n");
        abort();
    }
    ++depth;
    levels[depth].num_tests = 0;
    levels[depth].failed = 0;
    note("Subtest: %s", name);
    cb();
    int failed = done_testing();
    --depth;
    indent();
    printf("%s %d - %s\n", failed ? "not ok" : "ok", ++levels[depth].num_tests, name);
    fflush(stdout);
    if (failed)
        levels[depth].failed = 1;
}

int done_testing(void)
{
    indent();
    printf("1..%d\n", levels[depth].num_tests);
    fflush(stdout);
    /* an empty plan is a mistake (a subtest that asserted nothing) */
    return levels[depth].failed || levels[depth].num_tests == 0;
}

void make_temp_file(char *path, size_t pathsz, const char *content)
{
    int fd;
    size_t len = strlen(content);

    snprintf(path, pathsz, "/tmp/pgw-unit-XXXXXX");
    if ((fd = mkstemp(path)) == -1 || write(fd, content, len) != (ssize_t)len) {
        perror("make_temp_file");
        abort();
    }
    close(fd);
}

static int saved_stderr = -1;
static char capture_path[64];
static pgw_log_level_t saved_log_level;

void stderr_capture_begin(void)
{
    int fd;
    make_temp_file(capture_path, sizeof(capture_path), "");
    fflush(stderr);
    if ((saved_stderr = dup(2)) == -1 || (fd = open(capture_path, O_WRONLY | O_TRUNC)) == -1 || dup2(fd, 2) == -1) {
        perror("stderr_capture_begin");
        abort();
    }
    close(fd);
    /* warnings are what the captures look at, whatever the default level */
    saved_log_level = pgw_log_level;
    pgw_log_level = PGW_LOG_DEBUG;
}

const char *stderr_capture_end(char *buf, size_t bufsz)
{
    FILE *fp;
    size_t len = 0;

    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    pgw_log_level = saved_log_level;
    if ((fp = fopen(capture_path, "rb")) != NULL) {
        len = fread(buf, 1, bufsz - 1, fp);
        fclose(fp);
    }
    buf[len] = '\0';
    unlink(capture_path);
    return buf;
}

/* one translation unit per file under test (each includes its .c to reach the statics), linked with pgw_core */
void test_src__config_c(void);
void test_src__route_match_c(void);
void test_src__dotenv_c(void);
void test_src__json_c(void);
void test_src__json_reader_c(void);
void test_src__auth_c(void);
void test_src__bodies_c(void);
void test_src__reqbody_c(void);
void test_src__sse_c(void);
void test_src__errors_c(void);
void test_src__usage_c(void);
void test_src__upstream_c(void);
void test_src__upstream_curl_c(void);
void test_src__h2conn_c(void);
void test_src__h2client_c(void);
void test_src__masterkey_c(void);
void test_src__seed_c(void);
void test_src__ratelimit_c(void);
void test_src__cooldown_c(void);
void test_src__catalog_c(void);
void test_src__metrics_c(void);
void test_src__tailnet_c(void);
void test_src__translate_stream_c(void);
void test_src__translate_response_c(void);
void test_src__translate_answer_c(void);
void test_src__upstream_errors_c(void);
void test_src__toolnames_c(void);
void test_src__translate_keys_c(void);
void test_src__translate_request_c(void);
void test_src__extra_body_c(void);
void test_src__translate_schema_c(void);
void test_src__translate_knobs_c(void);
void test_src__translate_messages_c(void);
void test_src__translate_tools_c(void);
void test_src__translate_search_c(void);
void test_src__estimate_c(void);
void test_src__framing_c(void);
void test_src__listener_c(void);
void test_src__cmd_options_c(void);
void test_src__relay_c(void);
void test_src__event_relay_c(void);
void test_src__passthrough_c(void);
void test_src__openai_passthrough_c(void);
void test_src__translate_route_c(void);
void test_src__shaper_c(void);
void test_src__sessions_c(void);
void test_src__conns_c(void);
void test_src__routing_c(void);
void test_src__cost_c(void);
void test_src__budget_c(void);
void test_src__sqlite_c(void);
void test_src__reconcile_c(void);

int main(void)
{
    /* warnings would only clutter the TAP stream; tests that expect one capture it */
    pgw_log_level = PGW_LOG_ERROR;

    subtest("src/config/config.c", test_src__config_c);
    subtest("src/config/route_match.c", test_src__route_match_c);
    subtest("src/config/dotenv.c", test_src__dotenv_c);
    subtest("src/common/json.c", test_src__json_c);
    subtest("src/common/json_reader.c", test_src__json_reader_c);
    subtest("src/serve/auth.c", test_src__auth_c);
    subtest("src/serve/bodies.c", test_src__bodies_c);
    subtest("src/serve/reqbody.c", test_src__reqbody_c);
    subtest("src/relay/sse.c", test_src__sse_c);
    subtest("src/common/errors.c", test_src__errors_c);
    subtest("src/common/usage.c", test_src__usage_c);
    subtest("src/upstream/upstream.c", test_src__upstream_c);
    subtest("src/upstream/upstream_curl.c", test_src__upstream_curl_c);
    subtest("src/upstream/h2conn.c", test_src__h2conn_c);
    subtest("src/upstream/h2client.c", test_src__h2client_c);
    subtest("src/config/masterkey.c", test_src__masterkey_c);
    subtest("src/config/seed.c", test_src__seed_c);
    subtest("src/common/ratelimit.c", test_src__ratelimit_c);
    subtest("src/common/cooldown.c", test_src__cooldown_c);
    subtest("src/upstream/catalog.c", test_src__catalog_c);
    subtest("src/serve/metrics.c", test_src__metrics_c);
    subtest("src/serve/tailnet.c", test_src__tailnet_c);
    subtest("src/translate/translate_stream.c", test_src__translate_stream_c);
    subtest("src/translate/translate_response.c", test_src__translate_response_c);
    subtest("src/translate/translate_answer.c", test_src__translate_answer_c);
    subtest("src/upstream/upstream_errors.c", test_src__upstream_errors_c);
    subtest("src/translate/toolnames.c", test_src__toolnames_c);
    subtest("src/translate/translate_keys.c", test_src__translate_keys_c);
    subtest("src/translate/translate_request.c", test_src__translate_request_c);
    subtest("src/config/extra_body.c", test_src__extra_body_c);
    subtest("src/translate/translate_schema.c", test_src__translate_schema_c);
    subtest("src/translate/translate_knobs.c", test_src__translate_knobs_c);
    subtest("src/translate/translate_messages.c", test_src__translate_messages_c);
    subtest("src/translate/translate_tools.c", test_src__translate_tools_c);
    subtest("src/translate/translate_search.c", test_src__translate_search_c);
    subtest("src/translate/estimate.c", test_src__estimate_c);
    subtest("src/serve/framing.c", test_src__framing_c);
    subtest("src/serve/listener.c", test_src__listener_c);
    subtest("src/cli/cmd_options.c", test_src__cmd_options_c);
    subtest("src/relay/relay.c", test_src__relay_c);
    subtest("src/relay/event_relay.c", test_src__event_relay_c);
    subtest("src/relay/passthrough.c", test_src__passthrough_c);
    subtest("src/relay/openai_passthrough.c", test_src__openai_passthrough_c);
    subtest("src/relay/translate_route.c", test_src__translate_route_c);
    subtest("src/serve/shaper.c", test_src__shaper_c);
    subtest("src/serve/sessions.c", test_src__sessions_c);
    subtest("src/serve/conns.c", test_src__conns_c);
    subtest("src/serve/routing.c", test_src__routing_c);
    subtest("src/ledger/cost.c", test_src__cost_c);
    subtest("src/ledger/budget.c", test_src__budget_c);
    subtest("src/ledger/sqlite.c", test_src__sqlite_c);
    subtest("src/ledger/reconcile.c", test_src__reconcile_c);
    return done_testing();
}

char *read_whole_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc(n + 1);
    if (buf == NULL || fread(buf, 1, n, fp) != (size_t)n)
        n = 0;
    if (buf != NULL)
        buf[n] = '\0';
    fclose(fp);
    *len = n;
    return buf;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t list_fixtures(const char *dir, char **names, size_t max)
{
    DIR *d = opendir(dir);
    size_t num = 0;
    struct dirent *e;

    if (d == NULL)
        return 0;
    while (num < max && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            names[num++] = strdup(e->d_name);
    closedir(d);
    qsort(names, num, sizeof(names[0]), cmp_name);
    return num;
}
