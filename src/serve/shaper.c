/* poe-gateway: MIT licence. Fair sharing of one Poe key's rate limit: requests beyond the rate wait in per-developer
 * lanes served round-robin, and Poe's own limit signals slow the rate down.
 *
 * The bucket is process-wide (one per upstream key: a src/common/ratelimit.c token bucket, which Poe's signals block for a
 * while); the lanes are per worker, so queueing needs no lock. A worker serves its lanes from a timer armed for the next
 * token: each turn takes the head of the next non-empty lane after the one served last. Waiters past their deadline are
 * answered 429.
 */
#include <stdatomic.h>
#include <time.h>
#include <string.h>
#include "common/clock.h"
#include "common/log.h"
#include "serve/request.h"
#include "serve/shaper.h"
#include "upstream/upstream.h"

#define MODULE_NAME "shaper"
#define MAX_TICK_MS 1000

void pgw_shaper_bucket_init(pgw_shaper_bucket_t *b, int rpm, int burst, uint64_t now_ms)
{
    pgw_ratelimit_init_burst(&b->rate, rpm, burst, now_ms);
}

void pgw_shaper_bucket_dispose(pgw_shaper_bucket_t *b)
{
    pgw_ratelimit_dispose(&b->rate);
}

struct lane {
    h2o_linklist_t link;    /* in the shaper's lanes */
    h2o_linklist_t waiters; /* struct waiter, oldest first */
    char *name;
};

struct waiter {
    h2o_linklist_t link;
    pgw_shaper_t *shaper; /* whose lanes it waits in */
    struct st_pgw_request_t *r;
    pgw_shaper_bucket_t *bucket;
    pgw_shaper_cb cb;
    uint64_t deadline_ms;
};

struct st_pgw_shaper_t {
    uv_loop_t *loop;
    uv_timer_t timer;
    h2o_linklist_t lanes; /* struct lane; lanes stay once made (one per key name seen) */
    struct lane *last;    /* the lane served last */
    atomic_ullong queued;
};

static void serve(pgw_shaper_t *s);

static void on_timer(uv_timer_t *timer)
{
    serve(timer->data);
}

pgw_shaper_t *pgw_shaper_create(uv_loop_t *loop)
{
    pgw_shaper_t *s = h2o_mem_alloc(sizeof(*s));
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    h2o_linklist_init_anchor(&s->lanes);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    return s;
}

uint64_t pgw_shaper_queued(pgw_shaper_t *s)
{
    return atomic_load_explicit(&s->queued, memory_order_relaxed);
}

static struct lane *lane_for(pgw_shaper_t *s, const char *name)
{
    for (h2o_linklist_t *n = s->lanes.next; n != &s->lanes; n = n->next) {
        struct lane *l = H2O_STRUCT_FROM_MEMBER(struct lane, link, n);
        if (strcmp(l->name, name) == 0)
            return l;
    }
    struct lane *l = h2o_mem_alloc(sizeof(*l));
    memset(l, 0, sizeof(*l));
    l->name = h2o_strdup(NULL, name, SIZE_MAX).base;
    h2o_linklist_init_anchor(&l->waiters);
    h2o_linklist_insert(&s->lanes, &l->link);
    return l;
}

static void on_waiter_dispose(void *p)
{
    struct waiter *w = p;
    if (h2o_linklist_is_linked(&w->link)) {
        h2o_linklist_unlink(&w->link);
        atomic_fetch_sub_explicit(&w->shaper->queued, 1, memory_order_relaxed);
    }
}

/* Takes the waiter out of its lane and calls it back (which may end the request). */
static void release(pgw_shaper_t *s, struct waiter *w, int admitted)
{
    h2o_linklist_unlink(&w->link);
    atomic_fetch_sub_explicit(&s->queued, 1, memory_order_relaxed);
    w->cb(w->r, admitted);
}

