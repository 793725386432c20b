/* poe-gateway: MIT licence. Unit tests for src/translate/translate_stream.c: golden streams under every kind of split, then the
 * rules that a transcript cannot show (timing of frames, the caller-facing getters, finish()'s cases). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <h2o/string_.h>
#include "../../../../src/translate/translate_stream.c"
#include "../../test.h"
#include "relay/sse.h"

#define STREAMS_DIR "t/assets/streams"
#define TEST_MSG_ID "msg_4f6a0c2e9b1d7a3c5e8f0b2d"

/*
 * One case directory: upstream.sse (Poe's bytes), expected.sse (the client's bytes) or expected.json (the JSON error
 * answered after PGW_STREAM_FAILED_EARLY: "HTTP <status>" on the first line, the body on the second), and an optional
 * `options` file of key=value lines: model, input_tokens, buffer_tools, stop (up to 4), tool (an original tool name of
 * the request, repeatable), end (eof: finish(clean) after the last byte, the default; reset: finish(0, NULL, message);
 * none: no finish), expect_buffer_tools (the stream must ask for buffer_tools), web_search (the request searched).
 */
struct stream_case {
    char name[128];
    pgw_response_opts_t opts;
    pgw_toolnames_t toolnames;
    char model[64], stops[4][64];
    enum { END_EOF, END_RESET, END_NONE } end;
    int expect_buffer_tools;
    char *upstream, *expected;
    size_t upstream_len, expected_len;
};

struct run {
    pgw_stream_translator_t *t;
    h2o_buffer_t *out;
    pgw_stream_status_t status;
    int wrote_after_end; /* output after PGW_STREAM_DONE / FAILED_EARLY: never allowed */
};

