/* poe-gateway: MIT licence. The stream state machine: chat/completions chunks in, Anthropic SSE events out
 * (docs/streams.md#the-translation-state-machine).
 *
 * States. ACTIVE until the stream ends, with two sub-states: not committed (nothing written yet) and committed
 * (message_start written; at most one content block open, indexes 0, 1, 2, ... in order, never reused). It ends once,
 * in one of three ways: FINALISED (message_delta + message_stop), BROKEN (one `error` event after the commit), or
 * FAILED_EARLY (an error before the commit: nothing was written and the caller answers with JSON). Input after the end
 * is ignored and the final status returned again.
 *
 * Inputs. feed(): one upstream SSE event's data, which is a chat.completion.chunk, "[DONE]", or something unparseable
 * (logged, skipped). commit(): the caller's wait for a first chunk expired (docs/streams.md#commit). finish(): EOF or
 * the 2 s grace timer (clean), or a broken upstream (a stall or a reset).
 *
 * Per chunk. yajl callbacks copy the few fields that matter into per-chunk scratch (reused buffers, emptied before each
 * chunk), called by pgw_json_read (src/common/json_reader.c), or for what it leaves to yajl by one yajl handle reused
 * for the whole stream; then the chunk is acted on in the order of
 * docs/streams.md#per-chunk whatever the key order was: error object, commit, reasoning, text and refusal, tool-call
 * fragments, finish_reason, usage.
 *
 * Emitted. Frames "event: T\ndata: {"type":"T",...}\n\n": message_start; content_block_start / content_block_delta /
 * content_block_stop for thinking (thinking_delta, signature_delta), text (text_delta) and tool_use (input_json_delta
 * carrying each upstream fragment byte for byte); message_delta with the final usage; message_stop; or `error`. A web
 * search's blocks come from src/translate/translate_search.c, which gathers the pages each chunk cites (the JSON spans of
 * its `annotations` and `citations`), at finalisation (docs/streams.md#web-search-in-a-stream).
 *
 * Ending (docs/streams.md#ending). Finalised by usage in a chunk after the one that carried finish_reason, by [DONE],
 * or by finish() once finish_reason was seen. [DONE] without finish_reason is a normal end when something was emitted.
 * Broken instead (api_error unless said otherwise): EOF without [DONE] or finish_reason; nothing at all before [DONE]
 * or before a finish_reason other than length / content_filter; a tool call that never got a name; an argument fragment
 * for a tool block already closed (the caller then turns buffer_tools on, see wants_buffer_tools); an `error` chunk
 * (its own type, docs/errors.md#errors-inside-a-200); finish(0, ...) before finish_reason.
 *
 * Not handled on purpose: choices after choices[0]; logprobs; Gemini's thought_signature on tool calls and
 * redacted_thinking blocks (no slot we can fill truthfully); a signature arriving when no thinking block is open
 * (dropped); pings, the commit wait, the grace and idle timers (the caller owns the clock,
 * docs/streams.md#timers).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <h2o/string_.h>
#include <yajl/yajl_parse.h>
#include "common/errors.h"
#include "common/json.h"
#include "common/json_reader.h"
#include "common/log.h"
#include "translate/translate.h"
#include "translate/translate_search.h"

#define MODULE_NAME "translate_stream"

/* nesting tracked by the chunk parser; deeper values are ignored */
#define MAX_DEPTH 32

enum node {
    N_OTHER = 0,       /* a value we ignore, and everything inside it */
    N_ROOT,            /* the chunk object */
    N_CHOICES,         /* choices[] */
    N_CHOICE,          /* choices[0] */
    N_DELTA,           /* choices[0].delta (or .message, as fake streams send) */
    N_TOOL_CALLS,      /* delta.tool_calls[] */
    N_TOOL_CALL,       /* one fragment */
    N_FUNCTION,        /* fragment.function */
    N_PSF,             /* delta.provider_specific_fields (LiteLLM) */
    N_THINKING_BLOCKS, /* delta.thinking_blocks[] */
    N_THINKING_BLOCK,
    N_USAGE,
    N_PTD,   /* usage.prompt_tokens_details */
    N_CITES, /* an annotations or citations array, kept as its JSON span */
};

enum key {
    K_OTHER = 0,
    K_ERROR,
    K_CHOICES,
    K_USAGE,
    K_DELTA,
    K_MESSAGE,
    K_FINISH_REASON,
    K_STOP_REASON,
    K_MATCHED_STOP,
    K_CONTENT,
    K_REASONING_CONTENT,
    K_REASONING,
    K_REFUSAL,
    K_TOOL_CALLS,
    K_THINKING_BLOCKS,
    K_PSF,
    K_INDEX,
    K_ID,
    K_FUNCTION,
    K_NAME,
    K_ARGUMENTS,
    K_THINKING,
    K_SIGNATURE,
    K_PROMPT_TOKENS,
    K_COMPLETION_TOKENS,
    K_PTD,
    K_CACHED_TOKENS,
    K_CACHE_CREATION_TOKENS,
    K_CACHE_READ_INPUT_TOKENS,
    K_CACHE_CREATION_INPUT_TOKENS,
    K_ANNOTATIONS,
    K_CITATIONS,
};

