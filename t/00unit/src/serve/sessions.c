/* poe-gateway: MIT licence. Unit tests for src/serve/sessions.c: ids made safe, per-session totals, eviction. */
#include <stdlib.h>
#include <h2o/socket.h>
#include "../../../../src/serve/sessions.c"
#include "../../test.h"

static const char *render(pgw_sessions_t *s, h2o_buffer_t **buf)
{
    h2o_buffer_init(buf, &h2o_socket_buffer_prototype);
    pgw_sessions_render(s, buf);
    pgw_buf_append_lit(buf, "\0");
    return (*buf)->bytes;
}

static void test_ids(void)
{
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    ok(pgw_session_id(&pool, h2o_iovec_init(NULL, 0)) == NULL);
    ok(pgw_session_id(&pool, h2o_iovec_init(H2O_STRLIT(""))) == NULL);
    is_str(pgw_session_id(&pool, h2o_iovec_init(H2O_STRLIT("8d81f84e-76e3-46b6-ad7e-639288eff130"))),
           "8d81f84e-76e3-46b6-ad7e-639288eff130");
    /* what could break a log line or a JSON string becomes '_' */
    is_str(pgw_session_id(&pool, h2o_iovec_init(H2O_STRLIT("a b\"c\\d\ne\x01\xc3\xa9%41"))), "a_b_c_d_e___%41");
    char longer[300];
    memset(longer, 'x', sizeof(longer));
    is_int(strlen(pgw_session_id(&pool, h2o_iovec_init(longer, sizeof(longer)))), PGW_SESSION_ID_MAX);
    h2o_mem_clear_pool(&pool);
}

static void test_totals(void)
{
    pgw_sessions_t *s = pgw_sessions_create(8);
    h2o_buffer_t *buf;
    pgw_usage_t u = {100, 20, 1000, 50};

    pgw_sessions_record(s, "bob", "s2", NULL, NULL, 1000);
    pgw_sessions_record(s, "alice", "s1", NULL, &u, 2000);
    pgw_sessions_record(s, "alice", "s1", "agent-a", &u, 3000);
    pgw_sessions_record(s, "alice", "s1", "agent-a", &u, 4000);
    pgw_sessions_record(s, "alice", "s1", "agent-b", NULL, 61000);
    /* the same session id under another key is another developer's row */
    pgw_sessions_record(s, "bob", "s1", NULL, &u, 5000);
    is_str(render(s, &buf),
           "{\"max\":8,\"evicted\":0,\"keys\":{"
           "\"alice\":{\"s1\":{\"first_seen\":\"1970-01-01T00:00:02Z\",\"last_seen\":\"1970-01-01T00:01:01Z\",\"requests\":4,"
           "\"subagent_requests\":3,\"agents\":2,\"input_tokens\":300,\"output_tokens\":60,\"cache_read_input_tokens\":3000,"
           "\"cache_creation_input_tokens\":150}},"
           "\"bob\":{\"s1\":{\"first_seen\":\"1970-01-01T00:00:05Z\",\"last_seen\":\"1970-01-01T00:00:05Z\",\"requests\":1,"
           "\"subagent_requests\":0,\"agents\":0,\"input_tokens\":100,\"output_tokens\":20,\"cache_read_input_tokens\":1000,"
           "\"cache_creation_input_tokens\":50},"
           "\"s2\":{\"first_seen\":\"1970-01-01T00:00:01Z\",\"last_seen\":\"1970-01-01T00:00:01Z\",\"requests\":1,"
           "\"subagent_requests\":0,\"agents\":0,\"input_tokens\":0,\"output_tokens\":0,\"cache_read_input_tokens\":0,"
           "\"cache_creation_input_tokens\":0}}}}");
    h2o_buffer_dispose(&buf);
    pgw_sessions_destroy(s);

    s = pgw_sessions_create(1);
    is_str(render(s, &buf), "{\"max\":1,\"evicted\":0,\"keys\":{}}");
    h2o_buffer_dispose(&buf);
    /* agents beyond the bound count as the bound */
    char agent[16];
    for (int i = 0; i != PGW_SESSION_AGENTS_MAX + 10; ++i) {
        snprintf(agent, sizeof(agent), "a%d", i);
        pgw_sessions_record(s, "k", "s", agent, NULL, 1000);
    }
    ok(strstr(render(s, &buf), "\"subagent_requests\":74,\"agents\":64,") != NULL);
    h2o_buffer_dispose(&buf);
    pgw_sessions_destroy(s);
}

static void test_eviction(void)
{
    pgw_sessions_t *s = pgw_sessions_create(3);
    h2o_buffer_t *buf;

    pgw_sessions_record(s, "k", "old", NULL, NULL, 1000);
    pgw_sessions_record(s, "k", "mid", NULL, NULL, 2000);
    pgw_sessions_record(s, "k", "new", NULL, NULL, 3000);
    /* "old" was seen again: "mid" is now the least recently seen, and goes */
    pgw_sessions_record(s, "k", "old", NULL, NULL, 4000);
    pgw_sessions_record(s, "k", "fourth", NULL, NULL, 5000);
    const char *json = render(s, &buf);
    ok(strstr(json, "\"evicted\":1,") != NULL);
    ok(strstr(json, "\"mid\"") == NULL);
    ok(strstr(json, "\"old\":{\"first_seen\":\"1970-01-01T00:00:01Z\",\"last_seen\":\"1970-01-01T00:00:04Z\",\"requests\":2") != NULL);
    ok(strstr(json, "\"new\"") != NULL && strstr(json, "\"fourth\"") != NULL);
    h2o_buffer_dispose(&buf);
    /* a session that comes back after its eviction starts again from zero */
    pgw_sessions_record(s, "k", "mid", NULL, NULL, 6000);
    json = render(s, &buf);
    ok(strstr(json, "\"evicted\":2,") != NULL);
    ok(strstr(json, "\"new\"") == NULL);
    ok(strstr(json, "\"mid\":{\"first_seen\":\"1970-01-01T00:00:06Z\",\"last_seen\":\"1970-01-01T00:00:06Z\",\"requests\":1") != NULL);
    h2o_buffer_dispose(&buf);
    pgw_sessions_destroy(s);

    ok(pgw_sessions() != NULL && pgw_sessions() == pgw_sessions());
}

void test_src__sessions_c(void)
{
    subtest("ids", test_ids);
    subtest("totals", test_totals);
    subtest("eviction", test_eviction);
}
