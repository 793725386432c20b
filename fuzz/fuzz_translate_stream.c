/* poe-gateway: MIT licence. libFuzzer target: the stream translator (src/translate/translate_stream.c) behind the SSE reader
 * (src/relay/sse.c), as the translation route drives them.
 *
 * Input: 1 flag byte (buffer_tools, stop sequences, known tools, how the upstream ends, when a commit is forced, web search), 4
 * split-size bytes (a first byte of 0 means: every byte on its own), then Poe's bytes. They are run twice, in one feed
 * and split; the client's bytes and every caller-facing result must be the same (translators have no clock and no
 * randomness, and the framing must not leak into the output). Each run checks the framing of
 * docs/streams.md#the-output-grammar: every frame is "event: T\ndata: <valid JSON>\n\n", nothing is written once the stream
 * is done, a failure names a status >= 400, no search block unless the request searched. A third run, whole, with the
 * chunks read by yajl alone (fuzz/translate_stream_yajl.c, without src/common/json_reader.c) must give the same bytes. */
#include <h2o/socket.h>
#include "common/errors.h"
#include "fuzz.h"
#include "common/json.h"
#include "relay/sse.h"
#include "translate/translate.h"

#define MSG_ID "msg_4f6a0c2e9b1d7a3c5e8f0b2d"

/* the stream translator, and its build whose chunks are read by yajl alone (fuzz/translate_stream_yajl.c) */
#define API(suffix)                                                                                                                \
    {                                                                                                                              \
        pgw_stream_translator_create##suffix, pgw_stream_translator_destroy##suffix, pgw_stream_translator_feed##suffix,           \
            pgw_stream_translator_commit##suffix, pgw_stream_translator_committed##suffix,                                         \
            pgw_stream_translator_awaiting_usage##suffix, pgw_stream_translator_finish##suffix,                                    \
            pgw_stream_translator_failure##suffix, pgw_stream_translator_usage##suffix,                                            \
            pgw_stream_translator_wants_buffer_tools##suffix                                                                       \
    }
struct api {
    pgw_stream_translator_t *(*create)(const pgw_response_opts_t *);
    void (*destroy)(pgw_stream_translator_t *);
    pgw_stream_status_t (*feed)(pgw_stream_translator_t *, const char *, size_t, h2o_buffer_t **);
    void (*commit)(pgw_stream_translator_t *, h2o_buffer_t **);
    int (*committed)(const pgw_stream_translator_t *);
    int (*awaiting_usage)(const pgw_stream_translator_t *);
    pgw_stream_status_t (*finish)(pgw_stream_translator_t *, int, const char *, const char *, h2o_buffer_t **);
    const pgw_upstream_failure_t *(*failure)(const pgw_stream_translator_t *);
    void (*usage)(const pgw_stream_translator_t *, long long *, long long *, long long *, long long *);
    int (*wants_buffer_tools)(const pgw_stream_translator_t *);
};
pgw_stream_translator_t *pgw_stream_translator_create_yajl(const pgw_response_opts_t *opts);
void pgw_stream_translator_destroy_yajl(pgw_stream_translator_t *t);
pgw_stream_status_t pgw_stream_translator_feed_yajl(pgw_stream_translator_t *t, const char *data, size_t len, h2o_buffer_t **out);
void pgw_stream_translator_commit_yajl(pgw_stream_translator_t *t, h2o_buffer_t **out);
int pgw_stream_translator_committed_yajl(const pgw_stream_translator_t *t);
int pgw_stream_translator_awaiting_usage_yajl(const pgw_stream_translator_t *t);
pgw_stream_status_t pgw_stream_translator_finish_yajl(pgw_stream_translator_t *t, int clean, const char *errtype,
                                                      const char *message, h2o_buffer_t **out);
const pgw_upstream_failure_t *pgw_stream_translator_failure_yajl(const pgw_stream_translator_t *t);
void pgw_stream_translator_usage_yajl(const pgw_stream_translator_t *t, long long *input, long long *output, long long *cache_read,
                                      long long *cache_creation);
int pgw_stream_translator_wants_buffer_tools_yajl(const pgw_stream_translator_t *t);
static const struct api reader_api = API(), yajl_api = API(_yajl);

