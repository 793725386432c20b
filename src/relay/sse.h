/* poe-gateway: MIT licence. Incremental reader of text/event-stream: bytes in any split, whole events out. */
#ifndef PGW_SSE_H
#define PGW_SSE_H

#include <stddef.h>
#include <h2o/memory.h>

/**
 * Called once per complete event (a blank line ended it). `event` is the last `event:` field ("" when none); `data` is
 * the `data:` lines joined by '\n'. Both are valid only during the call. Return 0 to go on, -1 to stop the reader.
 */
typedef int (*pgw_sse_event_cb)(void *ctx, h2o_iovec_t event, h2o_iovec_t data);

typedef struct st_pgw_sse_reader_t {
    h2o_buffer_t *line;  /* the incomplete line carried over between feeds */
    h2o_buffer_t *event; /* the current event's name */
    h2o_buffer_t *data;  /* the current event's data */
    int has_fields;      /* a field was seen since the last dispatch */
    size_t data_lines;   /* data lines in the current event */
    int last_was_cr;     /* the previous feed ended with '\r' (a following '\n' belongs to it) */
    size_t max_event;    /* events larger than this are an error (0 = no limit) */
    size_t event_end;    /* during a callback: how many bytes of the current feed come up to the end of the blank line
                          * that ended the event (pgw_sse_reader_event_end) */
} pgw_sse_reader_t;

void pgw_sse_reader_init(pgw_sse_reader_t *r, size_t max_event);
void pgw_sse_reader_dispose(pgw_sse_reader_t *r);

/**
 * Feeds bytes. Lines end with "\n", "\r\n" or "\r"; comment lines (":") are skipped; a blank line dispatches the
 * event when it has fields. Returns 0, or -1 when a callback stopped the reader or an event exceeded max_event.
 */
int pgw_sse_reader_feed(pgw_sse_reader_t *r, const char *bytes, size_t len, pgw_sse_event_cb cb, void *ctx);

/**
 * Returns 1 when everything fed so far ends on an event boundary (no partial line, no undispatched field): the point
 * where the writer may insert an event of its own.
 */
int pgw_sse_reader_at_boundary(const pgw_sse_reader_t *r);

/**
 * Only from inside an event callback: the offset in the bytes of the current pgw_sse_reader_feed just past the line end
 * that dispatched the event, so that a relay can pass on the event's own bytes. (A "\r\n" split between two feeds ends
 * at its "\r"; the "\n" then starts the next feed, a blank line to any reader.)
 */
static inline size_t pgw_sse_reader_event_end(const pgw_sse_reader_t *r)
{
    return r->event_end;
}

#endif
