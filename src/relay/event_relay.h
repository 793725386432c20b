/* poe-gateway: MIT licence. The event relay: Poe's answer relayed to the client as it came, an event at a time, but only
 * as far as it is a real answer. Shared by the two pass-throughs (src/relay/passthrough.c for /v1/messages,
 * src/relay/openai_passthrough.c for /v1/chat/completions), which add what differs: each event's meaning and the shape
 * of errors (docs/streams.md#the-pass-through-relay). */
#ifndef PGW_EVENT_RELAY_H
#define PGW_EVENT_RELAY_H

#include "relay/relay.h"
#include "relay/sse.h"

/* An error status's body is held up to this size; larger error JSON is not looked into either. */
#define PGW_EVENT_RELAY_MAX_ERROR_BODY (64 * 1024)

typedef struct st_pgw_event_relay_t pgw_event_relay_t;

/* What Poe's answer is, decided at its head. */
typedef enum en_pgw_event_relay_body_t {
    PGW_EVENT_RELAY_STREAM, /* relayed event by event */
    PGW_EVENT_RELAY_WHOLE,  /* held, checked, sent whole */
    PGW_EVENT_RELAY_ERROR,  /* held (bounded), then relayed or mapped by the route */
} pgw_event_relay_body_t;

/* How a stream stands; anything but NONE stops the reading of events. */
typedef enum en_pgw_event_relay_end_t {
    PGW_EVENT_RELAY_END_NONE,
    PGW_EVENT_RELAY_END_COMPLETE,  /* the completing event (message_stop, [DONE]) was relayed: the answer is whole */
    PGW_EVENT_RELAY_END_POE_ERROR, /* Poe's own error, in an event */
    PGW_EVENT_RELAY_END_UNUSABLE,  /* an event that breaks the protocol; `why` says which */
} pgw_event_relay_end_t;

/**
 * What a pass-through adds to the event relay. Each callback is given the event relay the route's state begins with.
 * The ones that answer the client may end the request: each is its caller's last use of the relay.
 */
typedef struct st_pgw_event_relay_ops_t {
    const char *module;  /* the route's MODULE_NAME, for log lines */
    int openai;          /* the client speaks OpenAI's API (pgw_relay_t.openai) */
    const char *missing; /* what a stream that ended without its completing event lacks, said in its error */
    /** Each header of Poe's response, `ctx` the event relay (its `status` set): adds the ones the client gets. */
    void (*copy_header)(void *ctx, h2o_iovec_t name, h2o_iovec_t value);
    /**
     * One whole event of a stream, before any end. Checks and reads it, sets `begun` once it starts the answer, and
     * `end` (with `why`, or with `first_error` filled before `begun`) to stop the stream after it. Returns 1 to relay
     * the event's own bytes, 0 to drop them. Sends nothing.
     */
    int (*on_event)(pgw_event_relay_t *ev, h2o_iovec_t event, h2o_iovec_t data);
    /** Poe's error event came before the answer began, its data in `first_error`: answers it (or hands it off). */
    void (*respond_first_error)(pgw_event_relay_t *ev);
    /** 1 when an error status's body (`len` bytes, whole) is an error in the client's shape, which goes as it came. */
    int (*is_own_error)(const char *json, size_t len);
    /**
     * Optional. A whole 2xx answer, one JSON object, is in `held`: returns 1 when it is an error in the route's terms,
     * which the route has answered; 0 to send it as it is.
     */
    int (*respond_whole_error)(pgw_event_relay_t *ev);
    /**
     * Optional. The stream's transfer ended cleanly without the completing event: returns 1 when the answer is whole
     * nevertheless, having appended to the relay's `pending` what the client still needs; 0 to fail the stream.
     */
    int (*complete_unended)(pgw_event_relay_t *ev);
} pgw_event_relay_ops_t;

/** A pass-through's per-request state begins with this (a route with more state embeds it first). */
struct st_pgw_event_relay_t {
    pgw_relay_t relay; /* first: the generator h2o sees */
    const pgw_event_relay_ops_t *ops;
    int status; /* Poe's, 0 before the head */
    pgw_event_relay_body_t kind;
    int client_stream; /* the client asked for a stream */
    pgw_sse_reader_t sse;
    h2o_buffer_t *held; /* a stream: bytes of the event still arriving; otherwise the body so far */
    int truncated;      /* the body went past its cap */
    /* the feed in progress (valid only inside on_body) */
    const char *chunk;
    size_t chunk_done; /* bytes of `chunk` already relayed or dropped */
    int begun;         /* the answer's first event (message_start, a first chunk) is relayed or pending */
    pgw_event_relay_end_t end;
    const char *why;           /* END_UNUSABLE: what was wrong */
    h2o_buffer_t *first_error; /* END_POE_ERROR before `begun`: the event's data, answered as a body */
};

/**
 * Allocates `size` bytes (at least sizeof(pgw_event_relay_t); the rest zeroed, for the route) from r's pool as the
 * request's relay state, and POSTs `body` then `more[0]` and `more[1]` (not copied: pgw_passthrough_splice_model) to
 * `url` with `headers` (taken) and the route's timeouts and retries; `ops` handle what comes back, `client_stream` says
 * whether the client asked for a stream. From then on the client is always answered: with Poe's answer, an error, or by
 * the request's fallback (pgw_relay_hand_off).
 */
void pgw_event_relay_start(pgw_request_t *r, const pgw_route_t *route, const pgw_event_relay_ops_t *ops, size_t size,
                           int client_stream, const char *url, h2o_iovec_t body, const h2o_iovec_t more[2],
                           struct curl_slist *headers);

/**
 * For on_event: 1 when `data` is one JSON object. Else 0, and the stream is marked unusable: the client's SDK parses
 * every event's data, and one that would break there ends the stream here instead.
 */
int pgw_event_relay_check_json(pgw_event_relay_t *ev, h2o_iovec_t data);

/**
 * Sends `*body` as the whole response with `status` (content type JSON), the route's key redacted from it. Nothing may
 * have been started. Ends the response: the caller's last use of the relay.
 */
void pgw_event_relay_respond_json(pgw_event_relay_t *ev, int status, h2o_buffer_t **body);

#endif