struct run {
    const struct api *api;
    pgw_stream_translator_t *t;
    h2o_buffer_t *out;
    pgw_stream_status_t status;
    size_t events, commit_at;
};

static void note(struct run *r, pgw_stream_status_t st, size_t before)
{
    if (r->status != PGW_STREAM_CONTINUE)
        FUZZ_ASSERT(r->out->size == before, "%zu bytes written after the end", r->out->size - before);
    else
        r->status = st;
}

static int on_event(void *ctx, h2o_iovec_t event, h2o_iovec_t data)
{
    struct run *r = ctx;
    size_t before = r->out->size;
    note(r, r->api->feed(r->t, data.base, data.len, &r->out), before);
    if (++r->events == r->commit_at) {
        before = r->out->size;
        r->api->commit(r->t, &r->out);
        if (r->status != PGW_STREAM_CONTINUE)
            FUZZ_ASSERT(r->out->size == before, "commit wrote after the end");
    }
    (void)r->api->awaiting_usage(r->t);
    return 0;
}

static void check_frames(const char *s, size_t len)
{
    if (len == 0)
        return; /* an empty h2o_buffer_t has no bytes at all */
    const char *end = s + len;
    while (s != end) {
        FUZZ_ASSERT(end - s > 7 && memcmp(s, "event: ", 7) == 0, "a frame does not start with 'event: '");
        const char *nl = memchr(s, '\n', end - s);
        FUZZ_ASSERT(nl != NULL && end - nl > 6 && memcmp(nl + 1, "data: ", 6) == 0, "no data line");
        const char *json = nl + 7;
        const char *stop = memmem(json, end - json, "\n\n", 2);
        FUZZ_ASSERT(stop != NULL, "a frame does not end with a blank line");
        FUZZ_ASSERT(memchr(json, '\n', stop - json) == NULL, "a data line holds a newline");
        FUZZ_ASSERT(fuzz_json_valid(json, stop - json), "invalid JSON in a frame: %.*s", (int)(stop - json > 2000 ? 2000 : stop - json),
                    json);
        s = stop + 2;
    }
}

