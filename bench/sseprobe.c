/* poe-gateway: MIT licence. sseprobe: holds many concurrent HTTP/1.1 event streams open and times every event.
 *
 * The benchmark's upstream (t/mock-poe with a script that has "stamp": true) writes CLOCK_MONOTONIC, in nanoseconds,
 * into each event at the moment it hands the event to its HTTP stack ("@ts:<19 digits>@" inside a text delta). This
 * probe runs on the same host, reads the stamps back as the events arrive and, per event, knows how long it took to
 * get here: straight from the upstream, or through a gateway, which relays (pass-through) or re-encodes (translation)
 * the text but keeps it. The difference between the two runs is what the gateway adds.
 *
 * Measures (nanoseconds, written as one JSON object on stdout):
 *   ttfe      request written -> first stamped event read, per stream
 *   delivery  stamp -> event read, per event
 *   gap       (read_i - read_i-1) - (stamp_i - stamp_i-1): how much longer the client waited between two events than
 *             the upstream did, per event after the first of a stream
 *   max_gap   the longest wait between two events of one stream (a stall shows here)
 * and counts streams, complete ones, events and errors (connect, status, short stream, broken, timeout).
 *
 * One thread, epoll, non-blocking sockets. Connection i starts after i * --stagger-us microseconds, so that paced
 * streams do not all tick in the same millisecond; each connection then runs requests back to back (keep-alive) until
 * --streams have been started, or until --duration-ms has passed. The response is parsed just enough: status line,
 * content-length or chunked framing.
 *
 * For the soak (bench/soak.mjs), two more behaviours:
 *   --body FILE, repeated: the streams take the bodies in turn (stream k sends body k mod N), so one run mixes route
 *             kinds; the JSON counts each body's streams apart.
 *   --abort-permille N: a stream is, with probability N/1000, abandoned by the client: the socket is closed part-way
 *             through writing the request ("write": the request never arrives whole), right after the request was
 *             written ("sent"), or after a random number of events, 0 included ("events"). An abandoned stream counts
 *             as aborted, never as an error; the next stream of that connection opens a new one. "requests_sent" counts
 *             the streams whose request was written whole: those are the ones a server can have accepted.
 * The choices come from a seeded generator (--seed), so a run can be repeated.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STAMP_PREFIX "@ts:"
#define STAMP_DIGITS 19
#define STAMP_LEN (sizeof(STAMP_PREFIX) - 1 + STAMP_DIGITS + 1)
#define HEAD_MAX 16384
#define MAX_BODIES 8

enum conn_state { C_IDLE, C_CONNECTING, C_SENDING, C_HEAD, C_BODY, C_DONE };
enum body_state { B_CHUNK_SIZE, B_CHUNK_DATA, B_CHUNK_CRLF, B_TRAILER, B_LENGTH };
enum abort_at { A_NONE, A_WRITE, A_SENT, A_EVENTS };

struct samples {
    int64_t *v;
    size_t n, cap;
    uint64_t seen; /* values offered; more than n when --max-samples keeps a uniform sample (reservoir) */
};

/* One request body, sent as a whole request prepared once. */
struct body {
    const char *file;
    char *request;
    size_t request_len;
    size_t started, sent, complete, aborted, aborted_write, errors;
};

struct conn {
    int fd;
    enum conn_state state;
    uint64_t start_at; /* when to connect (staggered start) */
    size_t sent;
    char head[HEAD_MAX];
    size_t head_len;
    int status;
    enum body_state body;
    uint64_t remaining; /* bytes left in the current chunk, or in a content-length body */
    char carry[STAMP_LEN + 8]; /* the tail of the last body bytes, for a stamp split across reads */
    size_t carry_len;
    char tail[16]; /* last bytes of the decoded body, to look for the end marker */
    size_t tail_len;
    int saw_end_marker;
    int close_after; /* the response said connection: close */
    uint64_t req_sent_at, last_read_at;
    int64_t last_stamp;
    uint64_t last_event_at;
    int64_t max_gap;
    size_t events;
    struct body *b;           /* the body this stream sends */
    enum abort_at abort_at;   /* where the client abandons this stream, if it does */
    size_t abort_after;       /* A_WRITE: bytes written before closing; A_EVENTS: events read before closing */
    int abort_due;            /* A_EVENTS: the events were read; close once this read is handled */
};

