/* poe-gateway: MIT licence. Claude Code's sessions and subagents: ids from its headers, and per-session totals for
 * /usage (docs/request-path.md#sessions-and-subagents).
 *
 * How it works
 *
 * A session is a client's conversation (`x-claude-code-session-id`, stable for its life); its subagents send their own
 * `x-claude-code-agent-id`. Sessions are many and short-lived, so unlike the metrics' series (src/serve/metrics.c),
 * which never go away, this table forgets: it holds at most `max` rows, one per (key name, session id), and a new
 * session in a full table takes the row of the one seen least recently. Rows are updated when a request ends, on any
 * worker, and read by /usage, so one mutex guards the table; the work under it is a scan of `max` hashes (a few
 * microseconds at the default 1,024), once per request, next to a request that lasted seconds.
 *
 * Sessions are never a metrics label: their number is unbounded, which Prometheus series must not be.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <h2o/string_.h>
#include "common/json.h"
#include "serve/sessions.h"

struct row {
    char *key, *session; /* owned; NULL when the row is free */
    uint64_t hash;       /* of key and session */
    uint64_t first_ms, last_ms;
    unsigned long long requests, subagent_requests;
    uint64_t agents[PGW_SESSION_AGENTS_MAX]; /* hashes of the distinct agent ids seen */
    size_t num_agents;
    pgw_usage_t usage;
};

struct st_pgw_sessions_t {
    pthread_mutex_t mutex;
    struct row *rows;
    size_t max, used;
    unsigned long long evicted;
};

static int is_id_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
           c == '@' || c == '%' || c == '+' || c == '=' || c == '-';
}

const char *pgw_session_id(h2o_mem_pool_t *pool, h2o_iovec_t value)
{
    if (value.base == NULL || value.len == 0)
        return NULL;
    size_t len = value.len < PGW_SESSION_ID_MAX ? value.len : PGW_SESSION_ID_MAX;
    char *id = h2o_mem_alloc_pool(pool, len + 1);
    for (size_t i = 0; i != len; ++i)
        id[i] = is_id_byte((unsigned char)value.base[i]) ? value.base[i] : '_';
    id[len] = '\0';
    return id;
}

static uint64_t hash_str(uint64_t h, const char *s)
{
    for (; *s != '\0'; ++s)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (h ^ 0xff) * 1099511628211ULL;
}

pgw_sessions_t *pgw_sessions_create(size_t max)
{
    pgw_sessions_t *s = h2o_mem_alloc(sizeof(*s));
    pthread_mutex_init(&s->mutex, NULL);
    s->max = max != 0 ? max : 1;
    s->rows = h2o_mem_alloc(s->max * sizeof(*s->rows));
    memset(s->rows, 0, s->max * sizeof(*s->rows));
    s->used = 0;
    s->evicted = 0;
    return s;
}

static void free_row(struct row *row)
{
    free(row->key);
    free(row->session);
    memset(row, 0, sizeof(*row));
}

void pgw_sessions_destroy(pgw_sessions_t *s)
{
    for (size_t i = 0; i != s->used; ++i)
        free_row(s->rows + i);
    free(s->rows);
    pthread_mutex_destroy(&s->mutex);
    free(s);
}

static pgw_sessions_t *global;
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void make_global(void)
{
    global = pgw_sessions_create(PGW_SESSIONS_MAX);
}

pgw_sessions_t *pgw_sessions(void)
{
    pthread_once(&global_once, make_global);
    return global;
}

/* The row for (key, session): found, else a free one, else the least recently seen one, emptied. Under the mutex. */
static struct row *find_or_take(pgw_sessions_t *s, const char *key, const char *session, uint64_t hash)
{
    for (size_t i = 0; i != s->used; ++i) {
        struct row *row = s->rows + i;
        if (row->hash == hash && strcmp(row->session, session) == 0 && strcmp(row->key, key) == 0)
            return row;
    }
    struct row *row;
    if (s->used != s->max) {
        row = s->rows + s->used++;
    } else {
        row = s->rows;
        for (size_t i = 1; i != s->used; ++i)
            if (s->rows[i].last_ms < row->last_ms)
                row = s->rows + i;
        free_row(row);
        ++s->evicted;
    }
    row->key = h2o_strdup(NULL, key, strlen(key)).base;
    row->session = h2o_strdup(NULL, session, strlen(session)).base;
    row->hash = hash;
    return row;
}

