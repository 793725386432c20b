/* poe-gateway: MIT licence. Unit tests for src/serve/shaper.c: the token bucket (burst, rate, Poe's blocks), the lanes (one
 * developer's burst cannot starve the others; deadlines; a request that leaves while queued), and the limit signals
 * read from Poe's answers. Requests and answers come from the fixture. */
#include <string.h>
#include "../../../../src/serve/shaper.c"
#include "../../fixture.h"
#include "../../test.h"

static void test_bucket(void)
{
    pgw_shaper_bucket_t b;

    /* 60 a minute, 2 at once: the burst goes at once, then one a second */
    pgw_shaper_bucket_init(&b, 60, 2, 10000);
    is_int(pgw_ratelimit_take(&b.rate, 10000), 0);
    is_int(pgw_ratelimit_take(&b.rate, 10000), 0);
    uint64_t wait = pgw_ratelimit_take(&b.rate, 10000);
    ok(wait >= 1000 && wait <= 1001);
    wait = pgw_ratelimit_take(&b.rate, 10500); /* half a token came back */
    ok(wait >= 500 && wait <= 501);
    is_int(pgw_ratelimit_take(&b.rate, 11001), 0);
    /* what comes back is capped at the burst */
    is_int(pgw_ratelimit_take(&b.rate, 100000), 0);
    is_int(pgw_ratelimit_take(&b.rate, 100000), 0);
    ok(pgw_ratelimit_take(&b.rate, 100000) != 0);
    pgw_shaper_bucket_dispose(&b);

    /* burst 0: a minute's worth at once, like Poe's own per-minute window */
    pgw_shaper_bucket_init(&b, 120, 0, 0);
    int taken = 0;
    while (taken != 1000 && pgw_ratelimit_take(&b.rate, 0) == 0)
        ++taken;
    is_int(taken, 120);
    pgw_shaper_bucket_dispose(&b);

    /* 0: unlimited */
    pgw_shaper_bucket_init(&b, 0, 0, 0);
    taken = 0;
    while (taken != 1000 && pgw_ratelimit_take(&b.rate, 0) == 0)
        ++taken;
    is_int(taken, 1000);
    pgw_shaper_bucket_dispose(&b);

    /* Poe said to slow down: nothing before the time it named, and the bucket starts again from empty */
    pgw_shaper_bucket_init(&b, 60, 5, 0);
    pgw_ratelimit_block(&b.rate, 3000);
    is_int(pgw_ratelimit_take(&b.rate, 1000), 2000);
    is_int(pgw_ratelimit_take(&b.rate, 2999), 1);
    is_int(pgw_ratelimit_take(&b.rate, 3000), 0);
    /* a later signal naming an earlier time does not shorten the block */
    pgw_ratelimit_block(&b.rate, 9000);
    pgw_ratelimit_block(&b.rate, 4000);
    is_int(pgw_ratelimit_take(&b.rate, 5000), 4000);
    pgw_shaper_bucket_dispose(&b);
}

/* ---- lanes ---- */

#define MAX_WAITERS 8

static struct {
    pgw_request_t *r;
    const char *label;
} waiters[MAX_WAITERS];
static size_t num_waiters;
static char admitted[128];   /* labels of the requests admitted, in order */
static char turned_away[64]; /* labels of those that waited in vain */

/* The newest request at `r`'s address: a request created after another left may take its memory. */
static void on_admit(pgw_request_t *r, int ok)
{
    for (size_t i = num_waiters; i-- != 0;) {
        if (waiters[i].r == r) {
            char *list = ok ? admitted : turned_away;
            size_t n = strlen(list);
            snprintf(list + n, (ok ? sizeof(admitted) : sizeof(turned_away)) - n, "%s%s", n != 0 ? " " : "", waiters[i].label);
            return;
        }
    }
}

/* A request of key `key` labelled `label`, handed to the worker's shaper. */
static test_req_t *admit(pgw_shaper_bucket_t *b, const char *key, const char *label, double timeout_s)
{
    test_req_t *t = test_req_create("POST", "/v1/messages", "{}");
    pgw_request_t *r = test_req_begin(t);
    r->key_name = key;
    waiters[num_waiters].r = r;
    waiters[num_waiters].label = label;
    ++num_waiters;
    pgw_shaper_admit(fixture_worker()->shaper, b, r, timeout_s, on_admit);
    return t;
}

