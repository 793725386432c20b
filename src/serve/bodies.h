/* poe-gateway: MIT licence. Request bodies before the handler: a body is read only for a caller the gateway may serve,
 * and only while the bodies in flight fit gateway.max_body_bytes_in_flight and gateway.max_body_bytes_per_connection. */
#ifndef PGW_BODIES_H
#define PGW_BODIES_H

#include <stddef.h>
#include <h2o.h>

/** What became of a request's body before the handler ran. */
typedef enum en_pgw_body_verdict_t {
    PGW_BODY_READ,            /* no body, or a body read as usual (in req->entity) */
    PGW_BODY_UNAUTHENTICATED, /* withheld, unread: the request carries no valid key (and no tailnet identity may stand in) */
    PGW_BODY_OVER_CONNECTION, /* withheld, unread: its connection's bodies would pass gateway.max_body_bytes_per_connection */
    PGW_BODY_OVER_GATEWAY,    /* withheld, unread: the gateway's bodies would pass gateway.max_body_bytes_in_flight */
} pgw_body_verdict_t;

/**
 * Returns the verdict on `req`'s body, reached when its head arrived. A withheld body was never read and never will be:
 * req->entity is empty, over HTTP/1.1 the connection closes after the answer, over HTTP/2 the stream is reset with
 * NO_ERROR once the answer is out (the client may stop sending). The handler must answer such a request without its
 * body: 401 for PGW_BODY_UNAUTHENTICATED where a key is needed, 503 for the other two. Call on the request's worker.
 */
pgw_body_verdict_t pgw_bodies_verdict(h2o_req_t *req);

/**
 * Starts watching the bodies that grow as they arrive (through src/serve/uvread.c). Returns 1 when libh2o's calls reach this
 * module (see src/serve/bodies.c), so that bodies are checked before they are read; 0 when they do not (libh2o linked
 * statically, or the symbols bound elsewhere): bodies are then read first, as libh2o 2.2.5 does by itself. Call once,
 * before the workers start.
 */
int pgw_bodies_init(void);

#endif
