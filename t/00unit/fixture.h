/* poe-gateway: MIT licence. What the unit tests of the request path share: the gateway's own server set-up with one
 * worker on a libuv loop that the test runs, requests that need no socket, and a scripted upstream on the same loop. */
#ifndef PGW_TEST_FIXTURE_H
#define PGW_TEST_FIXTURE_H

#include <h2o.h>
#include "serve/generation.h"
#include "serve/request.h"
#include "serve/server.h"
#include "serve/worker.h"

/* The keys of the fixture's configuration. The Poe key comes from FIXTURE_UPSTREAM_KEY_ENV, so routes know its name. */
#define FIXTURE_MASTER_KEY "sk-fixture-master-0123456789"
#define FIXTURE_ALICE_KEY "sk-fixture-alice-0123456789"
#define FIXTURE_UPSTREAM_KEY "poe-fixture-upstream-key-0123456789"
#define FIXTURE_UPSTREAM_KEY_ENV "PGW_FIXTURE_POE_KEY"

/**
 * The worker every test of the request path shares, made on first use and kept for the process (it stays reachable,
 * as a worker does until exit). It is what pgw_server_init and a worker thread's start make of this configuration, on
 * the test's thread, without a listener:
 *   - `claude-renamed` (pass-through, upstream model claude-upstream-name), `claude-*` (pass-through, the client's model
 *     name) and `gpt-5` (translated, bot GPT-5, an api_base ending in /v1): at the scripted upstream, with the Poe key
 *     from FIXTURE_UPSTREAM_KEY_ENV and no retries;
 *   - `claude-dead` (pass-through) at a port where nothing listens;
 *   - the master key, and a named key `alice` allowed `claude-*` only; upstream_rpm 0 (no shaping).
 */
pgw_worker_t *fixture_worker(void);

/** The route named `model_name` in the fixture's configuration (aborts when there is none). */
const pgw_route_t *fixture_route(const char *model_name);

/**
 * Runs the worker's loop until `cond` holds, or 10 s have passed (a failing test then fails its next assertion instead of
 * hanging). Each turn waits for one event, or 10 ms.
 */
#define RUN_UNTIL(cond)                                                                                                            \
    do {                                                                                                                           \
        fixture_turns_begin();                                                                                                     \
        while (!(cond) && fixture_turn())                                                                                          \
            ;                                                                                                                      \
    } while (0)
void fixture_turns_begin(void);
/** One turn of the loop; 0 once the 10 s are over. */
int fixture_turn(void);
/** Runs the turns that are due now (close callbacks, zero timers) without waiting. */
void fixture_settle(void);

/* ---- requests ---- */

/**
 * One request on a connection of its own that has no socket: what h2o sends for it is collected in `body`, and
 * `in_flight` is set until the test (or, with `auto_proceed`, the loop's next turn) lets the next send through, as a
 * socket's write completion does.
 */
typedef struct st_test_req_t {
    h2o_conn_t conn;
    h2o_req_t req;
    h2o_ostream_t ostr;
    h2o_buffer_t *body;       /* every byte h2o sent */
    size_t sends;             /* calls to the final ostream */
    int in_flight;            /* a send awaits proceed */
    int auto_proceed;         /* proceed from the loop after each send (on by default) */
    int ended;                /* a last send (FINAL or ERROR) arrived */
    h2o_send_state_t end;     /* its state */
    h2o_socket_t *sock;       /* what get_socket answers (NULL by default) */
    pgw_outcome_t outcome;    /* with test_req_begin: r->outcome as it was when the request was disposed */
    int disposed;             /* the request has been disposed (test_req_destroy) */
    uv_timer_t proceed_timer; /* for auto_proceed */
} test_req_t;

/** A request (HTTP/1.1 unless the test changes req.version) for `method` `path` with `body` (NULL for none). */
test_req_t *test_req_create(const char *method, const char *path, const char *body);

/** Adds a request header. */
void test_req_header(test_req_t *t, const char *name, const char *value);

/** Processes the request as h2o does once it has read it whole: the host, the path, the gateway's handler. */
void test_req_process(test_req_t *t);

/**
 * For a test that calls a module directly: binds the request to the gateway's path as h2o_process_request would, and
 * begins the gateway's per-request state (pgw_request_begin), as the handler does first. The outcome the request ends
 * with is copied to t->outcome when it is disposed.
 */
pgw_request_t *test_req_begin(test_req_t *t);

/** Lets the send in flight complete (the client read it): h2o's proceed. */
void test_req_proceed(test_req_t *t);

/**
 * The response body so far, NUL-terminated (a copy in the request's pool). For HTTP/1.1, h2o's chunked encoding is taken
 * off (`body` has the bytes as framed: an answer that ends with an error lacks the last chunk there).
 */
const char *test_req_body(test_req_t *t);

/** A response header's value (NULL when absent), NUL-terminated. */
const char *test_req_res_header(test_req_t *t, const char *name);

/** Disposes the request as h2o does when its connection is done with it, then frees `t` once the loop has closed its
 * handles. Returns the outcome noted (test_req_begin requests). */
pgw_outcome_t test_req_destroy(test_req_t *t);

/* ---- the scripted upstream ---- */

/** A part of an answer that holds it: nothing more is written until upstream_continue. */
#define UPSTREAM_WAIT ((const char *)1)

typedef struct st_upstream_answer_t {
    const char *parts[24]; /* written in order, each in one write; NULL ends the list */
    int keep_open;         /* after the last part, the connection stays open (an answer that lingers) */
} upstream_answer_t;

/** Queues the answer to the next request the upstream receives (the pointer is kept: the answer must outlive it). */
void upstream_expect(const upstream_answer_t *answer);

/** Writes what follows an UPSTREAM_WAIT of the answer in progress. */
void upstream_continue(void);

/** How many requests the upstream has received whole. */
size_t upstream_requests(void);

/** The last request received, head and body, NUL-terminated. */
const char *upstream_last_request(void);

/** The value of a header of the last request (case-insensitive name), NUL-terminated in a static buffer; NULL if absent. */
const char *upstream_last_header(const char *name);

/** The body of the last request. */
const char *upstream_last_body(void);

/** How many connections the gateway closed while an answer was still being written, held or kept open. */
size_t upstream_hangups(void);

/* ---- sockets ---- */

/** A connected TCP pair on the loopback: fds[0] as accepted, fds[1] the peer. */
void tcp_pair(int fds[2]);

#endif
