/* poe-gateway: MIT licence. A fix for libh2o 2.2.5's TLS reads through libuv: a read callback that took libuv's
 * "nothing to read now" (nread == 0) for an I/O error and closed the connection with every stream on it. */
#ifndef PGW_UVREAD_H
#define PGW_UVREAD_H

#include <uv.h>

/**
 * This module defines uv_read_start. The dynamic linker binds libh2o's calls to it (a program's own symbols come
 * before those of its libraries); it forwards to libuv's uv_read_start, with the read callbacks that live in libh2o
 * wrapped so that they never see nread == 0, which libuv documents as "nothing read, not an error".
 *
 * Returns 1 when libh2o's calls to uv_read_start reach this module (the fix is in force), 0 when they would not
 * (libh2o linked statically into the program, or the symbol bound elsewhere). Programs also call it so that the
 * module is linked in at all.
 */
int pgw_uvread_fix_active(void);

typedef void (*pgw_uvread_observer_t)(uv_stream_t *stream);

/**
 * Sets the function called after each read libh2o's read callback has handled (not for a read libuv ends with nread
 * 0, nor once the stream is closing). `stream->data` is then libh2o's socket (h2o_socket_t). Set it before the first
 * read; it is called on the thread of the stream's loop.
 */
void pgw_uvread_observe(pgw_uvread_observer_t cb);

#endif
