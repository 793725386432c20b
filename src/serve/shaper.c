/* poe-gateway: MIT licence. Fair sharing of one Poe key's rate limit: requests beyond the rate wait in per-developer
 * lanes served round-robin, and Poe's own limit signals slow the rate down.
 *
 * The bucket is process-wide (one per upstream key: a src/common/ratelimit.c token bucket, which Poe's signals block for a
 * while); the lanes are per worker, so queueing needs no lock. A worker serves its lanes from a timer armed for the next
 * token: each turn takes the head of the next non-empty lane after the one served last. Waiters past their deadline are
 * answered 429.
 *
 * With gateway.redis, the bucket that counts is the one in Redis, shared by every replica (src/serve/shared.c): each turn
 * is one question to Redis naming the lanes that wait for the same Poe key, in round-robin order from the next one, and
 * Redis answers which lane goes (the developer served longest ago across replicas) or how long to wait. One question is
 * in flight per worker; its answer runs the next turn. When Redis is not up, or gives no answer in time, the turn is
 * decided on the process-wide bucket as without Redis, but taking one token per replica alive (pgw_shared_replicas), so
 * that the replicas together stay near the rate (docs/threading.md#shared-state-across-replicas). Turns Redis grants are
 * charged to that bucket the same way, and the first local turn after them empties what it had saved up, so a worker
 * that loses Redis (while its neighbours may still use it) goes on from what its process has already sent, with no
 * burst of its own; with
 * gateway.redis_failure: closed such requests are refused instead.
 */
#include <stdatomic.h>
#include <time.h>
#include <string.h>
#include "common/clock.h"
#include "common/log.h"
#include "serve/request.h"
#include "serve/shaper.h"
#include "serve/shared.h"
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
    pgw_redis_t *redis; /* the worker's client, or NULL without gateway.redis (not owned) */
    int asking;         /* a question to Redis is in flight: its answer runs the next turn */
    struct lane *asked[PGW_SHARED_MAX_LANES]; /* the lanes it named, in order */
    size_t num_asked;
    pgw_shaper_bucket_t *asked_bucket; /* compared, never dereferenced: its waiters may all have gone meanwhile */
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

pgw_shaper_t *pgw_shaper_create(uv_loop_t *loop, pgw_redis_t *redis)
{
    pgw_shaper_t *s = h2o_mem_alloc(sizeof(*s));
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->redis = redis;
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

/* The local decision: the process-wide bucket, one token per replica alive while shared state is configured. */
static uint64_t take_local(pgw_shaper_t *s, pgw_shaper_bucket_t *b, uint64_t now)
{
    return s->redis != NULL ? pgw_ratelimit_take_share(&b->rate, now, atomic_load(&pgw_shared_replicas))
                            : pgw_ratelimit_take(&b->rate, now);
}

static void on_shared_answer(void *data, int answered, int index, uint64_t wait_ms);

/*
 * Asks Redis for the turn of one of the lanes waiting for `pick`'s Poe key, `pick` first. Returns 0 when the question is
 * on its way (its answer runs the next turn), -1 to decide locally.
 */
static int ask_shared(pgw_shaper_t *s, struct lane *pick, pgw_shaper_bucket_t *b, const pgw_config_t *conf)
{
    const char *names[PGW_SHARED_MAX_LANES];
    h2o_linklist_t *n = &pick->link;
    s->num_asked = 0;
    do {
        if (n != &s->lanes) {
            struct lane *l = H2O_STRUCT_FROM_MEMBER(struct lane, link, n);
            if (!h2o_linklist_is_empty(&l->waiters) &&
                H2O_STRUCT_FROM_MEMBER(struct waiter, link, l->waiters.next)->bucket == b) {
                s->asked[s->num_asked] = l;
                names[s->num_asked++] = l->name;
            }
        }
        n = n->next;
    } while (n != &pick->link && s->num_asked != PGW_SHARED_MAX_LANES);
    if (pgw_shared_shape(s->redis, b->key_digest, conf->upstream_rpm, conf->upstream_burst, names, s->num_asked,
                         on_shared_answer, s) != 0)
        return -1;
    s->asking = 1;
    s->asked_bucket = b;
    return 0;
}

/* One turn after another while tokens last; `ask` 0 decides this turn locally (Redis answered with an error). */
static void serve_turns(pgw_shaper_t *s, int ask)
{
    uint64_t now = pgw_now_ms(), next = MAX_TICK_MS;

    if (s->asking)
        return; /* the answer runs the next turn */
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
        if (s->redis != NULL && w->r->conf->upstream_rpm > 0) { /* an unlimited key needs nobody's agreement */
            if (ask && ask_shared(s, pick, w->bucket, w->r->conf) == 0)
                return;
            if (!pgw_redis_up(s->redis) && w->r->conf->redis_fail_closed) {
                s->last = pick;
                release(s, w, -1);
                continue;
            }
        }
        uint64_t wait = take_local(s, w->bucket, now);
        if (wait != 0) {
            if (wait < next)
                next = wait;
            break;
        }
        s->last = pick;
        release(s, w, 1);
        ask = 1;
    }
    if (pick == NULL) {
        uv_timer_stop(&s->timer);
        return;
    }
    uv_timer_start(&s->timer, on_timer, next, 0);
}

