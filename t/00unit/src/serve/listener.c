/* poe-gateway: MIT licence. Unit tests for src/serve/listener.c: the default cap, and a listener at the cap on a real loopback
 * socket, woken from another thread when a slot is given back. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include "../../../../src/serve/listener.c"
#include "../../test.h"

static void test_default_max(void)
{
    is_int(pgw_listeners_default_max(1024, 2), 1024 - 128); /* the limit less 64 + 32 a worker */
    is_int(pgw_listeners_default_max(65536, 8), 65536 - 320);
    is_int(pgw_listeners_default_max(256, 2), 128); /* a reserve over half the limit: half */
    is_int(pgw_listeners_default_max(128, 2), 64);
    is_int(pgw_listeners_default_max(1024, 16), 512);
    is_int(pgw_listeners_default_max(1, 4), 1); /* never 0 */
}

static void test_slots(void)
{
    pgw_listeners_t *s = pgw_listeners_create(3, 1);
    is_int(s->max, 3);
    int taken = 0;
    for (int i = 0; i != 10; ++i)
        taken += take_slot(s);
    is_int(taken, 3);
    is_int(atomic_load(&s->open), 3);
    pgw_listeners_release(s);
    ok(take_slot(s));
    ok(!take_slot(s));
    free(s);
}

static int accepted_fds[4], num_accepted;

static void on_accepted(pgw_listener_t *listener, int fd, void *data)
{
    accepted_fds[num_accepted++] = fd;
}

static int connect_to(int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ok(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0); /* the kernel completes it: the listen queue has room */
    return fd;
}

static void *release_from_another_thread(void *s)
{
    pgw_listeners_release(s);
    return NULL;
}

static void on_tick(uv_timer_t *timer)
{
}

/* Runs the loop until `num_accepted` reaches `n`, for at most 100 turns; each turn waits for one event, or a tick. */
static void run_until_accepted(uv_loop_t *loop, int n)
{
    for (int i = 0; i != 100 && num_accepted < n; ++i)
        uv_run(loop, UV_RUN_ONCE);
}

static void test_wait_for_room(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    pgw_listeners_t *s = pgw_listeners_create(1, 1);
    uv_timer_t tick; /* bounds each turn of the loop to 20 ms, so that a listener that never wakes fails, not hangs */
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 20, 20);
    uv_unref((uv_handle_t *)&tick);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    ok(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == 0 && listen(lfd, 16) == 0);
    getsockname(lfd, (struct sockaddr *)&sin, &len);
    int port = ntohs(sin.sin_port);
    pgw_listener_t *l = pgw_listener_start(s, &loop, lfd, on_accepted, NULL);
    ok(l != NULL);

    int c1 = connect_to(port), c2 = connect_to(port);
    run_until_accepted(&loop, 1);
    is_int(num_accepted, 1);
    /* the second connection meets the cap: the listener stops polling and waits */
    for (int i = 0; i != 100 && atomic_load(&s->num_waiting) == 0; ++i)
        uv_run(&loop, UV_RUN_ONCE);
    is_int(atomic_load(&s->num_waiting), 1);
    ok(!l->polling);
    is_int(num_accepted, 1);

    /* the first connection closes on another thread: the listener is woken and takes the second */
    close(accepted_fds[0]);
    pthread_t thread;
    pthread_create(&thread, NULL, release_from_another_thread, s);
    pthread_join(thread, NULL);
    is_int(atomic_load(&s->num_waiting), 0);
    run_until_accepted(&loop, 2);
    is_int(num_accepted, 2);
    is_int(atomic_load(&s->open), 1);

    close(accepted_fds[1]);
    pgw_listeners_release(s);
    close(c1);
    close(c2);
    pgw_listener_close(l);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_DEFAULT); /* the close callbacks free the listener */
    is_int(uv_loop_close(&loop), 0);
    free(s);
}

void test_src__listener_c(void)
{
    subtest("default_max", test_default_max);
    subtest("slots", test_slots);
    subtest("wait_for_room", test_wait_for_room);
}