static void reset_lanes(void)
{
    num_waiters = 0;
    admitted[0] = turned_away[0] = '\0';
}

/* Gives the bucket `n` tokens now, and lets the shaper serve its lanes (as its timer would). */
static void give_tokens(pgw_shaper_bucket_t *b, double n)
{
    b->rate.tokens = n;
    b->rate.updated_ms = pgw_now_ms();
    serve(fixture_worker()->shaper);
}

static void test_lanes(void)
{
    pgw_shaper_t *s = fixture_worker()->shaper;
    pgw_shaper_bucket_t b;
    test_req_t *t[6];

    reset_lanes();
    pgw_shaper_bucket_init(&b, 1, 1, pgw_now_ms()); /* one token, then one a minute: the rest waits for the test */
    t[0] = admit(&b, "alice", "a0", 60);
    is_str(admitted, "a0"); /* a token and nobody waiting: at once */
    is_int(pgw_shaper_queued(s), 0);

    t[1] = admit(&b, "alice", "a1", 60);
    t[2] = admit(&b, "alice", "a2", 60);
    t[3] = admit(&b, "alice", "a3", 60);
    t[4] = admit(&b, "bob", "b1", 60);
    is_int(pgw_shaper_queued(s), 4);
    ok(uv_is_active((uv_handle_t *)&s->timer));
    /* a token is there, but others wait: a newcomer queues behind them */
    b.rate.tokens = 1;
    t[5] = admit(&b, "carol", "c1", 60);
    is_str(admitted, "a0");
    is_int(pgw_shaper_queued(s), 5);

    /* three turns: one from each lane first, whatever the order they came in */
    give_tokens(&b, 3);
    ok(strlen(admitted) == strlen("a0 xx xx xx") && strstr(admitted, "a1") != NULL && strstr(admitted, "b1") != NULL &&
       strstr(admitted, "c1") != NULL);
    is_int(pgw_shaper_queued(s), 2);
    /* then alice's, in her order */
    give_tokens(&b, 5);
    ok(strlen(admitted) == strlen("a0 xx xx xx a2 a3") && strcmp(admitted + strlen("a0 xx xx xx"), " a2 a3") == 0);
    is_int(pgw_shaper_queued(s), 0);
    ok(!uv_is_active((uv_handle_t *)&s->timer)); /* nothing waits: the timer stops */
    is_str(turned_away, "");
    for (size_t i = 0; i != 6; ++i)
        test_req_destroy(t[i]);
    pgw_shaper_bucket_dispose(&b);
}

static void test_timer(void)
{
    /* the shaper's own timer admits a waiter when its token comes due */
    pgw_shaper_t *s = fixture_worker()->shaper;
    pgw_shaper_bucket_t b;
    reset_lanes();
    pgw_shaper_bucket_init(&b, 60000, 1, pgw_now_ms()); /* a token a millisecond */
    test_req_t *t0 = admit(&b, "alice", "a0", 60), *t1 = admit(&b, "alice", "a1", 60);
    is_str(admitted, "a0");
    RUN_UNTIL(strcmp(admitted, "a0 a1") == 0);
    is_str(admitted, "a0 a1");
    is_int(pgw_shaper_queued(s), 0);
    test_req_destroy(t0);
    test_req_destroy(t1);
    pgw_shaper_bucket_dispose(&b);
}

static void test_deadline_and_leaving(void)
{
    pgw_shaper_t *s = fixture_worker()->shaper;
    pgw_shaper_bucket_t b;
    reset_lanes();
    pgw_shaper_bucket_init(&b, 1, 1, pgw_now_ms());
    test_req_t *t0 = admit(&b, "alice", "a0", 60);
    test_req_t *gone = admit(&b, "carol", "c1", 60);
    test_req_t *stays = admit(&b, "dave", "d1", 60);
    is_int(pgw_shaper_queued(s), 2);

    /* a request that leaves while queued is dropped from its lane, and never called (leaving runs the loop, and so
     * may run the shaper's timer: with no token and a minute's deadline for the others, that turn changes nothing) */
    test_req_destroy(gone);
    is_int(pgw_shaper_queued(s), 1);

    /* no time to wait at all; queued after the loop ran, so that no turn of the shaper's timer can turn it away before
     * the turn below (it did, on a busy machine, when it was queued before the request above left) */
    test_req_t *late = admit(&b, "bob", "b1", 0);
    is_int(pgw_shaper_queued(s), 2);

    /* deadlines first: the one past its deadline is turned away even with tokens to spare */
    give_tokens(&b, 5);
    is_str(turned_away, "b1");
    is_str(admitted, "a0 d1");
    is_int(pgw_shaper_queued(s), 0);
    test_req_destroy(t0);
    test_req_destroy(late);
    test_req_destroy(stays);
    pgw_shaper_bucket_dispose(&b);
}