static struct {
    struct sockaddr_in addr;
    struct body bodies[MAX_BODIES];
    size_t num_bodies;
    size_t streams, concurrency, started, finished, complete;
    uint64_t stagger_ns, timeout_ns;
    uint64_t t0, deadline; /* deadline: no stream starts at or after it (0: --streams alone decides) */
    size_t expect_events;
    const char *end_marker;
    struct samples ttfe, delivery, gap, max_gap;
    size_t max_samples; /* 0: keep every sample */
    struct conn **ready; /* connections whose stream ended, waiting to start the next one */
    size_t num_ready;
    size_t events, err_connect, err_status, err_short, err_broken, err_timeout;
    size_t requests_sent, aborted_write, aborted_sent, aborted_events;
    unsigned abort_permille;
    uint64_t seed, rng;
    size_t log_errors; /* the first this many errors are described on stderr */
    int64_t worst_gap;
} g;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "sseprobe: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(2);
}

/* xorshift64*: the run's only source of chance, seeded by --seed */
static uint64_t rnd(void)
{
    g.rng ^= g.rng >> 12;
    g.rng ^= g.rng << 25;
    g.rng ^= g.rng >> 27;
    return g.rng * 2685821657736338717ull;
}

/* uniform in [0, n), n > 0 */
static size_t rnd_below(size_t n)
{
    return (size_t)(rnd() % n);
}

static void add(struct samples *s, int64_t v)
{
    ++s->seen;
    if (g.max_samples != 0 && s->n == g.max_samples) {
        /* reservoir sampling: every value offered so far is kept with the same probability */
        uint64_t i = rnd() % s->seen;
        if (i < s->n)
            s->v[i] = v;
        return;
    }
    if (s->n == s->cap) {
        s->cap = s->cap == 0 ? 4096 : s->cap * 2;
        if ((s->v = realloc(s->v, s->cap * sizeof(*s->v))) == NULL)
            die("%s", "out of memory");
    }
    s->v[s->n++] = v;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void print_samples(const char *name, struct samples *s, int last)
{
    static const double pct[] = {50, 90, 99, 99.9};
    static const char *const label[] = {"p50", "p90", "p99", "p999"};
    printf("\"%s\":{\"n\":%zu", name, s->n);
    if (s->seen != s->n)
        printf(",\"seen\":%" PRIu64, s->seen);
    if (s->n != 0) {
        qsort(s->v, s->n, sizeof(*s->v), cmp64);
        for (size_t i = 0; i != sizeof(pct) / sizeof(pct[0]); ++i) {
            size_t idx = (size_t)(pct[i] / 100 * (double)(s->n - 1) + 0.5);
            printf(",\"%s\":%" PRId64, label[i], s->v[idx]);
        }
        printf(",\"min\":%" PRId64 ",\"max\":%" PRId64, s->v[0], s->v[s->n - 1]);
    }
    printf("}%s", last ? "" : ",");
}

static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        die("cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    if (buf == NULL || fread(buf, 1, (size_t)size, fp) != (size_t)size)
        die("cannot read %s", path);
    fclose(fp);
    *len = (size_t)size;
    return buf;
}

/* Parses http://HOST:PORT/PATH (HOST a dotted IPv4 address); returns the path. */
static const char *parse_url(const char *url, char *host, size_t host_size)
{
    const char *p = url, *colon, *slash;
    int port;
    if (strncmp(p, "http://", 7) != 0)
        die("only http:// URLs: %s", url);
    p += 7;
    if ((colon = strchr(p, ':')) == NULL || (slash = strchr(colon, '/')) == NULL || (size_t)(colon - p) >= host_size)
        die("URL must be http://ADDR:PORT/PATH: %s", url);
    memcpy(host, p, colon - p);
    host[colon - p] = '\0';
    port = atoi(colon + 1);
    g.addr.sin_family = AF_INET;
    g.addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &g.addr.sin_addr) != 1)
        die("not an IPv4 address: %s", host);
    return slash;
}

