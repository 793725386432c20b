/* poe-gateway: MIT licence. Accepting client connections: each worker's listening socket, the process-wide cap on open
 * client connections (gateway.max_connections), the descriptor limit, and what is done when descriptors run out. */
#ifndef PGW_LISTENER_H
#define PGW_LISTENER_H

#include <stddef.h>
#include <uv.h>

typedef struct st_pgw_listeners_t pgw_listeners_t;
typedef struct st_pgw_listener_t pgw_listener_t;

/**
 * Called on the listener's loop with each accepted connection. `fd` is non-blocking and close-on-exec, and belongs to
 * the callee, as does the slot it holds under the cap: whoever closes `fd` calls pgw_listeners_release once it is closed.
 */
typedef void (*pgw_listener_accept_cb)(pgw_listener_t *listener, int fd, void *data);

/**
 * Called once at start, before any worker runs: raises the soft descriptor limit (RLIMIT_NOFILE) to the hard one and
 * settles the cap on client connections, `max_connections` when it is not 0, else a default derived from the descriptor
 * limit and `num_workers` (see pgw_listeners_default_max). Both are logged. The result lives as long as the process.
 */
pgw_listeners_t *pgw_listeners_create(size_t max_connections, unsigned num_workers);

/**
 * The default cap for a descriptor limit of `nofile` and `num_workers` worker threads: the limit less a reserve for what
 * else the process holds (64, plus 32 a worker), or half the limit when that is more (never 0).
 */
size_t pgw_listeners_default_max(size_t nofile, unsigned num_workers);

/**
 * Gives back the slot of a connection whose descriptor has been closed. Any thread may call it; a listener paused at the
 * cap is woken.
 */
void pgw_listeners_release(pgw_listeners_t *listeners);

/**
 * Starts accepting on `fd`, a bound and listening socket that the listener owns from now on, on `loop`, calling `cb` with
 * each connection. Returns NULL (and leaves `fd` open) when libuv refuses the socket.
 */
pgw_listener_t *pgw_listener_start(pgw_listeners_t *listeners, uv_loop_t *loop, int fd, pgw_listener_accept_cb cb, void *data);

/**
 * Stops accepting for good and closes the listening socket (connections still in its queue are reset). Called on the
 * listener's loop; the listener frees itself once libuv has closed its handles.
 */
void pgw_listener_close(pgw_listener_t *listener);

#endif