static int load_case(const char *dir, const char *name, struct stream_case *c)
{
    char path[512];
    size_t len;

    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    strcpy(c->model, "gpt-5.4-mini");
    c->opts.msg_id = TEST_MSG_ID;
    c->opts.model = c->model;
    c->opts.input_tokens = 1000;
    c->opts.toolnames = &c->toolnames;
    snprintf(path, sizeof(path), "%s/%s/options", dir, name);
    char *options = read_whole_file(path, &len);
    if (options != NULL) {
        size_t num_stops = 0;
        for (char *line = strtok(options, "\n"); line != NULL; line = strtok(NULL, "\n")) {
            char *eq = strchr(line, '=');
            if (eq == NULL)
                continue;
            *eq = '\0';
            const char *k = line, *v = eq + 1;
            if (strcmp(k, "model") == 0)
                snprintf(c->model, sizeof(c->model), "%s", v);
            else if (strcmp(k, "input_tokens") == 0)
                c->opts.input_tokens = strtoll(v, NULL, 10);
            else if (strcmp(k, "buffer_tools") == 0)
                c->opts.buffer_tools = atoi(v);
            else if (strcmp(k, "stop") == 0 && num_stops < 4) {
                snprintf(c->stops[num_stops], sizeof(c->stops[0]), "%s", v);
                c->opts.stop_sequences[num_stops] = c->stops[num_stops];
                ++num_stops;
            } else if (strcmp(k, "tool") == 0)
                pgw_toolnames_add(&c->toolnames, v, strlen(v));
            else if (strcmp(k, "end") == 0)
                c->end = strcmp(v, "reset") == 0 ? END_RESET : strcmp(v, "none") == 0 ? END_NONE : END_EOF;
            else if (strcmp(k, "expect_buffer_tools") == 0)
                c->expect_buffer_tools = atoi(v);
            else if (strcmp(k, "web_search") == 0)
                c->opts.web_search = atoi(v);
        }
        free(options);
    }
    snprintf(path, sizeof(path), "%s/%s/upstream.sse", dir, name);
    if ((c->upstream = read_whole_file(path, &c->upstream_len)) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/%s/expected.sse", dir, name);
    if ((c->expected = read_whole_file(path, &c->expected_len)) == NULL) {
        snprintf(path, sizeof(path), "%s/%s/expected.json", dir, name);
        c->expected = read_whole_file(path, &c->expected_len);
    }
    return 0;
}

static void dispose_case(struct stream_case *c)
{
    free(c->upstream);
    free(c->expected);
    pgw_toolnames_dispose(&c->toolnames);
}

static void note_status(struct run *r, pgw_stream_status_t st, size_t before)
{
    if (r->status != PGW_STREAM_CONTINUE && r->out->size != before)
        r->wrote_after_end = 1;
    if (r->status == PGW_STREAM_CONTINUE)
        r->status = st;
}

static int on_event(void *ctx, h2o_iovec_t event, h2o_iovec_t data)
{
    struct run *r = ctx;
    size_t before = r->out->size;
    note_status(r, pgw_stream_translator_feed(r->t, data.base, data.len, &r->out), before);
    return 0;
}

/*
 * Runs a case with the upstream bytes cut at `cuts` (ascending offsets) and returns the transcript: the SSE bytes
 * written, or after FAILED_EARLY the JSON answer, followed by a line per property the caller relies on.
 */
static char *run_case(struct stream_case *c, const size_t *cuts, size_t num_cuts, int *wrote_after_end)
{
    struct run r = {pgw_stream_translator_create(&c->opts)};
    pgw_sse_reader_t reader;
    size_t prev = 0;

    h2o_buffer_init(&r.out, &h2o_socket_buffer_prototype);
    pgw_sse_reader_init(&reader, 0);
    for (size_t i = 0; i <= num_cuts; ++i) {
        size_t end = i < num_cuts ? cuts[i] : c->upstream_len;
        pgw_sse_reader_feed(&reader, c->upstream + prev, end - prev, on_event, &r);
        prev = end;
    }
    size_t before = r.out->size;
    if (c->end == END_EOF)
        note_status(&r, pgw_stream_translator_finish(r.t, 1, NULL, NULL, &r.out), before);
    else if (c->end == END_RESET)
        note_status(&r, pgw_stream_translator_finish(r.t, 0, NULL, "the connection to Poe was reset", &r.out), before);
    /* finish is idempotent: a second call writes nothing */
    before = r.out->size;
    pgw_stream_translator_finish(r.t, 1, NULL, NULL, &r.out);
    if (r.out->size != before)
        r.wrote_after_end = 1;

    h2o_buffer_t *transcript;
    h2o_buffer_init(&transcript, &h2o_socket_buffer_prototype);
    if (r.status == PGW_STREAM_FAILED_EARLY) {
        const pgw_upstream_failure_t *f = pgw_stream_translator_failure(r.t);
        char head[32];
        pgw_buf_append(&transcript, head, snprintf(head, sizeof(head), "HTTP %d\n", f->status));
        pgw_error_json(&transcript, f->type, f->message, strlen(f->message));
        pgw_buf_append_lit(&transcript, "\n");
        if (r.out->size != 0)
            r.wrote_after_end = 1; /* nothing may be written before a JSON answer */
    } else {
        pgw_buf_append(&transcript, r.out->bytes, r.out->size);
    }
    if (pgw_stream_translator_wants_buffer_tools(r.t) != c->expect_buffer_tools)
        pgw_buf_append_lit(&transcript, "(buffer_tools request differs from the case's expect_buffer_tools)\n");
    if (c->end == END_NONE && r.status == PGW_STREAM_CONTINUE)
        pgw_buf_append_lit(&transcript, "(still running)\n");

    char *s = h2o_mem_alloc(transcript->size + 1);
    memcpy(s, transcript->bytes, transcript->size);
    s[transcript->size] = '\0';
    *wrote_after_end = r.wrote_after_end;
    h2o_buffer_dispose(&transcript);
    h2o_buffer_dispose(&r.out);
    pgw_sse_reader_dispose(&reader);
    pgw_stream_translator_destroy(r.t);
    return s;
}

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* the integer after `"key":` in `frame`, or -1 */
static long long json_int(const char *frame, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(frame, pat);
    return p != NULL ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

static int has(const char *frame, const char *s)
{
    return strstr(frame, s) != NULL;
}

/*
 * Checks a client stream against docs/streams.md#the-output-grammar, whatever the case: frames
 * "event: T\ndata: {"type":"T"...}\n\n"; message_start once and first; blocks at indexes 0, 1, 2, ... one open at a
 * time; every delta on the open block and of its kind (docs/streams.md#pitfalls-other-gateways-fell-into); no text or
 * thinking block without content (docs/streams.md#empty-blocks); then message_delta carrying input_tokens and output_tokens
 * (docs/streams.md#zero-input-tokens) and message_stop last, or an `error` event last. Returns NULL or what is
 * wrong.
 */
static const char *check_grammar(const char *s)
{
    enum { START, OPEN_TEXT, OPEN_THINKING, OPEN_TOOL, OPEN_SEARCH, BETWEEN, DELTA_SENT, END } state = START;
    long long search_use_index = -1;
    long long next_index = 0, open_index = -1;
    int block_has_content = 0;
    static char frame[1 << 16];

    while (*s != '\0') {
        const char *end = strstr(s, "\n\n");
        if (end == NULL || (size_t)(end - s) >= sizeof(frame))
            return "a frame does not end with a blank line";
        memcpy(frame, s, end - s);
        frame[end - s] = '\0';
        s = end + 2;
        char type[64], expect[160];
        if (sscanf(frame, "event: %63[a-z_]\n", type) != 1)
            return "a frame has no event line";
        snprintf(expect, sizeof(expect), "event: %s\ndata: {\"type\":\"%s\"", type, type);
        if (strncmp(frame, expect, strlen(expect)) != 0 || strchr(frame + strlen("event: ") + strlen(type) + 1, '\n') != NULL)
            return "a frame's data is not one line whose type equals the event name";
        if (state == END)
            return "a frame after message_stop or error";
        if (strcmp(type, "error") == 0) {
            if (state == START)
                return "an error event before message_start";
            state = END;
        } else if (strcmp(type, "message_start") == 0) {
            if (state != START)
                return "a second message_start";
            if (json_int(frame, "input_tokens") <= 0)
                return "message_start with input_tokens 0";
            state = BETWEEN;
        } else if (state == START) {
            return "a frame before message_start";
        } else if (strcmp(type, "content_block_start") == 0) {
            if (state != BETWEEN)
                return "a block starts while another is open, or after message_delta";
            if (json_int(frame, "index") != next_index)
                return "a block index out of order";
            open_index = next_index++;
            block_has_content = 0;
            if (has(frame, "\"content_block\":{\"type\":\"text\",\"text\":\"\"}"))
                state = OPEN_TEXT;
            else if (has(frame, "\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}"))
                state = OPEN_THINKING;
            else if (has(frame, "\"content_block\":{\"type\":\"tool_use\",\"id\":") && has(frame, ",\"input\":{}}")) {
                state = OPEN_TOOL;
                block_has_content = 1; /* a tool without arguments keeps input {} */
            } else if (has(frame, "\"content_block\":{\"type\":\"server_tool_use\",\"id\":\"srvtoolu_") &&
                       has(frame, ",\"name\":\"web_search\",\"input\":{}}")) {
                /* a search: a whole block, then its result (docs/streams.md#web-search-in-a-stream) */
                state = OPEN_SEARCH;
                block_has_content = 1;
                search_use_index = open_index;
            } else if (has(frame, "\"content_block\":{\"type\":\"web_search_tool_result\",\"tool_use_id\":\"srvtoolu_") &&
                       has(frame, "\"content\":[{\"type\":\"web_search_result\",\"url\":\"")) {
                if (search_use_index != open_index - 1)
                    return "a web_search_tool_result not right after its server_tool_use";
                state = OPEN_SEARCH;
                block_has_content = 1;
            } else
                return "a content_block_start of an unknown shape";
        } else if (strcmp(type, "content_block_delta") == 0) {
            if (state != OPEN_TEXT && state != OPEN_THINKING && state != OPEN_TOOL)
                return "a delta with no block open";
            if (json_int(frame, "index") != open_index)
                return "a delta for a block that is not open";
            if (state == OPEN_TEXT && !has(frame, "\"delta\":{\"type\":\"text_delta\",\"text\":\""))
                return "a text block got a delta of another kind";
            if (state == OPEN_THINKING && !has(frame, "\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"") &&
                !has(frame, "\"delta\":{\"type\":\"signature_delta\",\"signature\":\""))
                return "a thinking block got a delta of another kind";
            if (state == OPEN_TOOL && !has(frame, "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\""))
                return "a tool_use block got a delta of another kind";
            if (has(frame, "\":\"\"}}"))
                return "an empty delta";
            if (!has(frame, "signature_delta"))
                block_has_content = 1;
        } else if (strcmp(type, "content_block_stop") == 0) {
            if (state != OPEN_TEXT && state != OPEN_THINKING && state != OPEN_TOOL && state != OPEN_SEARCH)
                return "a stop with no block open";
            if (json_int(frame, "index") != open_index)
                return "a stop for a block that is not open";
            if (!block_has_content)
                return "an empty text or thinking block";
            state = BETWEEN;
        } else if (strcmp(type, "message_delta") == 0) {
            if (state != BETWEEN)
                return "message_delta while a block is open, or twice";
            if (json_int(frame, "input_tokens") < 0 || json_int(frame, "output_tokens") < 0 ||
                json_int(frame, "cache_read_input_tokens") < 0 || json_int(frame, "cache_creation_input_tokens") < 0)
                return "message_delta without every usage field";
            if (!has(frame, "\"stop_reason\":\""))
                return "message_delta without a stop_reason";
            if ((search_use_index >= 0) != has(frame, ",\"server_tool_use\":{\"web_search_requests\":1}}"))
                return "usage.server_tool_use does not match the search blocks";
            state = DELTA_SENT;
        } else if (strcmp(type, "message_stop") == 0) {
            if (state != DELTA_SENT)
                return "message_stop without message_delta";
            state = END;
        } else {
            return "an event type outside the output grammar";
        }
    }
    return state == END || state == START ? NULL : "the stream does not end with message_stop or error";
}

/* Every split must give the same transcript, equal to the golden one, and no output after the end. */
static void check_case(struct stream_case *c)
{
    size_t n = c->upstream_len, *cuts = h2o_mem_alloc(sizeof(size_t) * (n + 1)), bad = 0;
    int after_end;
    char *got;

    ok(c->expected != NULL);
    if (c->expected == NULL)
        goto Exit;
    /* the golden file itself keeps the grammar */
    if (strncmp(c->expected, "HTTP ", 5) != 0) {
        const char *why = check_grammar(c->expected);
        is_str(why, NULL);
    }
    /* all at once */
    got = run_case(c, NULL, 0, &after_end);
    is_str(got, c->expected);
    ok(!after_end);
    ok(strstr(got, "data: [DONE]") == NULL); /* docs/streams.md#frames-that-are-not-anthropics */
    free(got);
    /* block sizes 1 (byte by byte) to 31 */
    for (size_t bs = 1; bs <= 31; ++bs) {
        size_t num = 0;
        for (size_t off = bs; off < n; off += bs)
            cuts[num++] = off;
        got = run_case(c, cuts, num, &after_end);
        if (strcmp(got, c->expected) != 0 || after_end) {
            if (bad++ == 0)
                note("%s: block size %zu gave:\n%s", c->name, bs, got);
        }
        free(got);
    }
    /* random splits */
    for (size_t k = 0; k != 16; ++k) {
        size_t num = n == 0 ? 0 : rng() % (n < 12 ? n : 12);
        for (size_t i = 0; i != num; ++i)
            cuts[i] = rng() % (n + 1);
        qsort(cuts, num, sizeof(size_t), cmp_size);
        got = run_case(c, cuts, num, &after_end);
        if (strcmp(got, c->expected) != 0 || after_end) {
            if (bad++ == 0)
                note("%s: random split %zu gave:\n%s", c->name, k, got);
        }
        free(got);
    }
    is_int(bad, 0);
Exit:
    free(cuts);
}

static void test_fixtures(void)
{
    char *names[256];
    size_t num = list_fixtures(STREAMS_DIR, names, 256);

    ok(num >= 30);
    for (size_t i = 0; i != num; ++i) {
        struct stream_case c;
        note("case %s", names[i]);
        ok(load_case(STREAMS_DIR, names[i], &c) == 0);
        check_case(&c);
        dispose_case(&c);
        free(names[i]);
    }
}

/* ---- rules checked on the translator directly ---- */

static pgw_response_opts_t default_opts(void)
{
    pgw_response_opts_t o = {TEST_MSG_ID, "gpt-5.4-mini", 1000};
    return o;
}

/* the buffer's bytes as a C string (a NUL is written past the end, not counted) */
static const char *cstr(h2o_buffer_t **b)
{
    h2o_buffer_reserve(b, 1).base[0] = '\0';
    return (*b)->bytes;
}

#define FEED(t, out, lit) pgw_stream_translator_feed((t), H2O_STRLIT(lit), (out))

static int contains(h2o_buffer_t *b, const char *s)
{
    return h2o_strstr(b->bytes, b->size, s, strlen(s)) != SIZE_MAX;
}

/* docs/streams.md#a-tool-block-held-back: a tool's content_block_start goes out with the chunk that names it, not with
 * the next chunk */
static void test_tool_start_is_immediate(void)
{
    pgw_response_opts_t o = default_opts();
    pgw_stream_translator_t *t = pgw_stream_translator_create(&o);
    h2o_buffer_t *out;
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);

    is_int(FEED(t, &out, "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}"), PGW_STREAM_CONTINUE);
    ok(pgw_stream_translator_committed(t));
    ok(contains(out, "event: message_start\n"));
    ok(!contains(out, "content_block_start")); /* the empty text opened nothing (docs/streams.md#empty-blocks) */
    out->size = 0;
    FEED(t, &out,
         "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\","
         "\"function\":{\"name\":\"Bash\",\"arguments\":\"\"}}]}}]}");
    is_str(cstr(&out),
           "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
           "\"tool_use\",\"id\":\"call_1\",\"name\":\"Bash\",\"input\":{}}}\n\n");
    h2o_buffer_dispose(&out);
    pgw_stream_translator_destroy(t);
}

/* awaiting_usage drives the caller's 2 s grace timer; finish(clean) from that timer finalises with what is known */
static void test_grace_timer(void)
{
    pgw_response_opts_t o = default_opts();
    pgw_stream_translator_t *t = pgw_stream_translator_create(&o);
    h2o_buffer_t *out;
    long long in, outp, cr, cc;
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);

    ok(!pgw_stream_translator_awaiting_usage(t));
    FEED(t, &out, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello there\"},\"finish_reason\":null}]}");
    ok(!pgw_stream_translator_awaiting_usage(t));
    is_int(FEED(t, &out, "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}"), PGW_STREAM_CONTINUE);
    ok(pgw_stream_translator_awaiting_usage(t));
    ok(!contains(out, "message_delta")); /* finish_reason alone does not finalise
                                          * (docs/streams.md#usage-never-requested-or-never-awaited) */
    is_int(pgw_stream_translator_finish(t, 1, NULL, NULL, &out), PGW_STREAM_DONE);
    ok(!pgw_stream_translator_awaiting_usage(t));
    ok(contains(out, "\"stop_reason\":\"end_turn\""));
    ok(contains(out, "event: message_stop\n"));
    pgw_stream_translator_usage(t, &in, &outp, &cr, &cc);
    is_int(in, 1000);
    is_int(outp, 3); /* 11 bytes / 4, rounded up */
    is_int(cr, 0);
    is_int(cc, 0);
    /* nothing after message_stop */
    size_t size = out->size;
    is_int(FEED(t, &out, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"late\"}}]}"), PGW_STREAM_DONE);
    is_int(FEED(t, &out, "[DONE]"), PGW_STREAM_DONE);
    pgw_stream_translator_commit(t, &out);
    is_int(pgw_stream_translator_finish(t, 0, PGW_ERR_API, "late", &out), PGW_STREAM_DONE);
    is_int(out->size, size);
    h2o_buffer_dispose(&out);
    pgw_stream_translator_destroy(t);
}

/* finish(clean=0): before the commit a JSON answer with a status fitting the type; after it, one error event */
static void test_broken_upstream(void)
{
    pgw_response_opts_t o = default_opts();
    pgw_stream_translator_t *t = pgw_stream_translator_create(&o);
    h2o_buffer_t *out;
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);

    is_int(pgw_stream_translator_finish(t, 0, PGW_ERR_TIMEOUT, "Poe sent nothing for 300 s", &out), PGW_STREAM_FAILED_EARLY);
    is_int(pgw_stream_translator_failure(t)->status, 504);
    is_str(pgw_stream_translator_failure(t)->type, PGW_ERR_TIMEOUT);
    is_str(pgw_stream_translator_failure(t)->message, "Poe sent nothing for 300 s");
    is_int(out->size, 0);
    /* sticky: nothing more is written */
    is_int(FEED(t, &out, "{\"choices\":[]}"), PGW_STREAM_FAILED_EARLY);
    pgw_stream_translator_commit(t, &out);
    ok(!pgw_stream_translator_committed(t));
    is_int(out->size, 0);
    pgw_stream_translator_destroy(t);

    /* the caller's 5 s wait forced the commit, then the upstream stalled */
    t = pgw_stream_translator_create(&o);
    pgw_stream_translator_commit(t, &out);
    pgw_stream_translator_commit(t, &out);
    ok(pgw_stream_translator_committed(t));
    FEED(t, &out, ": not json");
    FEED(t, &out, "{\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"Thinking\"}}]}");
    is_int(pgw_stream_translator_finish(t, 0, PGW_ERR_API, "Poe sent nothing for 300 s", &out), PGW_STREAM_DONE);
    is_str(cstr(&out),
           "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"" TEST_MSG_ID "\",\"type\":\"message\","
           "\"role\":\"assistant\",\"content\":[],\"model\":\"gpt-5.4-mini\",\"stop_reason\":null,\"stop_sequence\":null,"
           "\"usage\":{\"input_tokens\":1000,\"output_tokens\":0,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0}}}"
           "\n\n"
           "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
           "\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n"
           "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
           "\"thinking_delta\",\"thinking\":\"Thinking\"}}\n\n"
           "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"Poe sent nothing for 300 "
           "s\"}}\n\n");
    pgw_stream_translator_destroy(t);

    /* a reset after finish_reason loses only the usage: the answer is whole and ends normally */
    t = pgw_stream_translator_create(&o);
    out->size = 0;
    FEED(t, &out, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Done.\"},\"finish_reason\":\"stop\"}]}");
    is_int(pgw_stream_translator_finish(t, 0, NULL, "reset", &out), PGW_STREAM_DONE);
    ok(contains(out, "event: message_stop\n"));
    ok(!contains(out, "event: error\n"));
    pgw_stream_translator_destroy(t);
    h2o_buffer_dispose(&out);
}