static void conn_close(int ep, struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
}

/* Whether another stream may start now. */
static int may_start(uint64_t now)
{
    return g.started < g.streams && (g.deadline == 0 || now < g.deadline);
}

static const char *state_name(enum conn_state s)
{
    static const char *const names[] = {"idle", "connecting", "sending", "head", "body", "done"};
    return names[s];
}

/* The connection's stream is over: it starts the next one when it may (closed connections reconnect then). */
static void conn_release(int ep, struct conn *c)
{
    c->state = C_IDLE;
    if (may_start(now_ns()))
        g.ready[g.num_ready++] = c;
    else
        conn_close(ep, c);
}

/* A response ended (well or not); the connection starts the next request or goes idle. */
static void stream_end(int ep, struct conn *c, int ok, size_t *err_counter)
{
    ++g.finished;
    if (c->events != 0)
        add(&g.max_gap, c->max_gap);
    if (c->max_gap > g.worst_gap)
        g.worst_gap = c->max_gap;
    if (ok && g.expect_events != 0 && c->events != g.expect_events) {
        ok = 0;
        err_counter = &g.err_short;
    }
    if (ok && g.end_marker != NULL && !c->saw_end_marker) {
        ok = 0;
        err_counter = &g.err_short;
    }
    if (ok) {
        ++g.complete;
        ++c->b->complete;
    } else {
        ++*err_counter;
        ++c->b->errors;
        if (g.log_errors != 0) {
            static const char *const kinds[] = {"connect", "status", "short", "broken", "timeout"};
            size_t *const counters[] = {&g.err_connect, &g.err_status, &g.err_short, &g.err_broken, &g.err_timeout};
            const char *kind = "?";
            for (size_t i = 0; i != sizeof(kinds) / sizeof(kinds[0]); ++i)
                if (err_counter == counters[i])
                    kind = kinds[i];
            --g.log_errors;
            fprintf(stderr,
                    "sseprobe: error %s at %.3f s: body %s, state %s, status %d, request %zu/%zu bytes written, %zu events, "
                    "end marker %s\n",
                    kind, (double)(now_ns() - g.t0) / 1e9, c->b->file, state_name(c->state), c->status, c->sent,
                    c->b->request_len, c->events, c->saw_end_marker ? "seen" : "not seen");
        }
    }
    if (!ok || c->state != C_DONE || c->close_after)
        conn_close(ep, c);
    conn_release(ep, c);
}

/* The client abandons the stream (--abort-permille): close the socket wherever the stream is. */
static void stream_abort(int ep, struct conn *c)
{
    ++g.finished;
    ++c->b->aborted;
    switch (c->abort_at) {
    case A_WRITE:
        ++g.aborted_write;
        ++c->b->aborted_write;
        break;
    case A_SENT:
        ++g.aborted_sent;
        break;
    default:
        ++g.aborted_events;
        break;
    }
    conn_close(ep, c);
    conn_release(ep, c);
}

static int conn_connect(int ep, struct conn *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&g.addr, sizeof(g.addr)) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