/* ---- Poe's limit signals ---- */

static int observed;

static void obs_head(pgw_upstream_transfer_t *t, int status)
{
    pgw_shaper_observe(pgw_upstream_data(t), status, t);
}

static int obs_body(pgw_upstream_transfer_t *t, const char *bytes, size_t len)
{
    return 0;
}

static void obs_complete(pgw_upstream_transfer_t *t, pgw_upstream_error_t err, const char *errstr)
{
    observed = 1;
}

/* Whether Poe's `answer` blocks a bucket for `ms` from when it was read: the block must end between `ms` after the request
 * was sent and `ms` after its answer was read (the shaper reads the wall clock in between). */
static int blocks_for(const upstream_answer_t *answer, uint64_t ms)
{
    static const pgw_upstream_callbacks_t cb = {obs_head, obs_body, obs_complete};
    pgw_shaper_bucket_t b;
    char url[128];
    pgw_shaper_bucket_init(&b, 500, 0, pgw_now_ms());
    snprintf(url, sizeof(url), "%s/v1/messages", fixture_route("claude-*")->api_base);
    pgw_upstream_request_t req = {url, "GET", {NULL, 0}, NULL, 10, 10, 0, 1, 0};
    upstream_expect(answer);
    observed = 0;
    uint64_t sent = pgw_now_ms();
    pgw_upstream_start(fixture_worker()->upstream, &req, &cb, &b);
    RUN_UNTIL(observed);
    uint64_t read = pgw_now_ms(), until = b.rate.blocked_until_ms;
    pgw_shaper_bucket_dispose(&b);
    if (ms == 0)
        return observed && until == 0;
    if (!(observed && until >= sent + ms && until <= read + ms))
        note("blocked until %llu; expected %llu ms after %llu..%llu", (unsigned long long)until, (unsigned long long)ms,
             (unsigned long long)sent, (unsigned long long)read);
    return observed && until >= sent + ms && until <= read + ms;
}

static void test_observe(void)
{
    static const upstream_answer_t retry7 = {{"HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\ncontent-length: 0\r\n\r\n"}};
    static const upstream_answer_t bare429 = {{"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\n\r\n"}};
    static const upstream_answer_t zero = {
        {"HTTP/1.1 200 OK\r\nx-ratelimit-remaining-requests: 0\r\nx-ratelimit-reset-requests: 3\r\n"
         "content-length: 2\r\n\r\n{}"}};
    static const upstream_answer_t zero_anthropic = {
        {"HTTP/1.1 200 OK\r\nanthropic-ratelimit-requests-remaining: 0\r\ncontent-length: 2\r\n\r\n{}"}};
    static const upstream_answer_t some_left = {
        {"HTTP/1.1 200 OK\r\nx-ratelimit-remaining-requests: 5\r\ncontent-length: 2\r\n\r\n{}"}};

    ok(blocks_for(&retry7, 7000));         /* a 429's Retry-After */
    ok(blocks_for(&bare429, 1000));        /* else a second */
    ok(blocks_for(&zero, 3000));           /* "0 remaining": until its reset */
    ok(blocks_for(&zero_anthropic, 1000)); /* else a second */
    ok(blocks_for(&some_left, 0));         /* requests left: no block */
}

void test_src__shaper_c(void)
{
    subtest("bucket", test_bucket);
    subtest("lanes are served in turn", test_lanes);
    subtest("the timer admits when a token is due", test_timer);
    subtest("deadlines and requests that leave", test_deadline_and_leaving);
    subtest("Poe's limit signals", test_observe);
}