static const struct {
    const char *name;
    size_t len;
    enum key key;
} keys[] = {
    {H2O_STRLIT("error"), K_ERROR},
    {H2O_STRLIT("choices"), K_CHOICES},
    {H2O_STRLIT("usage"), K_USAGE},
    {H2O_STRLIT("delta"), K_DELTA},
    {H2O_STRLIT("message"), K_MESSAGE},
    {H2O_STRLIT("finish_reason"), K_FINISH_REASON},
    {H2O_STRLIT("stop_reason"), K_STOP_REASON},
    {H2O_STRLIT("matched_stop"), K_MATCHED_STOP},
    {H2O_STRLIT("content"), K_CONTENT},
    {H2O_STRLIT("reasoning_content"), K_REASONING_CONTENT},
    {H2O_STRLIT("reasoning"), K_REASONING},
    {H2O_STRLIT("refusal"), K_REFUSAL},
    {H2O_STRLIT("tool_calls"), K_TOOL_CALLS},
    {H2O_STRLIT("thinking_blocks"), K_THINKING_BLOCKS},
    {H2O_STRLIT("provider_specific_fields"), K_PSF},
    {H2O_STRLIT("index"), K_INDEX},
    {H2O_STRLIT("id"), K_ID},
    {H2O_STRLIT("function"), K_FUNCTION},
    {H2O_STRLIT("name"), K_NAME},
    {H2O_STRLIT("arguments"), K_ARGUMENTS},
    {H2O_STRLIT("thinking"), K_THINKING},
    {H2O_STRLIT("signature"), K_SIGNATURE},
    {H2O_STRLIT("prompt_tokens"), K_PROMPT_TOKENS},
    {H2O_STRLIT("completion_tokens"), K_COMPLETION_TOKENS},
    {H2O_STRLIT("prompt_tokens_details"), K_PTD},
    {H2O_STRLIT("cached_tokens"), K_CACHED_TOKENS},
    {H2O_STRLIT("cache_creation_tokens"), K_CACHE_CREATION_TOKENS},
    {H2O_STRLIT("cache_read_input_tokens"), K_CACHE_READ_INPUT_TOKENS},
    {H2O_STRLIT("cache_creation_input_tokens"), K_CACHE_CREATION_INPUT_TOKENS},
    {H2O_STRLIT("annotations"), K_ANNOTATIONS},
    {H2O_STRLIT("citations"), K_CITATIONS},
};

/* a byte range in a scratch buffer (offsets: the buffer may move while it grows) */
struct span {
    size_t off, len;
};

/* one delta.tool_calls[] element of the current chunk; strings in chunk.strs */
struct fragment {
    long long index; /* the upstream `index`, or the array position when absent */
    struct span id, name, args;
};

/* usage as the upstream reported it; -1 = absent */
struct usage {
    long long prompt, completion, details_cached, details_creation, cache_read, cache_creation;
};

/* what one chunk said, filled by the parser callbacks and acted on afterwards */
struct chunk {
    int is_object, has_error, has_choice, has_usage;
    h2o_buffer_t *content, *reasoning_content, *reasoning, *thinking, *signature, *refusal;
    h2o_buffer_t *strs; /* fragment strings and the choice's stop_reason / matched_stop */
    struct fragment *frags;
    size_t num_frags, cap_frags;
    char finish_reason[32]; /* "" when the chunk has none */
    struct span stop_named; /* a string stop_reason / matched_stop on the choice */
    int has_stop_named;
    struct usage usage;
    struct span cites[4]; /* the chunk's annotations / citations arrays, in the event's data (web search only) */
    size_t num_cites, cite_start;
};

enum block_kind { BLOCK_NONE, BLOCK_THINKING, BLOCK_TEXT, BLOCK_TOOL };

/* one upstream tool call, keyed by its `index` (docs/streams.md#tool-calls-in-a-stream); strings in t->strs, which only
 * grows */
struct tool {
    long long upstream_index;
    struct span raw_id, name; /* len 0 until seen */
    int has_id, has_name;
    int block_index;    /* -1 until content_block_start */
    h2o_buffer_t *args; /* arguments not emitted yet: before the name, or all of them under buffer_tools */
};

enum state { ACTIVE, FINALISED, BROKEN, FAILED_EARLY };

/* one open container of the chunk being parsed */
struct frame {
    enum node node;
    size_t elems; /* values begun in it so far */
};

struct st_pgw_stream_translator_t {
    /* options, copied (the toolnames table is the caller's and must outlive the translator) */
    char *msg_id, *model, *secret;
    char *stop_sequences[4];
    const pgw_toolnames_t *toolnames;
    long long est_input;
    int buffer_tools;

    enum state state;
    int broken_by_poe; /* BROKEN or FAILED_EARLY by an error chunk of Poe's (not by the stream's breaking off) */
    int committed;
    int next_index;
    struct {
        enum block_kind kind;
        int index;
        struct tool *tool; /* BLOCK_TOOL */
    } open;
    struct tool *tools;
    size_t num_tools, cap_tools;
    h2o_buffer_t *strs;     /* tool names and raw ids */
    h2o_buffer_t *ids;      /* tool_use ids chosen, NUL-separated (pgw_tool_use_id) */
    char finish_reason[32]; /* "" until recorded */
    int stop_sequence;      /* index into stop_sequences named by the upstream, or -1 */
    int has_usage;
    struct usage usage;
    int refusal_seen, tool_emitted, wants_buffer_tools;
    size_t output_bytes; /* thinking, text and arguments emitted, for the output estimate */
    long long told[4];   /* the usage the client was told: input, output, cache read, cache creation */
    pgw_upstream_failure_t failure;
    pgw_search_t search; /* docs/streams.md#web-search-in-a-stream */

    /* the chunk parser: pgw_json_read, or yajl for what it leaves to yajl */
    yajl_handle parser;
    int reading; /* pgw_json_read is reading, at offset `consumed` */
    size_t consumed;
    h2o_buffer_t *scratch; /* its decoded strings */
    struct chunk chunk;
    struct frame stack[MAX_DEPTH], deep; /* deep stands for every level past MAX_DEPTH */
    size_t depth;
    enum key key;
};

/* ---- output frames ---- */

#define FRAME_BEGIN(out, type) pgw_buf_append_lit((out), "event: " type "\ndata: {\"type\":\"" type "\"")
#define FRAME_END(out) pgw_buf_append_lit((out), "}\n\n")