static void request_start(int ep, struct conn *c)
{
    c->b = g.bodies + g.started % g.num_bodies;
    ++c->b->started;
    ++g.started;
    c->abort_at = A_NONE;
    c->abort_after = 0;
    c->abort_due = 0;
    if (g.abort_permille != 0 && rnd_below(1000) < g.abort_permille) {
        /* a tenth part-way through the request, a tenth right after it, the rest after 0 to K-1 events */
        size_t where = rnd_below(10);
        if (where == 0) {
            c->abort_at = A_WRITE;
            c->abort_after = rnd_below(c->b->request_len);
        } else if (where == 1) {
            c->abort_at = A_SENT;
        } else {
            c->abort_at = A_EVENTS;
            c->abort_after = rnd_below(g.expect_events != 0 ? g.expect_events : 64);
        }
    }
    c->sent = 0;
    c->head_len = 0;
    c->status = 0;
    c->carry_len = 0;
    c->tail_len = 0;
    c->saw_end_marker = 0;
    c->close_after = 0;
    c->last_stamp = -1;
    c->max_gap = 0;
    c->events = 0;
    c->req_sent_at = 0;
    c->last_read_at = now_ns();
    if (c->fd < 0) {
        if (conn_connect(ep, c) != 0) {
            c->state = C_DONE;
            stream_end(ep, c, 0, &g.err_connect);
            return;
        }
        c->state = C_CONNECTING;
    } else {
        c->state = C_SENDING;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

static void on_stamp(struct conn *c, const char *digits, uint64_t at)
{
    int64_t stamp = 0;
    for (size_t i = 0; i != STAMP_DIGITS; ++i) {
        if (digits[i] < '0' || digits[i] > '9')
            return;
        stamp = stamp * 10 + (digits[i] - '0');
    }
    ++g.events;
    ++c->events;
    if (c->abort_at == A_EVENTS && c->events == c->abort_after)
        c->abort_due = 1;
    add(&g.delivery, (int64_t)at - stamp);
    if (c->last_stamp < 0) {
        add(&g.ttfe, (int64_t)(at - c->req_sent_at));
    } else {
        add(&g.gap, ((int64_t)at - (int64_t)c->last_event_at) - (stamp - c->last_stamp));
        if ((int64_t)(at - c->last_event_at) > c->max_gap)
            c->max_gap = (int64_t)(at - c->last_event_at);
    }
    c->last_stamp = stamp;
    c->last_event_at = at;
}

/* Body bytes after the framing is removed: look for stamps (across read boundaries too) and the end marker. */
static void on_body_bytes(struct conn *c, const char *p, size_t len, uint64_t at)
{
    char buf[sizeof(c->carry) + 4096];
    while (len != 0) {
        size_t take = len < 4096 ? len : 4096;
        memcpy(buf, c->carry, c->carry_len);
        memcpy(buf + c->carry_len, p, take);
        size_t n = c->carry_len + take;
        const char *s = buf, *end = buf + n;
        while ((s = memmem(s, end - s, STAMP_PREFIX, sizeof(STAMP_PREFIX) - 1)) != NULL) {
            if ((size_t)(end - s) < STAMP_LEN)
                break;
            if (s[STAMP_LEN - 1] == '@')
                on_stamp(c, s + sizeof(STAMP_PREFIX) - 1, at);
            s += STAMP_LEN;
        }
        /* keep what could be the start of a stamp that is not complete yet: from a prefix found too close to the end,
         * or else the last bytes, shorter than a prefix */
        size_t keep;
        if (s != NULL)
            keep = (size_t)(end - s);
        else
            keep = n < sizeof(STAMP_PREFIX) - 2 ? n : sizeof(STAMP_PREFIX) - 2;
        memmove(c->carry, end - keep, keep);
        c->carry_len = keep;
        if (g.end_marker != NULL && !c->saw_end_marker) {
            size_t ml = strlen(g.end_marker);
            char m[sizeof(c->tail) + 4096];
            memcpy(m, c->tail, c->tail_len);
            memcpy(m + c->tail_len, p, take);
            size_t mn = c->tail_len + take;
            if (memmem(m, mn, g.end_marker, ml) != NULL)
                c->saw_end_marker = 1;
            size_t tk = mn < ml - 1 ? mn : ml - 1;
            if (tk > sizeof(c->tail))
                tk = sizeof(c->tail);
            memmove(c->tail, m + mn - tk, tk);
            c->tail_len = tk;
        }
        p += take;
        len -= take;
    }
}

/* Feeds framed body bytes; returns 1 when the response is complete. */
static int on_framed(struct conn *c, const char *p, size_t len, uint64_t at)
{
    while (len != 0) {
        switch (c->body) {
        case B_LENGTH: {
            size_t n = len < c->remaining ? len : (size_t)c->remaining;
            on_body_bytes(c, p, n, at);
            c->remaining -= n;
            p += n;
            len -= n;
            if (c->remaining == 0)
                return 1;
            break;
        }
        case B_CHUNK_SIZE:
        case B_TRAILER: {
            /* accumulate one line in head[] (reused: the head is parsed by now) */
            const char *nl = memchr(p, '\n', len);
            size_t n = nl != NULL ? (size_t)(nl - p) + 1 : len;
            if (c->head_len + n >= sizeof(c->head))
                return -1;
            memcpy(c->head + c->head_len, p, n);
            c->head_len += n;
            p += n;
            len -= n;
            if (nl == NULL)
                break;
            c->head[c->head_len] = '\0';
            if (c->body == B_TRAILER) {
                int blank = c->head_len <= 2;
                c->head_len = 0;
                if (blank)
                    return 1;
                break;
            }
            char *end;
            c->remaining = strtoull(c->head, &end, 16);
            if (end == c->head)
                return -1;
            c->head_len = 0;
            c->body = c->remaining == 0 ? B_TRAILER : B_CHUNK_DATA;
            break;
        }
        case B_CHUNK_DATA: {
            size_t n = len < c->remaining ? len : (size_t)c->remaining;
            on_body_bytes(c, p, n, at);
            c->remaining -= n;
            p += n;
            len -= n;
            if (c->remaining == 0) {
                c->body = B_CHUNK_CRLF;
                c->remaining = 2;
            }
            break;
        }
        case B_CHUNK_CRLF: {
            size_t n = len < c->remaining ? len : (size_t)c->remaining;
            c->remaining -= n;
            p += n;
            len -= n;
            if (c->remaining == 0)
                c->body = B_CHUNK_SIZE;
            break;
        }
        }
    }
    return 0;
}

/* Parses the response head in c->head; returns the offset of the body, 0 if incomplete, -1 on error. */
static ssize_t parse_head(struct conn *c)
{
    char *end = memmem(c->head, c->head_len, "\r\n\r\n", 4);
    if (end == NULL)
        return c->head_len >= sizeof(c->head) - 1 ? -1 : 0;
    *end = '\0';
    if (sscanf(c->head, "HTTP/1.%*d %d", &c->status) != 1)
        return -1;
    c->body = B_LENGTH;
    c->remaining = UINT64_MAX;
    for (char *line = strstr(c->head, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n")) {
        char *l = line + 2;
        if (strncasecmp(l, "content-length:", 15) == 0)
            c->remaining = strtoull(l + 15, NULL, 10);
        else if (strncasecmp(l, "transfer-encoding:", 18) == 0 && strcasestr(l, "chunked") != NULL)
            c->body = B_CHUNK_SIZE;
        else if (strncasecmp(l, "connection:", 11) == 0 && strcasestr(l, "close") != NULL)
            c->close_after = 1;
    }
    if (c->body == B_LENGTH && c->remaining == UINT64_MAX)
        return -1; /* read-until-close bodies are not used by either side */
    return (end + 4) - c->head;
}

static void on_readable(int ep, struct conn *c)
{
    static char buf[65536];
    for (;;) {
        ssize_t r = read(c->fd, buf, sizeof(buf));
        uint64_t at = now_ns();
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            stream_end(ep, c, 0, &g.err_broken);
            return;
        }
        if (r == 0) {
            stream_end(ep, c, 0, c->state == C_HEAD && c->head_len == 0 && c->req_sent_at == 0 ? &g.err_connect : &g.err_broken);
            return;
        }
        c->last_read_at = at;
        const char *p = buf;
        size_t len = (size_t)r;
        if (c->state == C_HEAD) {
            size_t n = len < sizeof(c->head) - 1 - c->head_len ? len : sizeof(c->head) - 1 - c->head_len;
            memcpy(c->head + c->head_len, p, n);
            c->head_len += n;
            ssize_t off = parse_head(c);
            if (off < 0) {
                stream_end(ep, c, 0, &g.err_broken);
                return;
            }
            if (off == 0)
                continue;
            /* the bytes after the head, in this read, are body */
            size_t consumed_before = c->head_len - n;
            size_t body_at = (size_t)off - consumed_before;
            p += body_at;
            len -= body_at;
            c->head_len = 0;
            c->state = C_BODY;
            if (c->status != 200) {
                stream_end(ep, c, 0, &g.err_status);
                return;
            }
            if (c->abort_at == A_EVENTS && c->abort_after == 0) {
                stream_abort(ep, c);
                return;
            }
        }
        if (c->state == C_BODY && len != 0) {
            int done = on_framed(c, p, len, at);
            if (done < 0) {
                stream_end(ep, c, 0, &g.err_broken);
                return;
            }
            if (done) {
                c->state = C_DONE;
                stream_end(ep, c, 1, NULL);
                return;
            }
            if (c->abort_due) {
                stream_abort(ep, c);
                return;
            }
        } else if (c->state == C_BODY && c->body == B_LENGTH && c->remaining == 0) {
            c->state = C_DONE;
            stream_end(ep, c, 1, NULL);
            return;
        }
    }
}

static void on_writable(int ep, struct conn *c)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            stream_end(ep, c, 0, &g.err_connect);
            return;
        }
        c->state = C_SENDING;
    }
    while (c->state == C_SENDING) {
        size_t upto = c->abort_at == A_WRITE ? c->abort_after : c->b->request_len;
        if (c->sent == upto) { /* A_WRITE only: a full request is never written whole */
            stream_abort(ep, c);
            return;
        }
        ssize_t r = write(c->fd, c->b->request + c->sent, upto - c->sent);
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            stream_end(ep, c, 0, &g.err_broken);
            return;
        }
        c->sent += (size_t)r;
        if (c->sent == c->b->request_len) {
            ++g.requests_sent;
            ++c->b->sent;
            if (c->abort_at == A_SENT) {
                stream_abort(ep, c);
                return;
            }
            c->req_sent_at = now_ns();
            c->state = C_HEAD;
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        }
    }
}

