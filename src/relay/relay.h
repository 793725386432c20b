/* poe-gateway: MIT licence. The client side of a proxied response: one send in flight, flow control against the upstream,
 * SSE pings on silence, hang-up detection for HTTP/1 clients, and how a response may end. Shared by both route kinds. */
#ifndef PGW_RELAY_H
#define PGW_RELAY_H

#include "serve/request.h"
#include "upstream/upstream.h"

#define PGW_RELAY_HIGH_WATER (1024 * 1024)
#define PGW_RELAY_PING_MS 15000

typedef struct st_pgw_relay_t pgw_relay_t;

/**
 * Called after PGW_RELAY_PING_MS without a write to the client, once pings are enabled. Returns
 * 1 when a ping may be written now (the stream stands between two events), 0 to skip this one.
 */
typedef int (*pgw_relay_can_ping_cb)(pgw_relay_t *rl);


/**
 * Embedded as the first member of a route's per-request state (allocated from the request pool as a shared entry whose
 * dispose calls pgw_relay_dispose).
 */
struct st_pgw_relay_t {
    h2o_generator_t super;
    pgw_request_t *r;
    const pgw_route_t *route;
    pgw_upstream_transfer_t *transfer; /* owned until it completes; NULL once completed or cancelled */
    h2o_buffer_t *pending;             /* response bytes not yet handed to h2o */
    h2o_doublebuffer_t sending;        /* handed to h2o, awaiting proceed */
    int started;                       /* the response head went to h2o */
    int stream;                        /* the response is an event stream (pgw_relay_start_stream) */
    int openai;                        /* the client speaks OpenAI's chat/completions: its errors, error events and pings
                                        * take that API's form (set by the route before anything is sent) */
    int ended;                         /* the route said how the answer ends (complete, end, fail) */
    int done;                          /* nothing more will be appended: send FINAL once pending is out */
    int abort;                         /* with done: end with ERROR (an incomplete body) instead of FINAL */
    int final_sent;                    /* the response is complete from h2o's point of view */
    int paused;                        /* the upstream transfer is paused for flow control */
    int resuming;
    pgw_relay_can_ping_cb can_ping;    /* set by pgw_relay_start_stream */
    uint64_t last_write;               /* when bytes last went to h2o (pings fill silences: docs/streams.md#pings) */
    struct st_pgw_relay_timers_t *timers;
};

/** Initialises `rl` for request `r`; starts the hang-up watch for HTTP/1 clients. */
void pgw_relay_init(pgw_relay_t *rl, pgw_request_t *r, const pgw_route_t *route);

/** Cancels the transfer, stops the timers and frees the buffers. Called from the owner's pool dispose. */
void pgw_relay_dispose(pgw_relay_t *rl);

/** Cancels the upstream transfer (if any) and stops the ping and route timers. */
void pgw_relay_stop_upstream(pgw_relay_t *rl);

/**
 * Starts the response with req->res as the caller set it. Nothing is sent yet: bytes go out with pgw_relay_send.
 */
void pgw_relay_start(pgw_relay_t *rl);

/**
 * Starts an event stream: status 200, content-type text/event-stream, no caching, and pings after each PING_MS of
 * silence (`can_ping` is asked first). The caller has added any other headers.
 */
void pgw_relay_start_stream(pgw_relay_t *rl, pgw_relay_can_ping_cb can_ping);

/*
 * How a response ends: the stream contract. Every relayed response ends through exactly one of the three calls below;
 * a response that ends otherwise is a bug that pgw_relay_send refuses to hide (it logs an error and ends the stream with
 * an `error` event, or a whole body with a transport error). The contract, for the client:
 * - an event stream ends with `message_stop` only when the upstream's answer really completed, and otherwise with
 *   exactly one `error` event, after which nothing follows;
 * - a whole answer is complete, or the client gets an error status with an Anthropic error body instead (never a
 *   truncated body under a 2xx).
 * With `openai` set, the same holds in OpenAI's terms: a stream is complete with `data: [DONE]`, its one error is a
 * `data: {"error":{...}}` event, and error bodies have OpenAI's shape (pgw_openai_error_json).
 * Each may end the request inside the call: callers make it their last use of the relay.
 */

/** The upstream's answer is complete and all of it is in `pending`: send it and end the response. */
void pgw_relay_complete(pgw_relay_t *rl);

/**
 * The writer has put its own last event in `pending`: message_stop (outcome OK) or an `error` event whose reason
 * `outcome` names. Sends it and ends the response.
 */
void pgw_relay_end(pgw_relay_t *rl, pgw_outcome_t outcome);

/**
 * The upstream's answer cannot be completed. When nothing was started, the request's fallback may take it on
 * (pgw_relay_hand_off). Otherwise stops the upstream, notes `outcome` and tells the client: an error status with an
 * Anthropic error body when nothing was started, else one `error` event of `type` at the end of the stream (the
 * stream must stand between two events). The message is printf-style; the route's upstream key is redacted from it.
 */
void pgw_relay_fail(pgw_relay_t *rl, pgw_outcome_t outcome, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/**
 * Before anything was started, instead of an error answer: offers the upstream's failure (`status`, Poe's or the one the
 * client would get) to the request's fallback (r->fallback, docs/request-path.md#fallbacks). When the fallback takes the
 * request to another route, this route's part is over without a byte sent: its upstream is stopped, the relay marked
 * final, and 1 returned; the caller returns at once and touches nothing more of the request. Otherwise 0: the caller
 * answers as it would have. pgw_relay_fail makes this offer itself.
 */
int pgw_relay_hand_off(pgw_relay_t *rl, int status);

/**
 * An error response instead of a relayed one, before pgw_relay_start: marks the relay final so nothing else is sent.
 * The caller sends the response itself (pgw_send_error) right after.
 */
void pgw_relay_respond_directly(pgw_relay_t *rl);

/**
 * Hands pending bytes to h2o when nothing is in flight; with `done`, ends the response once all is out. h2o may finish
 * and dispose of the request inside this call: callers make it their last use of the relay.
 */
void pgw_relay_send(pgw_relay_t *rl);

/**
 * For the upstream's on_body: 1 when `pending` is past the high-water mark (the caller returns "pause" to the upstream
 * without consuming the bytes), else 0.
 */
int pgw_relay_should_pause(pgw_relay_t *rl);

/** Starts (or restarts) the route's one-shot timer; it stops with the upstream (pgw_relay_stop_upstream). */
void pgw_relay_start_timer(pgw_relay_t *rl, uint64_t ms, void (*cb)(pgw_relay_t *rl));
void pgw_relay_stop_timer(pgw_relay_t *rl);


#endif
