/* poe-gateway: MIT licence. Incremental reader of text/event-stream: bytes in any split, whole events out.
 *
 * States: the reader is always "inside a line" whose bytes so far sit in r->line. Each complete line is one of: blank
 * (dispatch the pending event, if it has any field), a comment (":..."), or a field "name: value" / "name" of which
 * only `event` and `data` are kept (`id` and `retry` mean nothing to a gateway). Partial lines survive across feeds, so
 * the output does not depend on how the input was split. Not handled on purpose: the BOM, and `id`/`retry` fields.
 */
#include <string.h>
#include <h2o/socket.h>
#include "common/json.h"
#include "relay/sse.h"

void pgw_sse_reader_init(pgw_sse_reader_t *r, size_t max_event)
{
    memset(r, 0, sizeof(*r));
    h2o_buffer_init(&r->line, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&r->event, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&r->data, &h2o_socket_buffer_prototype);
    r->max_event = max_event;
}

void pgw_sse_reader_dispose(pgw_sse_reader_t *r)
{
    h2o_buffer_dispose(&r->line);
    h2o_buffer_dispose(&r->event);
    h2o_buffer_dispose(&r->data);
}

static int dispatch(pgw_sse_reader_t *r, pgw_sse_event_cb cb, void *ctx)
{
    int ret = 0;
    if (r->has_fields)
        ret = cb(ctx, h2o_iovec_init(r->event->bytes, r->event->size), h2o_iovec_init(r->data->bytes, r->data->size));
    r->event->size = 0;
    r->data->size = 0;
    r->has_fields = 0;
    r->data_lines = 0;
    return ret;
}

static int on_line(pgw_sse_reader_t *r, const char *line, size_t len, pgw_sse_event_cb cb, void *ctx)
{
    if (len == 0)
        return dispatch(r, cb, ctx);
    if (line[0] == ':')
        return 0;
    const char *colon = memchr(line, ':', len);
    size_t nlen = colon != NULL ? (size_t)(colon - line) : len;
    const char *value = colon != NULL ? colon + 1 : line + len;
    if (value != line + len && *value == ' ')
        ++value;
    size_t vlen = line + len - value;

    if (nlen == 5 && memcmp(line, "event", 5) == 0) {
        r->event->size = 0;
        pgw_buf_append(&r->event, value, vlen);
        r->has_fields = 1;
    } else if (nlen == 4 && memcmp(line, "data", 4) == 0) {
        if (r->data_lines++ != 0)
            pgw_buf_append(&r->data, "\n", 1);
        pgw_buf_append(&r->data, value, vlen);
        r->has_fields = 1;
    } else {
        r->has_fields = 1; /* id, retry, unknown: they still make the event non-empty */
    }
    if (r->max_event != 0 && r->data->size + r->event->size > r->max_event)
        return -1;
    return 0;
}

int pgw_sse_reader_feed(pgw_sse_reader_t *r, const char *bytes, size_t len, pgw_sse_event_cb cb, void *ctx)
{
    const char *p = bytes, *end = bytes + len;

    if (p == end)
        return 0;
    if (r->last_was_cr && *p == '\n')
        ++p;
    r->last_was_cr = 0;
    while (p != end) {
        const char *eol = p;
        while (eol != end && *eol != '\n' && *eol != '\r')
            ++eol;
        if (eol == end) {
            pgw_buf_append(&r->line, p, end - p);
            if (r->max_event != 0 && r->line->size > r->max_event)
                return -1;
            break;
        }
        const char *next = eol + 1;
        if (*eol == '\r' && next != end && *next == '\n')
            ++next;
        r->event_end = (size_t)(next - bytes);
        int ret;
        if (r->line->size != 0) {
            pgw_buf_append(&r->line, p, eol - p);
            ret = on_line(r, r->line->bytes, r->line->size, cb, ctx);
            r->line->size = 0;
        } else {
            ret = on_line(r, p, eol - p, cb, ctx);
        }
        if (ret != 0)
            return -1;
        if (*eol == '\r' && eol + 1 == end)
            r->last_was_cr = 1;
        p = next;
    }
    return 0;
}

int pgw_sse_reader_at_boundary(const pgw_sse_reader_t *r)
{
    return r->line->size == 0 && !r->has_fields;
}