static void serve(pgw_shaper_t *s)
{
    serve_turns(s, 1);
}

static void on_shared_answer(void *data, int answered, int index, uint64_t wait_ms)
{
    pgw_shaper_t *s = data;
    s->asking = 0;
    if (!answered) { /* no answer (Redis is marked down, or it answered nonsense): this turn is decided locally */
        serve_turns(s, 0);
        return;
    }
    if (index >= 0 && (size_t)index < s->num_asked) {
        struct lane *l = s->asked[index];
        if (!h2o_linklist_is_empty(&l->waiters)) {
            struct waiter *w = H2O_STRUCT_FROM_MEMBER(struct waiter, link, l->waiters.next);
            if (w->bucket == s->asked_bucket) { /* else its waiters left meanwhile: the token goes unused */
                /* charged to the process's bucket at its share too, so that a worker losing Redis goes on from there */
                pgw_ratelimit_debit(&w->bucket->rate, pgw_now_ms(), atomic_load(&pgw_shared_replicas));
                s->last = l;
                release(s, w, 1);
            }
        }
        serve(s);
        return;
    }
    if (pgw_shaper_queued(s) == 0)
        return;
    uint64_t next = wait_ms < MAX_TICK_MS ? wait_ms : MAX_TICK_MS;
    uv_timer_start(&s->timer, on_timer, next != 0 ? next : 1, 0);
}

void pgw_shaper_admit(pgw_shaper_t *s, pgw_shaper_bucket_t *b, struct st_pgw_request_t *r, double queue_timeout_s,
                      pgw_shaper_cb cb)
{
    if ((s->redis == NULL || r->conf->upstream_rpm == 0) && pgw_shaper_queued(s) == 0 &&
        pgw_ratelimit_take(&b->rate, pgw_now_ms()) == 0) {
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
    if (s->redis != NULL) { /* with shared state every request is a turn: asked now unless a question is in flight */
        if (!s->asking && !uv_is_active((uv_handle_t *)&s->timer))
            serve(s);
        return;
    }
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
        pgw_shared_block(pgw_redis_of_thread(), b->key_digest, ms > 0 ? (uint64_t)ms : 1000);
        return;
    }
    h2o_iovec_t remaining = pgw_upstream_header(t, H2O_STRLIT("x-ratelimit-remaining-requests"));
    if (remaining.base == NULL)
        remaining = pgw_upstream_header(t, H2O_STRLIT("anthropic-ratelimit-requests-remaining"));
    if (remaining.base != NULL && h2o_memis(remaining.base, remaining.len, H2O_STRLIT("0"))) {
        long ms = pgw_upstream_parse_retry_after(pgw_upstream_header(t, H2O_STRLIT("x-ratelimit-reset-requests")), time(NULL));
        pgw_ratelimit_block(&b->rate, now + (ms > 0 ? (uint64_t)ms : 1000));
        pgw_shared_block(pgw_redis_of_thread(), b->key_digest, ms > 0 ? (uint64_t)ms : 1000);
    }
}