/* Plays the stream and returns the transcript: the bytes written, then one line per caller-facing result. */
static h2o_buffer_t *play(const struct api *api, const pgw_response_opts_t *opts, const char *bytes, size_t len,
                          const uint8_t *sizes, int end_mode, size_t commit_at)
{
    struct run r = {api, api->create(opts), NULL, PGW_STREAM_CONTINUE, 0, commit_at};
    h2o_buffer_init(&r.out, &h2o_socket_buffer_prototype);
    pgw_sse_reader_t reader;
    pgw_sse_reader_init(&reader, 0); /* no limit: a limit can trip earlier on a split line */
    int broken = 0;

    if (commit_at == 0)
        api->commit(r.t, &r.out);
    for (size_t off = 0, i = 0; off < len && !broken; ++i) {
        size_t n = sizes == NULL ? len : sizes[0] == 0 ? 1 : (size_t)sizes[i % 4];
        if (n == 0)
            n = 1;
        if (n > len - off)
            n = len - off;
        broken = pgw_sse_reader_feed(&reader, bytes + off, n, on_event, &r) != 0;
        off += n;
    }
    size_t before = r.out->size;
    switch (end_mode) {
    case 0:
        note(&r, api->finish(r.t, 1, NULL, NULL, &r.out), before);
        break;
    case 1:
        note(&r, api->finish(r.t, 0, NULL, "the connection to Poe was reset", &r.out), before);
        break;
    case 2:
        note(&r, api->finish(r.t, 0, PGW_ERR_TIMEOUT, "Poe sent nothing for 300 s", &r.out), before);
        break;
    default:
        break; /* the client went away: no finish */
    }
    before = r.out->size;
    if (end_mode != 3) {
        FUZZ_ASSERT(r.status != PGW_STREAM_CONTINUE, "finish left the stream open");
        /* finish is idempotent */
        api->finish(r.t, 1, NULL, NULL, &r.out);
        FUZZ_ASSERT(r.out->size == before, "a second finish wrote");
    }

    if (r.status == PGW_STREAM_FAILED_EARLY) {
        const pgw_upstream_failure_t *f = api->failure(r.t);
        FUZZ_ASSERT(f->status >= 400 && f->status <= 599, "failure status %d", f->status);
        FUZZ_ASSERT(f->type != NULL && memchr(f->message, '\0', sizeof(f->message)) != NULL, "failure without type or message");
        FUZZ_ASSERT(!api->committed(r.t), "failed early after the commit");
        pgw_buf_append_lit(&r.out, "\n--failed ");
        pgw_json_append_int(&r.out, f->status);
        pgw_buf_append_str(&r.out, f->type);
        pgw_buf_append_str(&r.out, f->message);
    } else {
        check_frames(r.out->bytes, r.out->size);
    }
    long long in, out, cr, cc;
    api->usage(r.t, &in, &out, &cr, &cc);
    char line[160];
    snprintf(line, sizeof(line), "\n--status %d committed %d usage %lld %lld %lld %lld buffer_tools %d broken %d", (int)r.status,
             api->committed(r.t), in, out, cr, cc, api->wants_buffer_tools(r.t), broken);
    pgw_buf_append_str(&r.out, line);
    pgw_sse_reader_dispose(&reader);
    api->destroy(r.t);
    return r.out;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_logs();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t flags = fuzz_take(&data, &size);
    uint8_t sizes[4];
    for (int i = 0; i != 4; ++i)
        sizes[i] = fuzz_take(&data, &size);

    pgw_toolnames_t names = {NULL};
    pgw_response_opts_t opts = {MSG_ID, "gpt-5.4-mini", 1000, &names};
    opts.buffer_tools = flags & 1;
    if (flags & 2) {
        opts.stop_sequences[0] = "###";
        opts.stop_sequences[1] = "END";
    }
    if (flags & 4) {
        static const char *tools[] = {"Read", "mcp__server__tool.with.dots", "Bash", ("a-very-long-tool-name-that-is-longer-than-"
                                                                                     "sixty-four-characters-and-gets-hashed")};
        for (size_t i = 0; i != sizeof(tools) / sizeof(tools[0]); ++i)
            pgw_toolnames_add(&names, tools[i], strlen(tools[i]));
    }
    opts.web_search = flags >> 7;
    int end_mode = (flags >> 3) & 3;
    size_t commit_at = (flags >> 5) & 3;
    commit_at = commit_at == 1 ? 0 : commit_at == 0 ? SIZE_MAX : commit_at == 2 ? 1 : 3;

    char *bytes = malloc(size ? size : 1);
    memcpy(bytes, data, size);
    h2o_buffer_t *whole = play(&reader_api, &opts, bytes, size, NULL, end_mode, commit_at);
    h2o_buffer_t *split = play(&reader_api, &opts, bytes, size, sizes, end_mode, commit_at);
    h2o_buffer_t *by_yajl = play(&yajl_api, &opts, bytes, size, NULL, end_mode, commit_at);
    FUZZ_ASSERT(whole->size == by_yajl->size && (whole->size == 0 || memcmp(whole->bytes, by_yajl->bytes, whole->size) == 0),
                "the output depends on the chunks' reader:\n--- pgw_json_read\n%.*s\n--- yajl\n%.*s",
                (int)(whole->size > 3000 ? 3000 : whole->size), whole->bytes, (int)(by_yajl->size > 3000 ? 3000 : by_yajl->size),
                by_yajl->bytes);
    h2o_buffer_dispose(&by_yajl);
    /* text and arguments are escaped in their deltas: an unescaped block type is one the translator wrote */
    FUZZ_ASSERT(opts.web_search || memmem(whole->bytes, whole->size, H2O_STRLIT("\"type\":\"server_tool_use\"")) == NULL,
                "a search block for a request that did not search");
    FUZZ_ASSERT(whole->size == split->size && (whole->size == 0 || memcmp(whole->bytes, split->bytes, whole->size) == 0),
                "the output depends on the split:\n--- whole\n%.*s\n--- split\n%.*s", (int)(whole->size > 3000 ? 3000 : whole->size),
                whole->bytes, (int)(split->size > 3000 ? 3000 : split->size), split->bytes);
    h2o_buffer_dispose(&whole);
    h2o_buffer_dispose(&split);
    free(bytes);
    pgw_toolnames_dispose(&names);
    return 0;
}