void pgw_sessions_record(pgw_sessions_t *s, const char *key, const char *session, const char *agent, const pgw_usage_t *usage,
                         uint64_t now_ms)
{
    uint64_t hash = hash_str(hash_str(14695981039346656037ULL, key), session);

    pthread_mutex_lock(&s->mutex);
    struct row *row = find_or_take(s, key, session, hash);
    if (row->requests++ == 0)
        row->first_ms = now_ms;
    row->last_ms = now_ms;
    if (agent != NULL) {
        ++row->subagent_requests;
        uint64_t ah = hash_str(14695981039346656037ULL, agent);
        size_t i = 0;
        while (i != row->num_agents && row->agents[i] != ah)
            ++i;
        if (i == row->num_agents && row->num_agents != PGW_SESSION_AGENTS_MAX)
            row->agents[row->num_agents++] = ah;
    }
    if (usage != NULL) {
        row->usage.input_tokens += usage->input_tokens;
        row->usage.output_tokens += usage->output_tokens;
        row->usage.cache_read_input_tokens += usage->cache_read_input_tokens;
        row->usage.cache_creation_input_tokens += usage->cache_creation_input_tokens;
    }
    pthread_mutex_unlock(&s->mutex);
}

static int by_key_then_session(const void *a, const void *b)
{
    const struct row *x = *(const struct row *const *)a, *y = *(const struct row *const *)b;
    int c = strcmp(x->key, y->key);
    return c != 0 ? c : strcmp(x->session, y->session);
}

static void append_time(h2o_buffer_t **out, const char *name, uint64_t ms)
{
    char tmp[64];
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    pgw_buf_append_str(out, name);
    pgw_json_append_string(out, tmp, strlen(tmp));
}

static void append_count(h2o_buffer_t **out, const char *name, long long v)
{
    pgw_buf_append_str(out, name);
    pgw_json_append_int(out, v);
}

void pgw_sessions_render(pgw_sessions_t *s, h2o_buffer_t **out)
{
    pthread_mutex_lock(&s->mutex);
    struct row **sorted = h2o_mem_alloc((s->used + 1) * sizeof(*sorted));
    for (size_t i = 0; i != s->used; ++i)
        sorted[i] = s->rows + i;
    qsort(sorted, s->used, sizeof(*sorted), by_key_then_session);

    append_count(out, "{\"max\":", (long long)s->max);
    append_count(out, ",\"evicted\":", (long long)s->evicted);
    pgw_buf_append_lit(out, ",\"keys\":{");
    for (size_t i = 0; i != s->used; ++i) {
        const struct row *row = sorted[i];
        if (i == 0 || strcmp(sorted[i - 1]->key, row->key) != 0) {
            if (i != 0)
                pgw_buf_append_lit(out, "},");
            pgw_json_append_string(out, row->key, strlen(row->key));
            pgw_buf_append_lit(out, ":{");
        } else {
            pgw_buf_append_lit(out, ",");
        }
        pgw_json_append_string(out, row->session, strlen(row->session));
        append_time(out, ":{\"first_seen\":", row->first_ms);
        append_time(out, ",\"last_seen\":", row->last_ms);
        append_count(out, ",\"requests\":", (long long)row->requests);
        append_count(out, ",\"subagent_requests\":", (long long)row->subagent_requests);
        append_count(out, ",\"agents\":", (long long)row->num_agents);
        append_count(out, ",\"input_tokens\":", row->usage.input_tokens);
        append_count(out, ",\"output_tokens\":", row->usage.output_tokens);
        append_count(out, ",\"cache_read_input_tokens\":", row->usage.cache_read_input_tokens);
        append_count(out, ",\"cache_creation_input_tokens\":", row->usage.cache_creation_input_tokens);
        pgw_buf_append_lit(out, "}");
    }
    if (s->used != 0)
        pgw_buf_append_lit(out, "}");
    pgw_buf_append_lit(out, "}}");
    pthread_mutex_unlock(&s->mutex);
    free(sorted);
}
