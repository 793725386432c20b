/* poe-gateway: MIT licence. Reconciliation with Poe (src/ledger/reconcile.h).
 *
 * How it works. One poller per upstream key (and host), on worker 0's loop: a timer, then GET /usage/current_balance,
 * then GET /usage/points_history pages (100 entries each, newest first, `starting_after` the last query_id) until the
 * entries reach back past the start of yesterday (UTC), has_more is false, or MAX_PAGES were read. Both endpoints are
 * free. The entries are summed per UTC day; yesterday's and today's sums (the days the pages covered whole) and the
 * balance are written to the ledger on the thread pool (no disk on the loop), where `usage --by day` and the page read
 * them beside the gateway's own cost. The balance is also kept in memory for /metrics (poe_gateway_poe_balance_points).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_tree.h>
#include <h2o/memory.h>
#include <h2o/socket.h>
#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"
#include "ledger/reconcile.h"
#include "ledger/store.h"

#define MODULE_NAME "reconcile"
#define MAX_BODY (4 * 1024 * 1024)
#define MAX_PAGES 50
#define NUM_DAYS 2 /* yesterday and today */
#define MAX_POLLERS 32

struct poller {
    pgw_upstream_t *up;
    uv_timer_t timer;
    char *origin; /* scheme://host[:port] of the route's api_base (owned) */
    char *key;    /* the upstream key (owned; lives as long as the process) */
    char fingerprint[16];
    int ssl_verify, h2c;
    uint64_t interval_ms;
    h2o_buffer_t *body;
    int in_history; /* the current transfer is a history page */
    int pages;
    char cursor[128];
    int64_t since_ms, first_day;
    long long balance; /* -1 until known */
    long long points[NUM_DAYS], entries[NUM_DAYS];
    double usd[NUM_DAYS];
};

static pthread_mutex_t balances_mutex = PTHREAD_MUTEX_INITIALIZER;
static pgw_reconcile_balance_t balances[MAX_POLLERS];
static size_t num_balances;

static void set_balance(const char *fingerprint, long long points, int64_t at_ms)
{
    pthread_mutex_lock(&balances_mutex);
    size_t i;
    for (i = 0; i != num_balances; ++i)
        if (strcmp(balances[i].upstream, fingerprint) == 0)
            break;
    if (i == num_balances && num_balances != MAX_POLLERS)
        ++num_balances;
    if (i != MAX_POLLERS) {
        snprintf(balances[i].upstream, sizeof(balances[i].upstream), "%s", fingerprint);
        balances[i].points = points;
        balances[i].at_ms = at_ms;
    }
    pthread_mutex_unlock(&balances_mutex);
}

size_t pgw_reconcile_balances(pgw_reconcile_balance_t *out, size_t max)
{
    pthread_mutex_lock(&balances_mutex);
    size_t n = num_balances < max ? num_balances : max;
    memcpy(out, balances, n * sizeof(out[0]));
    pthread_mutex_unlock(&balances_mutex);
    return n;
}

int pgw_reconcile_history_page(const char *json, size_t len, int64_t since_ms, int64_t first_day, size_t num_days,
                               long long *points, double *usd, long long *entries, char *cursor, size_t cursorsz)
{
    char *text = h2o_mem_alloc(len + 1), yerr[128];
    memcpy(text, json, len);
    text[len] = '\0';
    yajl_val root = yajl_tree_parse(text, yerr, sizeof(yerr));
    free(text);
    const char *data_path[] = {"data", NULL}, *more_path[] = {"has_more", NULL};
    yajl_val data = root != NULL ? yajl_tree_get(root, data_path, yajl_t_array) : NULL;
    if (data == NULL) {
        yajl_tree_free(root);
        return -1;
    }
    int older_wanted = 1;
    cursor[0] = '\0';
    for (size_t i = 0; i != data->u.array.len; ++i) {
        yajl_val e = data->u.array.values[i];
        const char *t_path[] = {"creation_time", NULL}, *p_path[] = {"cost_points", NULL}, *u_path[] = {"cost_usd", NULL},
                   *q_path[] = {"query_id", NULL};
        yajl_val t = yajl_tree_get(e, t_path, yajl_t_number), p = yajl_tree_get(e, p_path, yajl_t_number),
                 u = yajl_tree_get(e, u_path, yajl_t_any), q = yajl_tree_get(e, q_path, yajl_t_string);
        if (q != NULL)
            snprintf(cursor, cursorsz, "%s", q->u.string);
        if (t == NULL)
            continue;
        int64_t at_ms = (int64_t)(YAJL_GET_DOUBLE(t) / 1000); /* microseconds */
        if (at_ms < since_ms) {
            older_wanted = 0;
            continue;
        }
        int64_t d = pgw_ledger_day(at_ms) - first_day;
        if (d < 0 || (size_t)d >= num_days)
            continue;
        if (p != NULL)
            points[d] += (long long)YAJL_GET_DOUBLE(p);
        if (u != NULL)
            usd[d] += YAJL_IS_STRING(u) ? strtod(u->u.string, NULL) : YAJL_IS_NUMBER(u) ? YAJL_GET_DOUBLE(u) : 0;
        ++entries[d];
    }
    yajl_val more = yajl_tree_get(root, more_path, yajl_t_any);
    int has_more = more != NULL && YAJL_IS_TRUE(more);
    yajl_tree_free(root);
    return has_more && older_wanted && cursor[0] != '\0' ? 1 : 0;
}