/* The next lane with a waiter, after the one served last, in circular order; NULL when every lane is empty. */
static struct lane *next_lane(pgw_shaper_t *s)
{
    h2o_linklist_t *begin = s->last != NULL ? &s->last->link : &s->lanes, *n = begin;
    do {
        n = n->next;
        if (n == &s->lanes)
            continue;
        struct lane *l = H2O_STRUCT_FROM_MEMBER(struct lane, link, n);
        if (!h2o_linklist_is_empty(&l->waiters))
            return l;
    } while (n != begin);
    return NULL;
}

static void serve(pgw_shaper_t *s)
{
    uint64_t now = pgw_now_ms(), next = MAX_TICK_MS;

    /* deadlines first */
    for (h2o_linklist_t *n = s->lanes.next; n != &s->lanes; n = n->next) {
        struct lane *l = H2O_STRUCT_FROM_MEMBER(struct lane, link, n);
        while (!h2o_linklist_is_empty(&l->waiters)) {
            struct waiter *w = H2O_STRUCT_FROM_MEMBER(struct waiter, link, l->waiters.next);
            if (w->deadline_ms > now)
                break;
            release(s, w, 0);
        }
    }
    /* then round-robin, one request per lane per turn, while tokens last */
    struct lane *pick;
    while ((pick = next_lane(s)) != NULL) {
        struct waiter *w = H2O_STRUCT_FROM_MEMBER(struct waiter, link, pick->waiters.next);
        uint64_t wait = pgw_ratelimit_take(&w->bucket->rate, now);
        if (wait != 0) {
            if (wait < next)
                next = wait;
            break;
        }
        s->last = pick;
        release(s, w, 1);
    }
    if (pick == NULL) {
        uv_timer_stop(&s->timer);
        return;
    }
    uv_timer_start(&s->timer, on_timer, next, 0);
}

void pgw_shaper_admit(pgw_shaper_t *s, pgw_shaper_bucket_t *b, struct st_pgw_request_t *r, double queue_timeout_s,
                      pgw_shaper_cb cb)
{
    if (pgw_shaper_queued(s) == 0 && pgw_ratelimit_take(&b->rate, pgw_now_ms()) == 0) {
        cb(r, 1);
        return;
    }
    struct waiter *w = h2o_mem_alloc_shared(&r->req->pool, sizeof(*w), on_waiter_dispose);
    memset(w, 0, sizeof(*w));
    w->shaper = s;
    w->r = r;
    w->bucket = b;
    w->cb = cb;
    w->deadline_ms = pgw_now_ms() + (uint64_t)(queue_timeout_s * 1000);
    h2o_linklist_insert(&lane_for(s, r->key_name != NULL ? r->key_name : "-")->waiters, &w->link);
    atomic_fetch_add_explicit(&s->queued, 1, memory_order_relaxed);
    if (!uv_is_active((uv_handle_t *)&s->timer))
        uv_timer_start(&s->timer, on_timer, 1, 0);
}

void pgw_shaper_observe(pgw_shaper_bucket_t *b, int status, struct st_pgw_upstream_transfer_t *t)
{
    uint64_t now = pgw_now_ms();
    if (b == NULL)
        return;
    if (status == 429) {
        long ms = pgw_upstream_parse_retry_after(pgw_upstream_header(t, H2O_STRLIT("retry-after")), time(NULL));
        pgw_ratelimit_block(&b->rate, now + (ms > 0 ? (uint64_t)ms : 1000));
        return;
    }
    h2o_iovec_t remaining = pgw_upstream_header(t, H2O_STRLIT("x-ratelimit-remaining-requests"));
    if (remaining.base == NULL)
        remaining = pgw_upstream_header(t, H2O_STRLIT("anthropic-ratelimit-requests-remaining"));
    if (remaining.base != NULL && h2o_memis(remaining.base, remaining.len, H2O_STRLIT("0"))) {
        long ms = pgw_upstream_parse_retry_after(pgw_upstream_header(t, H2O_STRLIT("x-ratelimit-reset-requests")), time(NULL));
        pgw_ratelimit_block(&b->rate, now + (ms > 0 ? (uint64_t)ms : 1000));
    }
}