static void usage(FILE *fp)
{
    fprintf(fp, "usage: sseprobe --url http://ADDR:PORT/PATH --body FILE [--body FILE]... [-H 'name: value']...\n"
                "                [--streams N] [--duration-ms D] [--concurrency C] [--stagger-us U] [--expect-events K]\n"
                "                [--end-marker TEXT] [--timeout-ms T] [--abort-permille N] [--seed S]\n"
                "                [--max-samples M] [--progress-ms P] [--log-errors E]\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},           {"body", required_argument, NULL, 'b'},
        {"header", required_argument, NULL, 'H'},        {"streams", required_argument, NULL, 'n'},
        {"concurrency", required_argument, NULL, 'c'},   {"stagger-us", required_argument, NULL, 's'},
        {"expect-events", required_argument, NULL, 'e'}, {"end-marker", required_argument, NULL, 'm'},
        {"timeout-ms", required_argument, NULL, 't'},    {"help", no_argument, NULL, 'h'},
        {"duration-ms", required_argument, NULL, 'D'},   {"abort-permille", required_argument, NULL, 'A'},
        {"seed", required_argument, NULL, 'S'},          {"max-samples", required_argument, NULL, 'M'},
        {"progress-ms", required_argument, NULL, 'P'},   {"log-errors", required_argument, NULL, 'E'},
        {NULL, 0, NULL, 0}};
    const char *url = NULL, *body_paths[MAX_BODIES], *path;
    char host[64], headers[8192] = "";
    size_t headers_len = 0, num_body_paths = 0;
    uint64_t duration_ns = 0, progress_ns = 0;
    int ch, streams_given = 0;

    g.seed = 1;
    g.streams = 1;
    g.concurrency = 1;
    g.timeout_ns = 60000000000ull;
    while ((ch = getopt_long(argc, argv, "H:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'u':
            url = optarg;
            break;
        case 'b':
            if (num_body_paths == MAX_BODIES)
                die("%s", "too many --body files");
            body_paths[num_body_paths++] = optarg;
            break;
        case 'H': {
            int n = snprintf(headers + headers_len, sizeof(headers) - headers_len, "%s\r\n", optarg);
            if (n < 0 || (size_t)n >= sizeof(headers) - headers_len)
                die("%s", "too many headers");
            headers_len += (size_t)n;
            break;
        }
        case 'n':
            g.streams = strtoul(optarg, NULL, 10);
            streams_given = 1;
            break;
        case 'c':
            g.concurrency = strtoul(optarg, NULL, 10);
            break;
        case 's':
            g.stagger_ns = strtoull(optarg, NULL, 10) * 1000;
            break;
        case 'e':
            g.expect_events = strtoul(optarg, NULL, 10);
            break;
        case 'm':
            g.end_marker = optarg;
            break;
        case 't':
            g.timeout_ns = strtoull(optarg, NULL, 10) * 1000000;
            break;
        case 'D':
            duration_ns = strtoull(optarg, NULL, 10) * 1000000;
            break;
        case 'A':
            g.abort_permille = (unsigned)strtoul(optarg, NULL, 10);
            if (g.abort_permille > 1000)
                die("%s", "--abort-permille is at most 1000");
            break;
        case 'S':
            g.seed = strtoull(optarg, NULL, 10);
            break;
        case 'M':
            g.max_samples = strtoul(optarg, NULL, 10);
            break;
        case 'P':
            progress_ns = strtoull(optarg, NULL, 10) * 1000000;
            break;
        case 'E':
            g.log_errors = strtoul(optarg, NULL, 10);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (url == NULL || num_body_paths == 0 || g.streams == 0 || g.concurrency == 0) {
        usage(stderr);
        return 2;
    }
    if (duration_ns != 0 && !streams_given)
        g.streams = SIZE_MAX; /* the duration alone ends the run */
    if (g.concurrency > g.streams)
        g.concurrency = g.streams;
    g.rng = g.seed * 0x9e3779b97f4a7c15ull + 1; /* never 0 */
    path = parse_url(url, host, sizeof(host));

    /* each request, written once and sent as it is on every stream that takes its body */
    for (size_t i = 0; i != num_body_paths; ++i) {
        struct body *b = g.bodies + i;
        size_t body_len;
        char *body = read_file(body_paths[i], &body_len);
        size_t cap = strlen(path) + strlen(host) + headers_len + body_len + 256;
        b->file = body_paths[i];
        b->request = malloc(cap);
        int n = snprintf(b->request, cap, "POST %s HTTP/1.1\r\nhost: %s:%u\r\ncontent-length: %zu\r\n%s\r\n", path, host,
                         (unsigned)ntohs(g.addr.sin_port), body_len, headers);
        memcpy(b->request + n, body, body_len);
        b->request_len = (size_t)n + body_len;
        free(body);
    }
    g.num_bodies = num_body_paths;

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct conn *conns = calloc(g.concurrency, sizeof(*conns));
    g.ready = calloc(g.concurrency, sizeof(*g.ready));
    uint64_t t0 = now_ns(), last_scan = t0, last_progress = t0;
    g.t0 = t0;
    if (duration_ns != 0)
        g.deadline = t0 + duration_ns;
    size_t next_initial = 0; /* connections start in index order, i * stagger after t0 */
    for (size_t i = 0; i != g.concurrency; ++i) {
        conns[i].fd = -1;
        conns[i].state = C_IDLE;
        conns[i].start_at = t0 + i * g.stagger_ns;
    }

    struct epoll_event events[256];
    for (;;) {
        uint64_t now = now_ns();
        while (g.num_ready != 0 && may_start(now))
            request_start(ep, g.ready[--g.num_ready]);
        if (!may_start(now))
            while (g.num_ready != 0) /* the run is over for the connections that wait: close them */
                conn_close(ep, g.ready[--g.num_ready]);
        while (next_initial != g.concurrency && conns[next_initial].start_at <= now && may_start(now))
            request_start(ep, conns + next_initial++);
        if (now - last_scan > 100000000) {
            last_scan = now;
            for (size_t i = 0; i != g.concurrency; ++i) {
                struct conn *c = conns + i;
                if (c->state != C_IDLE && c->state != C_DONE && (int64_t)(now - c->last_read_at) > (int64_t)g.timeout_ns)
                    stream_end(ep, c, 0, &g.err_timeout);
            }
        }
        if (progress_ns != 0 && now - last_progress >= progress_ns) {
            last_progress = now;
            fprintf(stderr,
                    "{\"progress_s\":%.3f,\"started\":%zu,\"requests_sent\":%zu,\"finished\":%zu,\"complete\":%zu,"
                    "\"aborted\":%zu,\"errors\":%zu,\"open\":%zu,\"events\":%zu}\n",
                    (double)(now - t0) / 1e9, g.started, g.requests_sent, g.finished, g.complete,
                    g.aborted_write + g.aborted_sent + g.aborted_events,
                    g.err_connect + g.err_status + g.err_short + g.err_broken + g.err_timeout, g.started - g.finished, g.events);
        }
        if (!may_start(now) && g.finished == g.started)
            break;
        int wait_ms = 100;
        if (next_initial != g.concurrency && may_start(now)) {
            uint64_t at = conns[next_initial].start_at;
            /* a staggered start needs finer than 1 ms: do not sleep through the last millisecond */
            wait_ms = at <= now + 1000000 ? 0 : (int)((at - now) / 1000000) - 1;
            if (wait_ms > 100)
                wait_ms = 100;
        }
        int nev = epoll_wait(ep, events, 256, wait_ms);
        for (int i = 0; i < nev; ++i) {
            struct conn *c = events[i].data.ptr;
            if (c->fd < 0 || c->state == C_IDLE)
                continue;
            if ((events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && (c->state == C_CONNECTING || c->state == C_SENDING))
                on_writable(ep, c);
            if (c->fd >= 0 && (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && (c->state == C_HEAD || c->state == C_BODY))
                on_readable(ep, c);
        }
    }
    double secs = (double)(now_ns() - t0) / 1e9;

    printf("{\"streams\":%zu,\"complete\":%zu,\"events\":%zu,\"seconds\":%.3f,\"errors\":{\"connect\":%zu,\"status\":%zu,"
           "\"short\":%zu,\"broken\":%zu,\"timeout\":%zu},\"worst_gap\":%" PRId64 ",",
           g.finished, g.complete, g.events, secs, g.err_connect, g.err_status, g.err_short, g.err_broken, g.err_timeout,
           g.worst_gap);
    printf("\"requests_sent\":%zu,\"aborted\":{\"write\":%zu,\"sent\":%zu,\"events\":%zu},\"seed\":%" PRIu64 ",\"bodies\":[",
           g.requests_sent, g.aborted_write, g.aborted_sent, g.aborted_events, g.seed);
    for (size_t i = 0; i != g.num_bodies; ++i) {
        const struct body *b = g.bodies + i;
        printf("%s{\"file\":\"%s\",\"started\":%zu,\"requests_sent\":%zu,\"complete\":%zu,\"aborted\":%zu,\"aborted_write\":%zu,\"errors\":%zu}",
               i == 0 ? "" : ",", b->file, b->started, b->sent, b->complete, b->aborted, b->aborted_write, b->errors);
    }
    printf("],");
    print_samples("ttfe", &g.ttfe, 0);
    print_samples("delivery", &g.delivery, 0);
    print_samples("gap", &g.gap, 0);
    print_samples("max_gap", &g.max_gap, 1);
    printf("}\n");
    return 0;
}