/* ---- writing the results: on the thread pool ---- */

struct save {
    uv_work_t work;
    char fingerprint[16];
    long long balance;
    int64_t at_ms, first_day;
    long long points[NUM_DAYS], entries[NUM_DAYS];
    double usd[NUM_DAYS];
    int have_days;
};

static void on_save(uv_work_t *w)
{
    struct save *s = w->data;
    pgw_store_t *store = pgw_store_get();
    if (store == NULL)
        return;
    if (s->balance >= 0)
        store->ops->note_balance(store, s->fingerprint, s->balance, s->at_ms);
    for (int d = 0; s->have_days && d != NUM_DAYS; ++d) {
        char day[16];
        time_t t = (time_t)((s->first_day + d) * 86400);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(day, sizeof(day), "%Y-%m-%d", &tm);
        store->ops->note_poe_day(store, s->fingerprint, day, s->points[d], s->usd[d], s->entries[d]);
    }
}

static void on_saved(uv_work_t *w, int status)
{
    free(w->data);
}

static void save(struct poller *p, int have_days)
{
    struct save *s = h2o_mem_alloc(sizeof(*s));
    memset(s, 0, sizeof(*s));
    s->work.data = s;
    memcpy(s->fingerprint, p->fingerprint, sizeof(s->fingerprint));
    s->balance = p->balance;
    s->at_ms = (int64_t)pgw_now_ms();
    s->first_day = p->first_day;
    s->have_days = have_days;
    memcpy(s->points, p->points, sizeof(s->points));
    memcpy(s->entries, p->entries, sizeof(s->entries));
    memcpy(s->usd, p->usd, sizeof(s->usd));
    uv_queue_work(p->timer.loop, &s->work, on_save, on_saved);
}

/* ---- polling ---- */

static void fetch(struct poller *p, const char *path);

static void on_timer(uv_timer_t *t)
{
    struct poller *p = t->data;
    int64_t now = (int64_t)pgw_now_ms();
    p->first_day = pgw_ledger_day(now) - (NUM_DAYS - 1);
    p->since_ms = p->first_day * 86400000;
    p->pages = 0;
    memset(p->points, 0, sizeof(p->points));
    memset(p->entries, 0, sizeof(p->entries));
    memset(p->usd, 0, sizeof(p->usd));
    p->in_history = 0;
    fetch(p, "/usage/current_balance");
}

static void on_head(pgw_upstream_transfer_t *t, int status)
{
    struct poller *p = pgw_upstream_data(t);
    if (status != 200) {
        /* the key's text is never logged; the fingerprint says which key */
        pgw_log_warn(MODULE_NAME, "%s%s answered %d for upstream key %s", p->origin,
                     p->in_history ? "/usage/points_history" : "/usage/current_balance", status, p->fingerprint);
        pgw_upstream_cancel(t);
        uv_timer_start(&p->timer, on_timer, p->interval_ms, 0);
    }
}

static int on_body(pgw_upstream_transfer_t *t, const char *bytes, size_t len)
{
    struct poller *p = pgw_upstream_data(t);
    if (p->body->size + len <= MAX_BODY)
        pgw_buf_append(&p->body, bytes, len);
    return 0;
}

