/* poe-gateway: MIT licence. A fix for libh2o 2.2.5's TLS reads through libuv.
 *
 * libh2o's libuv binding (lib/common/socket/uv-binding.c.h) reads a TLS connection with on_read_ssl(), which takes any
 * nread that is not positive for an error. libuv calls a read callback with nread == 0 when a read filled the buffer it
 * was given exactly and the next read found nothing (EAGAIN): "nread might be 0, which does not indicate an error or
 * EOF" (uv_read_cb). h2o then closes the connection at once, with every HTTP/2 stream on it. h2o's TLS buffer is 8 KB
 * when empty, so a client that sends one TLS record of 8,192 or 16,384 bytes after a quiet moment has its connection
 * dropped (t/80hostile shows it); under load it happens by chance, and the mock Poe, which reads the gateway's requests
 * through the same function, dropped 80-odd upstream streams at a time in the soak (bench/README.md).
 *
 * The fix: this file defines uv_read_start. A program's own symbols come first when the dynamic linker binds libh2o's
 * calls, so h2o's read starts arrive here; they go on to libuv's uv_read_start with the read callback replaced by a
 * trampoline that drops nread == 0 and passes everything else on. Only callbacks that live in libh2o are replaced:
 * h2o's read buffers belong to its socket, so a dropped call leaves nothing to free (a callback that owned the buffer
 * would leak it). libh2o has two read callbacks (TCP and TLS); the table below has room for a few more.
 *
 * The trampoline also tells an observer, when one is set (pgw_uvread_observe), that libh2o has handled a read: the
 * gateway counts there the request bodies that grow as they arrive (src/serve/bodies.c).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>
#include "serve/uvread.h"

typedef int (*read_start_fn)(uv_stream_t *, uv_alloc_cb, uv_read_cb);

static read_start_fn real_read_start;
static void *h2o_base; /* where libh2o is mapped (dladdr's dli_fbase) */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
    real_read_start = (read_start_fn)dlsym(RTLD_NEXT, "uv_read_start");
    if (real_read_start == NULL) {
        fprintf(stderr, "poe-gateway: uv_read_start not found in libuv: %s\n", dlerror());
        abort();
    }
    Dl_info info;
    void *h2o_fn = dlsym(RTLD_DEFAULT, "h2o_socket_read_start");
    if (h2o_fn != NULL && dladdr(h2o_fn, &info) != 0)
        h2o_base = info.dli_fbase;
}

/* Set once, before any read, by pgw_uvread_observe. */
static pgw_uvread_observer_t observer;

/* The callbacks seen so far: `orig` is set last (release), once `use` (the trampoline, or the callback itself when it
 * is not libh2o's) is in place; readers need no lock. */
#define MAX_CALLBACKS 8
static struct {
    _Atomic(uv_read_cb) orig;
    uv_read_cb use;
} seen[MAX_CALLBACKS];
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;

#define TRAMPOLINE(i)                                                                                                   \
    static void trampoline##i(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)                                   \
    {                                                                                                                   \
        if (nread == 0)                                                                                                 \
            return;                                                                                                     \
        atomic_load_explicit(&seen[i].orig, memory_order_relaxed)(stream, nread, buf);                                 \
        if (observer != NULL && !uv_is_closing((uv_handle_t *)stream))                                                  \
            observer(stream);                                                                                           \
    }
TRAMPOLINE(0)
TRAMPOLINE(1)
TRAMPOLINE(2)
TRAMPOLINE(3)
TRAMPOLINE(4)
TRAMPOLINE(5)
TRAMPOLINE(6)
TRAMPOLINE(7)
static const uv_read_cb trampolines[MAX_CALLBACKS] = {trampoline0, trampoline1, trampoline2, trampoline3,
                                                      trampoline4, trampoline5, trampoline6, trampoline7};

static int is_h2o(uv_read_cb cb)
{
    Dl_info info;
    return h2o_base != NULL && dladdr((void *)cb, &info) != 0 && info.dli_fbase == h2o_base;
}

static uv_read_cb lookup(uv_read_cb cb)
{
    for (size_t i = 0; i < MAX_CALLBACKS; i++) {
        uv_read_cb orig = atomic_load_explicit(&seen[i].orig, memory_order_acquire);
        if (orig == cb)
            return seen[i].use;
        if (orig == NULL)
            break;
    }
    return NULL;
}

static uv_read_cb wrap(uv_read_cb cb)
{
    uv_read_cb use;
    if (cb == NULL)
        return NULL;
    if ((use = lookup(cb)) != NULL)
        return use;
    pthread_mutex_lock(&seen_lock);
    if ((use = lookup(cb)) == NULL) {
        use = cb; /* the table is full: passed on unwrapped */
        for (size_t i = 0; i < MAX_CALLBACKS; i++) {
            if (atomic_load_explicit(&seen[i].orig, memory_order_relaxed) == NULL) {
                use = is_h2o(cb) ? trampolines[i] : cb;
                seen[i].use = use;
                atomic_store_explicit(&seen[i].orig, cb, memory_order_release);
                break;
            }
        }
    }
    pthread_mutex_unlock(&seen_lock);
    return use;
}

int uv_read_start(uv_stream_t *stream, uv_alloc_cb alloc_cb, uv_read_cb read_cb)
{
    pthread_once(&once, init);
    return real_read_start(stream, alloc_cb, wrap(read_cb));
}

int pgw_uvread_fix_active(void)
{
    pthread_once(&once, init);
    return h2o_base != NULL && dlsym(RTLD_DEFAULT, "uv_read_start") == (void *)uv_read_start;
}

void pgw_uvread_observe(pgw_uvread_observer_t cb)
{
    observer = cb;
}
