/* poe-gateway: MIT licence. A stand-in for klib's khash.h, which <h2o/http2_internal.h> includes but Debian's libh2o-dev
 * does not ship. It declares only the names that header needs to compile. The gateway reads a few fields of libh2o's
 * HTTP/2 connection and stream (src/serve/bodies.c) and never touches the stream table those names belong to: the connection
 * holds the table through a pointer, so its layout does not matter here. Using h2o_http2_conn_get_stream() fails to link,
 * by design (pgw_khash_unavailable is defined nowhere). */
#ifndef PGW_COMPAT_KHASH_H
#define PGW_COMPAT_KHASH_H

#include <stdint.h>

typedef uint32_t khint_t;
typedef khint_t khiter_t;

khiter_t pgw_khash_unavailable(void);

#define KHASH_MAP_INIT_INT64(name, khval_t) typedef struct kh_##name##_s kh_##name##_t;
#define khash_t(name) kh_##name##_t
#define kh_get(name, h, k) ((void)(h), (void)(k), pgw_khash_unavailable())
#define kh_end(h) ((void)(h), (khiter_t)0)
#define kh_val(h, x) ((void)(h), (void)(x), (void *)0)

#endif