static void on_complete(pgw_upstream_transfer_t *t, pgw_upstream_error_t err, const char *errstr)
{
    struct poller *p = pgw_upstream_data(t);
    if (err != PGW_UPSTREAM_OK) {
        pgw_log_warn(MODULE_NAME, "cannot reach %s: %s", p->origin, errstr);
        uv_timer_start(&p->timer, on_timer, p->interval_ms, 0);
        return;
    }
    if (!p->in_history) {
        char *text = h2o_mem_alloc(p->body->size + 1);
        memcpy(text, p->body->bytes, p->body->size);
        text[p->body->size] = '\0';
        yajl_val root = yajl_tree_parse(text, NULL, 0);
        free(text);
        const char *path[] = {"current_point_balance", NULL};
        yajl_val v = root != NULL ? yajl_tree_get(root, path, yajl_t_number) : NULL;
        if (v != NULL) {
            p->balance = (long long)YAJL_GET_DOUBLE(v);
            set_balance(p->fingerprint, p->balance, (int64_t)pgw_now_ms());
        } else {
            pgw_log_warn(MODULE_NAME, "%s/usage/current_balance: no current_point_balance", p->origin);
        }
        yajl_tree_free(root);
        p->in_history = 1;
        fetch(p, "/usage/points_history?limit=100");
        return;
    }
    int more = pgw_reconcile_history_page(p->body->bytes, p->body->size, p->since_ms, p->first_day, NUM_DAYS, p->points, p->usd,
                                          p->entries, p->cursor, sizeof(p->cursor));
    if (more < 0) {
        pgw_log_warn(MODULE_NAME, "%s/usage/points_history: not the shape Poe documents", p->origin);
        save(p, 0);
    } else if (more == 1 && ++p->pages < MAX_PAGES) {
        char path[256];
        snprintf(path, sizeof(path), "/usage/points_history?limit=100&starting_after=%s", p->cursor);
        fetch(p, path);
        return;
    } else {
        save(p, 1);
    }
    uv_timer_start(&p->timer, on_timer, p->interval_ms, 0);
}

static const pgw_upstream_callbacks_t callbacks = {on_head, on_body, on_complete};

static void fetch(struct poller *p, const char *path)
{
    char url[2048], auth[2048];
    snprintf(url, sizeof(url), "%s%s", p->origin, path);
    snprintf(auth, sizeof(auth), "Bearer %s", p->key);
    struct curl_slist *headers = pgw_upstream_add_header(NULL, "Authorization", h2o_iovec_init(auth, strlen(auth)));
    explicit_bzero(auth, sizeof(auth));
    pgw_upstream_request_t req = {url, "GET", h2o_iovec_init(NULL, 0), headers, 30, 30, 1, p->ssl_verify, p->h2c};
    p->body->size = 0;
    pgw_upstream_start(p->up, &req, &callbacks, p);
}

/* scheme://host[:port] of `url` into a new string, or NULL */
static char *origin_of(const char *url)
{
    const char *scheme = strstr(url, "://");
    if (scheme == NULL)
        return NULL;
    const char *end = strchr(scheme + 3, '/');
    size_t len = end != NULL ? (size_t)(end - url) : strlen(url);
    char *o = h2o_mem_alloc(len + 1);
    memcpy(o, url, len);
    o[len] = '\0';
    return o;
}

void pgw_reconcile_start(uv_loop_t *loop, pgw_upstream_t *up, const pgw_config_t *conf)
{
    static struct poller *pollers[MAX_POLLERS];
    size_t num = 0;
    if (conf->reconcile_interval <= 0 || pgw_store_get() == NULL)
        return;
    for (size_t i = 0; i != conf->num_routes && num != MAX_POLLERS; ++i) {
        const pgw_route_t *route = conf->routes + i;
        char fp[16], *origin;
        if (route->api_key == NULL || route->api_base == NULL || (origin = origin_of(route->api_base)) == NULL)
            continue;
        memcpy(fp, route->api_key_fp, sizeof(fp));
        size_t j;
        for (j = 0; j != num; ++j)
            if (strcmp(pollers[j]->fingerprint, fp) == 0 && strcmp(pollers[j]->origin, origin) == 0)
                break;
        if (j != num) {
            free(origin);
            continue;
        }
        struct poller *p = h2o_mem_alloc(sizeof(*p));
        memset(p, 0, sizeof(*p));
        p->up = up;
        p->origin = origin;
        p->key = h2o_strdup(NULL, route->api_key, SIZE_MAX).base;
        memcpy(p->fingerprint, fp, sizeof(fp));
        p->ssl_verify = route->ssl_verify;
        p->h2c = route->h2c;
        p->interval_ms = (uint64_t)(conf->reconcile_interval * 1000);
        p->balance = -1;
        h2o_buffer_init(&p->body, &h2o_socket_buffer_prototype);
        uv_timer_init(loop, &p->timer);
        p->timer.data = p;
        uv_timer_start(&p->timer, on_timer, p->interval_ms, 0);
        pollers[num++] = p;
    }
    if (num != 0)
        pgw_log_info(MODULE_NAME, "polling Poe's usage endpoints for %zu upstream key(s) every %.0f s", num,
                     conf->reconcile_interval);
}