static void emit_message_start(pgw_stream_translator_t *t, h2o_buffer_t **out)
{
    FRAME_BEGIN(out, "message_start");
    pgw_buf_append_lit(out, ",\"message\":{\"id\":");
    pgw_json_append_string(out, t->msg_id, strlen(t->msg_id));
    pgw_buf_append_lit(out, ",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":");
    pgw_json_append_string(out, t->model, strlen(t->model));
    /* input_tokens is the estimate, never 0 (docs/streams.md#zero-input-tokens) */
    pgw_buf_append_lit(out, ",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":");
    pgw_json_append_int(out, t->est_input);
    pgw_buf_append_lit(out, ",\"output_tokens\":0,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0}}");
    FRAME_END(out);
}

static void emit_block_stop(pgw_stream_translator_t *t, h2o_buffer_t **out)
{
    FRAME_BEGIN(out, "content_block_stop");
    pgw_buf_append_lit(out, ",\"index\":");
    pgw_json_append_int(out, t->open.index);
    FRAME_END(out);
    t->open.kind = BLOCK_NONE;
    t->open.tool = NULL;
}

static void begin_block_start(pgw_stream_translator_t *t, enum block_kind kind, h2o_buffer_t **out)
{
    if (t->open.kind != BLOCK_NONE)
        emit_block_stop(t, out);
    t->open.kind = kind;
    t->open.index = t->next_index++;
    FRAME_BEGIN(out, "content_block_start");
    pgw_buf_append_lit(out, ",\"index\":");
    pgw_json_append_int(out, t->open.index);
    pgw_buf_append_lit(out, ",\"content_block\":");
}

/*
 * switch_to for thinking and text (docs/streams.md#blocks): a block of the same kind stays open (a tool block never
 * does: text after a tool call opens a new block, docs/streams.md#text-in-a-tool-block); otherwise the open block
 * closes and a new one opens at the next index. Called only with content in hand, so no block is ever empty
 * (docs/streams.md#empty-blocks).
 */
static void switch_to(pgw_stream_translator_t *t, enum block_kind kind, h2o_buffer_t **out)
{
    if (t->open.kind == kind)
        return;
    begin_block_start(t, kind, out);
    if (kind == BLOCK_THINKING)
        pgw_buf_append_lit(out, "{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}");
    else
        pgw_buf_append_lit(out, "{\"type\":\"text\",\"text\":\"\"}");
    FRAME_END(out);
}

/* a content_block_delta on the open block; `field` names the delta's payload */
static void emit_delta(pgw_stream_translator_t *t, const char *type, const char *field, const char *s, size_t len,
                       h2o_buffer_t **out)
{
    FRAME_BEGIN(out, "content_block_delta");
    pgw_buf_append_lit(out, ",\"index\":");
    pgw_json_append_int(out, t->open.index);
    pgw_buf_append_lit(out, ",\"delta\":{\"type\":\"");
    pgw_buf_append_str(out, type);
    pgw_buf_append_lit(out, "\",\"");
    pgw_buf_append_str(out, field);
    pgw_buf_append_lit(out, "\":");
    pgw_json_append_string(out, s, len);
    pgw_buf_append_lit(out, "}");
    FRAME_END(out);
}

static void emit_error(pgw_stream_translator_t *t, const char *type, const char *message, h2o_buffer_t **out)
{
    pgw_buf_append_lit(out, "event: error\ndata: ");
    pgw_error_json(out, type, message, strlen(message));
    pgw_buf_append_lit(out, "\n\n");
}

/* ---- usage (docs/streams.md#usage-in-a-stream) ---- */

static void compute_usage(pgw_stream_translator_t *t)
{
    const struct usage *u = &t->usage;
    long long cache_read = 0, cache_creation = 0, input = t->est_input, output;

    if (t->has_usage) {
        /* Poe sends the cache counts twice: take one, never add (docs/mapping.md#cache-tokens-counted-twice) */
        cache_read = u->details_cached >= 0 ? u->details_cached : u->cache_read >= 0 ? u->cache_read : 0;
        cache_creation = u->details_creation >= 0 ? u->details_creation : u->cache_creation >= 0 ? u->cache_creation : 0;
        if (u->prompt > 0) {
            /* Anthropic's input_tokens excludes cache reads and writes; OpenAI's prompt_tokens includes them */
            input = u->prompt - cache_read - cache_creation;
            if (input < 0)
                input = 0;
        }
    }
    /* Poe reported completion_tokens 0 for tool-call-only answers: estimate when output exists */
    if (t->has_usage && u->completion > 0)
        output = u->completion;
    else
        output = (long long)((t->output_bytes + 3) / 4);
    if (output == 0 && (t->next_index != 0 || t->tool_emitted))
        output = 1;
    t->told[0] = input;
    t->told[1] = output;
    t->told[2] = cache_read;
    t->told[3] = cache_creation;
}

/* ---- ending ---- */

static pgw_stream_status_t status_of(const pgw_stream_translator_t *t)
{
    switch (t->state) {
    case ACTIVE:
        return PGW_STREAM_CONTINUE;
    case FAILED_EARLY:
        return PGW_STREAM_FAILED_EARLY;
    default:
        return PGW_STREAM_DONE;
    }
}

/* After the commit a failure is one `error` event and the end (docs/streams.md#ending): no message_delta, no message_stop. */
static pgw_stream_status_t break_stream(pgw_stream_translator_t *t, const char *type, const char *message, h2o_buffer_t **out)
{
    pgw_log_warn(MODULE_NAME, "%s: stream ends with %s: %s", t->msg_id, type, message);
    compute_usage(t);
    emit_error(t, type, message, out);
    t->state = BROKEN;
    return PGW_STREAM_DONE;
}

/* Before the commit nothing was written: the caller answers with this failure as JSON (docs/streams.md#commit). */
static pgw_stream_status_t fail_early(pgw_stream_translator_t *t, int status, const char *type, const char *message)
{
    t->failure.status = status;
    t->failure.type = type;
    t->failure.no_retry = 0;
    snprintf(t->failure.message, sizeof(t->failure.message), "%s", message);
    pgw_log_warn(MODULE_NAME, "%s: stream failed before the commit: %d %s: %s", t->msg_id, status, type, message);
    compute_usage(t);
    t->state = FAILED_EARLY;
    return PGW_STREAM_FAILED_EARLY;
}

static void start_tool(pgw_stream_translator_t *t, struct tool *tool, h2o_buffer_t **out);

enum trigger {
    TRIGGER_USAGE, /* usage after finish_reason */
    TRIGGER_DONE,  /* data: [DONE] */
    TRIGGER_EOF,   /* EOF or the grace timer, or a break after finish_reason */
};

static pgw_stream_status_t finalise(pgw_stream_translator_t *t, enum trigger trigger, h2o_buffer_t **out)
{
    if (t->state != ACTIVE)
        return status_of(t);
    if (!t->committed)
        return fail_early(t, 502, PGW_ERR_API, "Poe ended the stream before sending a response");
    for (size_t i = 0; i != t->num_tools; ++i)
        if (!t->tools[i].has_name)
            return break_stream(t, PGW_ERR_API, "Poe sent a tool call without a name", out);

    int has_output = t->next_index != 0 || t->num_tools != 0;
    if (t->finish_reason[0] == '\0') {
        /* a cut-off answer finished as end_turn would be kept as if whole (docs/streams.md#a-cut-off-answer-passed-as-whole) */
        if (trigger == TRIGGER_EOF)
            return break_stream(t, PGW_ERR_API, "Poe's stream ended before the response was complete", out);
        if (!has_output)
            return break_stream(t, PGW_ERR_API, "Poe ended the stream without a response", out);
        /* [DONE] without finish_reason after content is a normal end (Poe's Google models may omit it) */
    } else if (!has_output && strcmp(t->finish_reason, "length") != 0 && strcmp(t->finish_reason, "content_filter") != 0) {
        /* an empty end_turn makes Claude Code insert "No response requested." (docs/mapping.md#an-empty-answer) */
        return break_stream(t, PGW_ERR_API, "Poe returned an empty response", out);
    }

    if (t->open.kind != BLOCK_NONE)
        emit_block_stop(t, out);
    /* a search the answer cites, now that every citation is known (docs/streams.md#web-search-in-a-stream) */
    pgw_search_append_frames(&t->search, out, &t->next_index);
    if (t->buffer_tools) {
        /* each tool whole, in upstream index order (docs/streams.md#tool-calls-in-a-stream) */
        for (size_t done = 0; done != t->num_tools; ++done) {
            struct tool *next = NULL;
            for (size_t i = 0; i != t->num_tools; ++i)
                if (t->tools[i].block_index < 0 && (next == NULL || t->tools[i].upstream_index < next->upstream_index))
                    next = &t->tools[i];
            start_tool(t, next, out);
            emit_block_stop(t, out);
        }
    }

    const char *stop_sequence = t->stop_sequence >= 0 ? t->stop_sequences[t->stop_sequence] : NULL;
    const char *stop_reason = pgw_stop_reason(t->finish_reason, t->tool_emitted, t->refusal_seen, &stop_sequence);

    compute_usage(t);
    FRAME_BEGIN(out, "message_delta");
    pgw_buf_append_lit(out, ",\"delta\":{");
    pgw_append_stop(out, stop_reason, stop_sequence);
    /* final cumulative totals; input_tokens MUST be there: Claude Code only overwrites what it receives */
    pgw_buf_append_lit(out, "},\"usage\":{\"input_tokens\":");
    pgw_json_append_int(out, t->told[0]);
    pgw_buf_append_lit(out, ",\"output_tokens\":");
    pgw_json_append_int(out, t->told[1]);
    pgw_buf_append_lit(out, ",\"cache_read_input_tokens\":");
    pgw_json_append_int(out, t->told[2]);
    pgw_buf_append_lit(out, ",\"cache_creation_input_tokens\":");
    pgw_json_append_int(out, t->told[3]);
    pgw_search_append_usage(&t->search, out);
    pgw_buf_append_lit(out, "}");
    FRAME_END(out);
    FRAME_BEGIN(out, "message_stop");
    FRAME_END(out);
    t->state = FINALISED;
    return PGW_STREAM_DONE;
}

/* ---- tool calls ---- */

static struct tool *find_tool(pgw_stream_translator_t *t, long long index)
{
    for (size_t i = 0; i != t->num_tools; ++i)
        if (t->tools[i].upstream_index == index)
            return &t->tools[i];
    if (t->num_tools == t->cap_tools) {
        t->cap_tools = t->cap_tools == 0 ? 4 : t->cap_tools * 2;
        t->tools = h2o_mem_realloc(t->tools, sizeof(*t->tools) * t->cap_tools);
    }
    struct tool *tool = &t->tools[t->num_tools++];
    memset(tool, 0, sizeof(*tool));
    tool->upstream_index = index;
    tool->block_index = -1;
    h2o_buffer_init(&tool->args, &h2o_socket_buffer_prototype);
    return tool;
}

static struct span keep_string(pgw_stream_translator_t *t, const char *s, size_t len)
{
    struct span sp = {t->strs->size, len};
    pgw_buf_append(&t->strs, s, len);
    return sp;
}

/* content_block_start for a named tool, immediately (docs/streams.md#a-tool-block-held-back), then any arguments held until
 * now (docs/streams.md#arguments-lost-at-a-block-switch) */
static void start_tool(pgw_stream_translator_t *t, struct tool *tool, h2o_buffer_t **out)
{
    const char *name = pgw_buf_at(t->strs, tool->name.off);
    size_t name_len = tool->name.len, id_off;

    if (t->toolnames != NULL)
        name = pgw_toolnames_original(t->toolnames, name, name_len, &name_len);
    id_off = pgw_tool_use_id(&t->ids, tool->has_id ? pgw_buf_at(t->strs, tool->raw_id.off) : "", tool->has_id ? tool->raw_id.len : 0,
                             t->msg_id, tool->upstream_index >= 0 ? (size_t)tool->upstream_index : t->num_tools);
    begin_block_start(t, BLOCK_TOOL, out);
    t->open.tool = tool;
    tool->block_index = t->open.index;
    pgw_buf_append_lit(out, "{\"type\":\"tool_use\",\"id\":");
    pgw_json_append_string(out, t->ids->bytes + id_off, strlen(t->ids->bytes + id_off));
    pgw_buf_append_lit(out, ",\"name\":");
    pgw_json_append_string(out, name, name_len);
    pgw_buf_append_lit(out, ",\"input\":{}}");
    FRAME_END(out);
    t->tool_emitted = 1;
    if (tool->args->size != 0) {
        emit_delta(t, "input_json_delta", "partial_json", tool->args->bytes, tool->args->size, out);
        t->output_bytes += tool->args->size;
        tool->args->size = 0;
    }
}

/* One delta.tool_calls[] fragment, keyed by its index (docs/streams.md#tool-calls-keyed-by-anything-but-index). Returns -1
 * when the stream broke. */
static int on_fragment(pgw_stream_translator_t *t, const struct fragment *f, h2o_buffer_t **out)
{
    struct chunk *c = &t->chunk;
    struct tool *tool = find_tool(t, f->index);
    const char *args = pgw_buf_at(c->strs, f->args.off);

    if (tool->block_index < 0) {
        if (!tool->has_id && f->id.len != 0) {
            tool->raw_id = keep_string(t, pgw_buf_at(c->strs, f->id.off), f->id.len);
            tool->has_id = 1;
        }
        if (!tool->has_name && f->name.len != 0) {
            tool->name = keep_string(t, pgw_buf_at(c->strs, f->name.off), f->name.len);
            tool->has_name = 1;
        }
        pgw_buf_append(&tool->args, args, f->args.len);
        if (tool->has_name && !t->buffer_tools)
            start_tool(t, tool, out);
    } else if (f->args.len != 0) {
        if (t->open.kind != BLOCK_TOOL || t->open.tool != tool) {
            /* its block is closed: appending is impossible and dropping corrupts the input
             * (docs/streams.md#tool-calls-in-a-stream) */
            t->wants_buffer_tools = 1;
            break_stream(t, PGW_ERR_API,
                         "Poe interleaved the arguments of parallel tool calls; retry (the gateway now buffers tool calls on "
                         "this route)",
                         out);
            return -1;
        }
        /* byte for byte: no re-serialising, no waiting for valid JSON */
        emit_delta(t, "input_json_delta", "partial_json", args, f->args.len, out);
        t->output_bytes += f->args.len;
    }
    return 0;
}

/* ---- the chunk parser (yajl callbacks, reformatter style: parse, act, clear) ---- */

static void chunk_clear(struct chunk *c)
{
    c->is_object = c->has_error = c->has_choice = c->has_usage = 0;
    c->content->size = c->reasoning_content->size = c->reasoning->size = c->thinking->size = c->signature->size = c->refusal->size =
        c->strs->size = 0;
    c->num_frags = 0;
    c->finish_reason[0] = '\0';
    c->has_stop_named = 0;
    c->usage = (struct usage){-1, -1, -1, -1, -1, -1};
    c->num_cites = 0;
}

/* The offset in the event's data just past the token being read, whichever parser reads it. */
static size_t consumed(pgw_stream_translator_t *t)
{
    return t->reading ? t->consumed : yajl_get_bytes_consumed(t->parser);
}

static struct frame *top(pgw_stream_translator_t *t)
{
    return t->depth == 0 ? NULL : t->depth > MAX_DEPTH ? &t->deep : &t->stack[t->depth - 1];
}

/* Where a value is about to begin (`container`: an object or array): the node it is, counting array elements. */
static enum node value_node(pgw_stream_translator_t *t, int is_map, int is_array)
{
    struct frame *parent = top(t);
    if (parent == NULL)
        return is_map ? N_ROOT : N_OTHER;
    size_t pos = parent->elems++;
    if (is_array && (t->key == K_CITATIONS || (t->key == K_ANNOTATIONS && parent->node == N_DELTA)) &&
        (parent->node == N_ROOT || parent->node == N_DELTA || parent->node == N_PSF))
        return N_CITES;
    switch (parent->node) {
    case N_ROOT:
        if (t->key == K_CHOICES && is_array)
            return N_CHOICES;
        if (t->key == K_USAGE && is_map)
            return N_USAGE;
        break;
    case N_CHOICES:
        if (pos == 0 && is_map)
            return N_CHOICE;
        break;
    case N_CHOICE:
        if ((t->key == K_DELTA || t->key == K_MESSAGE) && is_map)
            return N_DELTA;
        break;
    case N_DELTA:
        if (t->key == K_TOOL_CALLS && is_array)
            return N_TOOL_CALLS;
        if (t->key == K_THINKING_BLOCKS && is_array)
            return N_THINKING_BLOCKS;
        if (t->key == K_PSF && is_map)
            return N_PSF;
        break;
    case N_PSF:
        if (t->key == K_THINKING_BLOCKS && is_array)
            return N_THINKING_BLOCKS;
        break;
    case N_TOOL_CALLS:
        if (is_map) {
            struct chunk *c = &t->chunk;
            if (c->num_frags == c->cap_frags) {
                c->cap_frags = c->cap_frags == 0 ? 4 : c->cap_frags * 2;
                c->frags = h2o_mem_realloc(c->frags, sizeof(*c->frags) * c->cap_frags);
            }
            c->frags[c->num_frags++] = (struct fragment){(long long)pos};
            return N_TOOL_CALL;
        }
        break;
    case N_TOOL_CALL:
        if (t->key == K_FUNCTION && is_map)
            return N_FUNCTION;
        break;
    case N_THINKING_BLOCKS:
        if (is_map)
            return N_THINKING_BLOCK;
        break;
    case N_USAGE:
        if (t->key == K_PTD && is_map)
            return N_PTD;
        break;
    default:
        break;
    }
    return N_OTHER;
}

/* a top-level "error" that is not null (or false) is an upstream error (docs/streams.md#reading-a-chunk) */
static void note_error_value(pgw_stream_translator_t *t, enum node at)
{
    if (at == N_ROOT && t->key == K_ERROR)
        t->chunk.has_error = 1;
}

static int push(pgw_stream_translator_t *t, enum node node)
{
    if (t->depth < MAX_DEPTH) {
        t->stack[t->depth].node = node;
        t->stack[t->depth].elems = 0;
    } else {
        t->deep.node = N_OTHER;
    }
    ++t->depth;
    return 1;
}

static int on_start_map(void *ctx)
{
    pgw_stream_translator_t *t = ctx;
    struct frame *parent = top(t);
    if (parent == NULL) {
        if (t->chunk.is_object)
            return 0; /* a second document in one event */
        t->chunk.is_object = 1;
        return push(t, N_ROOT);
    }
    if (parent->node == N_ROOT && t->key == K_ERROR)
        t->chunk.has_error = 1;
    enum node node = value_node(t, 1, 0);
    if (node == N_CHOICE)
        t->chunk.has_choice = 1;
    return push(t, node);
}

static int on_start_array(void *ctx)
{
    pgw_stream_translator_t *t = ctx;
    struct frame *parent = top(t);
    if (parent == NULL)
        return 0; /* a chunk is an object */
    if (parent->node == N_ROOT && t->key == K_ERROR)
        t->chunk.has_error = 1;
    enum node node = value_node(t, 0, 1);
    if (node == N_CITES)
        t->chunk.cite_start = consumed(t) - 1; /* the '[' just read */
    return push(t, node);
}

static int on_end(void *ctx)
{
    pgw_stream_translator_t *t = ctx;
    struct chunk *c = &t->chunk;
    if (top(t)->node == N_CITES && c->num_cites != 4) /* the first four arrays of a chunk */
        c->cites[c->num_cites++] = (struct span){c->cite_start, consumed(t) - c->cite_start};
    --t->depth;
    return 1;
}

static int on_map_key(void *ctx, const unsigned char *s, size_t len)
{
    pgw_stream_translator_t *t = ctx;
    t->key = K_OTHER;
    if (top(t)->node == N_OTHER)
        return 1;
    for (size_t i = 0; i != sizeof(keys) / sizeof(keys[0]); ++i)
        if (keys[i].len == len && memcmp(keys[i].name, s, len) == 0) {
            t->key = keys[i].key;
            break;
        }
    return 1;
}

/* the node a scalar value sits in (arrays count their elements); NULL for a top-level scalar */
static enum node scalar_at(pgw_stream_translator_t *t, int *top_level)
{
    struct frame *parent = top(t);
    *top_level = parent == NULL;
    if (parent == NULL)
        return N_OTHER;
    ++parent->elems;
    return parent->node;
}

static int on_null(void *ctx)
{
    pgw_stream_translator_t *t = ctx;
    int top_level;
    scalar_at(t, &top_level);
    return !top_level;
}

static int on_boolean(void *ctx, int b)
{
    pgw_stream_translator_t *t = ctx;
    int top_level;
    enum node at = scalar_at(t, &top_level);
    if (b)
        note_error_value(t, at);
    return !top_level;
}

static int on_number(void *ctx, const char *s, size_t len)
{
    pgw_stream_translator_t *t = ctx;
    struct chunk *c = &t->chunk;
    int top_level;
    enum node at = scalar_at(t, &top_level);
    char buf[32];
    long long v;

    if (top_level)
        return 0;
    note_error_value(t, at);
    if (len >= sizeof(buf))
        return 1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    v = strtoll(buf, NULL, 10);
    if (at == N_TOOL_CALL && t->key == K_INDEX) {
        c->frags[c->num_frags - 1].index = v;
    } else if (at == N_USAGE) {
        switch (t->key) {
        case K_PROMPT_TOKENS:
            c->usage.prompt = v;
            c->has_usage = 1;
            break;
        case K_COMPLETION_TOKENS:
            c->usage.completion = v;
            c->has_usage = 1;
            break;
        case K_CACHE_READ_INPUT_TOKENS:
            c->usage.cache_read = v;
            break;
        case K_CACHE_CREATION_INPUT_TOKENS:
            c->usage.cache_creation = v;
            break;
        default:
            break;
        }
    } else if (at == N_PTD) {
        if (t->key == K_CACHED_TOKENS)
            c->usage.details_cached = v;
        else if (t->key == K_CACHE_CREATION_TOKENS)
            c->usage.details_creation = v;
    }
    return 1;
}

static struct span save(struct chunk *c, const unsigned char *s, size_t len)
{
    struct span sp = {c->strs->size, len};
    pgw_buf_append(&c->strs, s, len);
    return sp;
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    pgw_stream_translator_t *t = ctx;
    struct chunk *c = &t->chunk;
    int top_level;
    enum node at = scalar_at(t, &top_level);

    if (top_level)
        return 0;
    note_error_value(t, at);
    switch (at) {
    case N_CHOICE:
        if (t->key == K_FINISH_REASON) {
            size_t n = len < sizeof(c->finish_reason) - 1 ? len : sizeof(c->finish_reason) - 1;
            memcpy(c->finish_reason, s, n);
            c->finish_reason[n] = '\0';
        } else if ((t->key == K_STOP_REASON || t->key == K_MATCHED_STOP) && !c->has_stop_named) {
            c->stop_named = save(c, s, len);
            c->has_stop_named = 1;
        }
        break;
    case N_DELTA:
        if (t->key == K_CONTENT)
            pgw_buf_append(&c->content, s, len);
        else if (t->key == K_REASONING_CONTENT)
            pgw_buf_append(&c->reasoning_content, s, len);
        else if (t->key == K_REASONING)
            pgw_buf_append(&c->reasoning, s, len);
        else if (t->key == K_REFUSAL)
            pgw_buf_append(&c->refusal, s, len);
        break;
    case N_TOOL_CALL:
        if (t->key == K_ID)
            c->frags[c->num_frags - 1].id = save(c, s, len);
        break;
    case N_FUNCTION:
        if (t->key == K_NAME)
            c->frags[c->num_frags - 1].name = save(c, s, len);
        else if (t->key == K_ARGUMENTS)
            c->frags[c->num_frags - 1].args = save(c, s, len);
        break;
    case N_THINKING_BLOCK:
        if (t->key == K_THINKING)
            pgw_buf_append(&c->thinking, s, len);
        else if (t->key == K_SIGNATURE)
            pgw_buf_append(&c->signature, s, len);
        break;
    default:
        break;
    }
    return 1;
}

static const yajl_callbacks callbacks = {on_null,      on_boolean, NULL,   NULL,           on_number, on_string,
                                         on_start_map, on_map_key, on_end, on_start_array, on_end};

static void new_parser(pgw_stream_translator_t *t)
{
    if (t->parser != NULL)
        yajl_free(t->parser);
    t->parser = yajl_alloc(&callbacks, &pgw_yajl_alloc_funcs, t);
    /* one handle for the whole stream: each event is the next document */
    yajl_config(t->parser, yajl_allow_multiple_values, 1);
    /* invalid UTF-8 is repaired on output (pgw_json_append_string) rather than costing the chunk */
    yajl_config(t->parser, yajl_dont_validate_strings, 1);
}

static int parse_chunk(pgw_stream_translator_t *t, const char *data, size_t len)
{
#ifndef PGW_STREAM_NO_READER /* fuzz/ builds it without, to compare */
    /* the calls yajl would make, with yajl's strings, faster; a cancel is yajl's too, and leaves its handle untouched */
    chunk_clear(&t->chunk);
    t->depth = 0;
    t->key = K_OTHER;
    t->reading = 1;
    pgw_json_read_t rd = pgw_json_read(data, len, &callbacks, t, &t->scratch, &t->consumed, PGW_JSON_READ_YAJL_STRINGS);
    t->reading = 0;
    if (rd != PGW_JSON_READ_REFUSED)
        return rd == PGW_JSON_READ_OK && t->chunk.is_object ? 0 : -1;
        /* read again by yajl: whatever pgw_json_read leaves to it (invalid UTF-8, two documents in one event, ...) */
#endif
    chunk_clear(&t->chunk);
    t->depth = 0;
    t->key = K_OTHER;
    if (yajl_parse(t->parser, (const unsigned char *)data, len) != yajl_status_ok ||
        yajl_complete_parse(t->parser) != yajl_status_ok || !t->chunk.is_object) {
        /* the handle is stuck in its error state (or mid-document): start a fresh one */
        new_parser(t);
        return -1;
    }
    return 0;
}

/* ---- acting on a chunk (docs/streams.md#per-chunk) ---- */

static pgw_stream_status_t on_chunk(pgw_stream_translator_t *t, h2o_buffer_t **out, const char *data, size_t len)
{
    struct chunk *c = &t->chunk;
    int had_finish = t->finish_reason[0] != '\0';

    if (c->has_error) {
        pgw_upstream_failure_t f;
        /* status 200: the mapper reads the status from the error's code or type (docs/errors.md#errors-inside-a-200) */
        pgw_map_upstream_error(200, data, len, t->model, t->secret, &f);
        t->broken_by_poe = 1;
        if (!t->committed) {
            pgw_stream_status_t ret = fail_early(t, f.status, f.type, f.message);
            t->failure.no_retry = f.no_retry; /* Poe refusing the gateway's key (docs/errors.md#retries-that-cannot-help) */
            return ret;
        }
        return break_stream(t, f.type, f.message, out);
    }
    pgw_stream_translator_commit(t, out);

    if (c->has_choice) {
        /* 1. reasoning: reasoning_content, else reasoning (Poe duplicates them), else thinking_blocks; only ever in a
         * thinking block (docs/streams.md#reasoning-in-a-text-block) */
        h2o_buffer_t *r = c->reasoning_content->size != 0 ? c->reasoning_content
                          : c->reasoning->size != 0       ? c->reasoning
                                                          : c->thinking;
        if (r->size != 0) {
            switch_to(t, BLOCK_THINKING, out);
            emit_delta(t, "thinking_delta", "thinking", r->bytes, r->size, out);
            t->output_bytes += r->size;
        }
        if (c->signature->size != 0) {
            /* the upstream's own signature only, never an invented one
             * (docs/mapping.md#invented-signatures-and-unsafe-tool-ids) */
            if (t->open.kind == BLOCK_THINKING)
                emit_delta(t, "signature_delta", "signature", c->signature->bytes, c->signature->size, out);
            else
                pgw_log_debug(MODULE_NAME, "%s: a thinking signature arrived with no thinking block open; dropped", t->msg_id);
        }
        /* 2. text, and a refusal as text */
        if (c->content->size != 0) {
            switch_to(t, BLOCK_TEXT, out);
            emit_delta(t, "text_delta", "text", c->content->bytes, c->content->size, out);
            t->output_bytes += c->content->size;
        }
        if (c->refusal->size != 0) {
            switch_to(t, BLOCK_TEXT, out);
            emit_delta(t, "text_delta", "text", c->refusal->bytes, c->refusal->size, out);
            t->output_bytes += c->refusal->size;
            t->refusal_seen = 1;
        }
        /* 3. tool calls */
        for (size_t i = 0; i != c->num_frags; ++i)
            if (on_fragment(t, &c->frags[i], out) != 0)
                return PGW_STREAM_DONE;
        /* 5. finish_reason, recorded after this chunk's deltas (docs/streams.md#finish-reason-before-the-last-fragment) */
        if (c->finish_reason[0] != '\0')
            memcpy(t->finish_reason, c->finish_reason, sizeof(t->finish_reason));
        if (c->has_stop_named) {
            for (int i = 0; i != 4 && t->stop_sequences[i] != NULL; ++i)
                if (strlen(t->stop_sequences[i]) == c->stop_named.len &&
                    memcmp(t->stop_sequences[i], pgw_buf_at(c->strs, c->stop_named.off), c->stop_named.len) == 0)
                    t->stop_sequence = i;
        }
    }
    /* the pages cited, for the search's result block (docs/streams.md#web-search-in-a-stream) */
    for (size_t i = 0; i != c->num_cites; ++i)
        pgw_search_collect_json(&t->search, data + c->cites[i].off, c->cites[i].len);
    /* 6. usage on any chunk: keep the latest; usage after finish_reason ends the stream
     * (docs/streams.md#usage-never-requested-or-never-awaited) */
    if (c->has_usage) {
        t->usage = c->usage;
        t->has_usage = 1;
        if (had_finish)
            return finalise(t, TRIGGER_USAGE, out);
    }
    return PGW_STREAM_CONTINUE;
}

/* ---- the API ---- */

static char *dup_str(const char *s)
{
    size_t len = s != NULL ? strlen(s) : 0;
    char *d = h2o_mem_alloc(len + 1);
    if (len != 0)
        memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

pgw_stream_translator_t *pgw_stream_translator_create(const pgw_response_opts_t *opts)
{
    pgw_stream_translator_t *t = h2o_mem_alloc(sizeof(*t));

    memset(t, 0, sizeof(*t));
    t->msg_id = dup_str(opts->msg_id);
    t->model = dup_str(opts->model);
    t->secret = opts->secret != NULL ? dup_str(opts->secret) : NULL;
    for (size_t i = 0; i != 4 && opts->stop_sequences[i] != NULL; ++i)
        t->stop_sequences[i] = dup_str(opts->stop_sequences[i]);
    t->toolnames = opts->toolnames;
    t->est_input = opts->input_tokens > 0 ? opts->input_tokens : 1;
    t->buffer_tools = opts->buffer_tools;
    pgw_search_init(&t->search, opts->web_search, t->msg_id);
    t->state = ACTIVE;
    t->stop_sequence = -1;
    t->usage = (struct usage){-1, -1, -1, -1, -1, -1};
    h2o_buffer_init(&t->strs, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&t->ids, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&t->chunk.content, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&t->chunk.reasoning_content, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&t->chunk.reasoning, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&t->chunk.thinking, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&t->chunk.signature, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&t->chunk.refusal, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&t->chunk.strs, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&t->scratch, &h2o_socket_buffer_prototype);
    new_parser(t);
    compute_usage(t);
    return t;
}

void pgw_stream_translator_destroy(pgw_stream_translator_t *t)
{
    free(t->msg_id);
    free(t->model);
    free(t->secret);
    for (size_t i = 0; i != 4; ++i)
        free(t->stop_sequences[i]);
    for (size_t i = 0; i != t->num_tools; ++i)
        h2o_buffer_dispose(&t->tools[i].args);
    free(t->tools);
    pgw_search_dispose(&t->search);
    h2o_buffer_dispose(&t->strs);
    h2o_buffer_dispose(&t->ids);
    h2o_buffer_dispose(&t->chunk.content);
    h2o_buffer_dispose(&t->chunk.reasoning_content);
    h2o_buffer_dispose(&t->chunk.reasoning);
    h2o_buffer_dispose(&t->chunk.thinking);
    h2o_buffer_dispose(&t->chunk.signature);
    h2o_buffer_dispose(&t->chunk.refusal);
    h2o_buffer_dispose(&t->chunk.strs);
    h2o_buffer_dispose(&t->scratch);
    free(t->chunk.frags);
    yajl_free(t->parser);
    free(t);
}

pgw_stream_status_t pgw_stream_translator_feed(pgw_stream_translator_t *t, const char *data, size_t len, h2o_buffer_t **out)
{
    if (t->state != ACTIVE)
        return status_of(t); /* nothing after message_stop or an error event */
    while (len != 0 && (*data == ' ' || *data == '\t' || *data == '\r' || *data == '\n'))
        ++data, --len;
    while (len != 0 && (data[len - 1] == ' ' || data[len - 1] == '\t' || data[len - 1] == '\r' || data[len - 1] == '\n'))
        --len;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0)
        return finalise(t, TRIGGER_DONE, out);
    if (len == 0)
        return PGW_STREAM_CONTINUE;
    if (parse_chunk(t, data, len) != 0) {
        /* log, skip; an unparseable chunk does not commit (docs/streams.md#reading-a-chunk) */
        pgw_log_warn(MODULE_NAME, "%s: skipping an upstream event that is not a JSON object (%zu bytes)", t->msg_id, len);
        return PGW_STREAM_CONTINUE;
    }
    return on_chunk(t, out, data, len);
}

void pgw_stream_translator_commit(pgw_stream_translator_t *t, h2o_buffer_t **out)
{
    if (t->committed || t->state != ACTIVE)
        return;
    emit_message_start(t, out);
    t->committed = 1;
}

int pgw_stream_translator_committed(const pgw_stream_translator_t *t)
{
    return t->committed;
}

int pgw_stream_translator_awaiting_usage(const pgw_stream_translator_t *t)
{
    return t->state == ACTIVE && t->finish_reason[0] != '\0';
}

pgw_stream_status_t pgw_stream_translator_finish(pgw_stream_translator_t *t, int clean, const char *errtype, const char *message,
                                                 h2o_buffer_t **out)
{
    if (t->state != ACTIVE)
        return status_of(t);
    if (clean || t->finish_reason[0] != '\0') {
        /* a break after finish_reason loses only the usage: the answer itself is whole */
        if (!clean)
            pgw_log_info(MODULE_NAME, "%s: upstream broke after finish_reason (%s); finishing normally", t->msg_id,
                         message != NULL ? message : "no reason");
        return finalise(t, TRIGGER_EOF, out);
    }
    if (errtype == NULL)
        errtype = PGW_ERR_API;
    if (message == NULL)
        message = "the connection to Poe broke";
    if (!t->committed)
        return fail_early(t, pgw_error_status(errtype), errtype, message);
    return break_stream(t, errtype, message, out);
}

const pgw_upstream_failure_t *pgw_stream_translator_failure(const pgw_stream_translator_t *t)
{
    return &t->failure;
}

void pgw_stream_translator_usage(const pgw_stream_translator_t *t, long long *input, long long *output, long long *cache_read,
                                 long long *cache_creation)
{
    *input = t->told[0];
    *output = t->told[1];
    *cache_read = t->told[2];
    *cache_creation = t->told[3];
}

int pgw_stream_translator_wants_buffer_tools(const pgw_stream_translator_t *t)
{
    return t->wants_buffer_tools;
}

pgw_outcome_t pgw_stream_translator_outcome(const pgw_stream_translator_t *t)
{
    switch (t->state) {
    case BROKEN:
    case FAILED_EARLY:
        return t->broken_by_poe ? PGW_OUTCOME_UPSTREAM_ERROR : PGW_OUTCOME_UPSTREAM_CUT;
    default:
        return PGW_OUTCOME_OK;
    }
}
