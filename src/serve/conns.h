/* poe-gateway: MIT licence. The client connections a worker accepted, and the sweep that cuts those where no request
 * has moved for longer than idle_timeout (HTTP/2 slowloris, which libh2o 2.2.5 does not time out by itself). */
#ifndef PGW_CONNS_H
#define PGW_CONNS_H

#include <stdint.h>
#include <uv.h>
#include <h2o.h>
#include "serve/listener.h"

typedef struct st_pgw_conns_t pgw_conns_t;
typedef struct st_pgw_conn_t pgw_conn_t;

/**
 * Creates one worker's table of client connections and starts its sweep on `loop`. A connection is cut when no request
 * of it is in the gateway's handlers and none has reached them or ended for a little more than `idle_timeout_ms` (the
 * accept counts as the first such moment). Cutting is shutdown(2) of the descriptor: h2o reads the end of the stream and
 * closes the connection through its own path. The sweep's timer does not keep the loop alive; the table lives as long as
 * the worker. Each connection's slot under the cap is given back to `listeners` once its descriptor is closed.
 */
pgw_conns_t *pgw_conns_create(uv_loop_t *loop, uint64_t idle_timeout_ms, pgw_listeners_t *listeners);

/**
 * Takes an accepted connection's descriptor (and its slot under the cap, see pgw_listener_accept_cb) into the table and
 * returns it as an h2o socket, for h2o_accept. Returns NULL when libuv refuses the descriptor: it is then closed and its
 * slot given back. The entry is forgotten when libuv has closed the connection, and the slot given back then.
 */
h2o_socket_t *pgw_conns_adopt(pgw_conns_t *conns, int fd);

/**
 * Notes that `req` reached the gateway's handlers: its connection is not cut while the request lasts. Returns the
 * connection's entry, to be passed to pgw_conns_request_end exactly once when the request is disposed, or NULL for a
 * request whose connection the table does not hold (no socket); NULL needs no end.
 */
pgw_conn_t *pgw_conns_request_begin(h2o_req_t *req);

/**
 * Notes that a request begun with pgw_conns_request_begin has been disposed; the connection's idle time counts from
 * now.
 */
void pgw_conns_request_end(pgw_conn_t *conn);

#endif