/* docs/streams.md#zero-input-tokens: message_start never says input_tokens 0, even when the caller's estimate is 0 */
static void test_input_estimate_never_zero(void)
{
    pgw_response_opts_t o = default_opts();
    o.input_tokens = 0;
    pgw_stream_translator_t *t = pgw_stream_translator_create(&o);
    h2o_buffer_t *out;
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);
    pgw_stream_translator_commit(t, &out);
    ok(contains(out, "\"usage\":{\"input_tokens\":1,"));
    h2o_buffer_dispose(&out);
    pgw_stream_translator_destroy(t);
}

/* the parser: unparseable events are skipped without committing, and the reused handle recovers after them */
static void test_parser_recovery(void)
{
    pgw_response_opts_t o = default_opts();
    pgw_stream_translator_t *t = pgw_stream_translator_create(&o);
    h2o_buffer_t *out;
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);

    is_int(FEED(t, &out, "{\"choices\":[{\"delta\":{\"content\":\"x\""), PGW_STREAM_CONTINUE);
    is_int(FEED(t, &out, "[1,2]"), PGW_STREAM_CONTINUE);
    is_int(FEED(t, &out, "42"), PGW_STREAM_CONTINUE);
    is_int(FEED(t, &out, "{} {}"), PGW_STREAM_CONTINUE);
    is_int(FEED(t, &out, "   "), PGW_STREAM_CONTINUE);
    ok(!pgw_stream_translator_committed(t));
    is_int(out->size, 0);
    /* deep nesting beyond the tracked depth is ignored, not fatal */
    is_int(FEED(t, &out,
                "{\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{\"choices\":1}]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"
                "\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}"),
           PGW_STREAM_CONTINUE);
    ok(pgw_stream_translator_committed(t));
    ok(contains(out, "\"text\":\"ok\""));
    /* invalid UTF-8 in content is repaired on output rather than costing the chunk */
    FEED(t, &out,
         "{\"choices\":[{\"delta\":{\"content\":\"a\xff"
         "b\"}}]}");
    ok(contains(out, "\"text\":\"a\xef\xbf\xbd"
                     "b\""));
    h2o_buffer_dispose(&out);
    pgw_stream_translator_destroy(t);
}

void test_src__translate_stream_c(void)
{
    subtest("fixtures", test_fixtures);
    subtest("tool start is immediate", test_tool_start_is_immediate);
    subtest("grace timer", test_grace_timer);
    subtest("broken upstream", test_broken_upstream);
    subtest("input estimate never zero", test_input_estimate_never_zero);
    subtest("parser recovery", test_parser_recovery);
}
