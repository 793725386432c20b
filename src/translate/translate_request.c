/* poe-gateway: MIT licence. Anthropic Messages request -> chat/completions request (docs/mapping.md), in one streaming pass. */

/*
 * How it works
 *
 * One pass over the body with yajl's callbacks, no document tree: pgw_json_read (src/common/json_reader.c) makes the
 * calls yajl would, faster, and leaves to yajl, read again from the start, whatever it does not read the same way
 * (malformed JSON above all, so that the message stays yajl's). The callbacks keep a small stack of frames, one per
 * object or array the translator understands (the top-level object, `messages`, a message, its `content`, a block, a block's
 * `source`, ...). A frame records the key being read (objects) or the element index (arrays); that is also how error messages name
 * a field ("messages.3.content.1.type"). Anything else is skipped with a depth counter. A tool's input_schema goes through the
 * cleaner (src/translate/translate_schema.c) event by event; a tool_use's `input` is taken as raw bytes of the body, found by
 * offsets, so number literals and all survive as the `arguments` string.
 *
 * This file reads; what each piece becomes is decided where it is handed over, as soon as it is complete: a content
 * block, a message, the system text to src/translate/translate_messages.c; a tool to src/translate/translate_tools.c; the reasoning
 * fields to src/translate/translate_knobs.c at the end. A block's keys are unordered too, so its fields are held until it closes:
 * strings without escapes stay offsets into the body, others are copied into an arena per nesting level, reset per
 * block. A message whose `role` comes after its `content` array has that array skipped, then replayed from the body's
 * bytes by a second parser at the message's end, when the role is known (rare: every SDK writes `role` first).
 *
 * The input's key order is free (Claude Code sends `system` and `tools` after `messages`), so the output is assembled at
 * the end from sections: the messages, the scalars, the tools, the knobs, then the route's extra_body. Nothing depends
 * on `tools` coming first.
 *
 * Not handled on purpose: content nested deeper than a document inside a tool_result (skipped); `model` (the route
 * decides); anything outside the allowlist (docs/mapping.md#top-level-fields), which is dropped by construction.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <h2o/socket.h>
#include <yajl/yajl_parse.h>
#include "translate/estimate.h"
#include "common/json.h"
#include "common/json_reader.h"
#include "common/log.h"
#include "translate/translate.h"
#include "translate/translate_knobs.h"
#include "translate/translate_messages.h"
#include "translate/translate_keys.h"
#include "translate/translate_schema.h"
#include "translate/translate_tools.h"

#define MODULE_NAME "translate_request"

#define MAX_DEPTH 512 /* JSON nesting refused beyond this (a 400) */
#define MAX_FRAMES 24 /* the deepest structure understood is 14 frames */
#define MAX_LEVELS 3  /* message block > tool_result item > document content item */
#define MAX_STOP 4

_Static_assert(MAX_DEPTH <= PGW_SCHEMA_MAX_DEPTH, "a schema nested as deep as a body may be must fit the schema copier");

enum vtype { V_NULL, V_BOOL, V_NUMBER, V_STRING, V_OBJECT, V_ARRAY };

enum kind {
    F_ROOT,
    F_TOP,
    F_SYSTEM, /* array */
    F_SYSBLOCK,
    F_MESSAGES, /* array */
    F_MESSAGE,
    F_CONTENT, /* array of blocks, at any level */
    F_BLOCK,
    F_SOURCE,
    F_TOOLS, /* array */
    F_TOOL,
    F_TOOL_CHOICE,
    F_THINKING,
    F_OUTPUT_CONFIG,
    F_STOP, /* array */
};

enum { CONTENT_NONE, CONTENT_STRING, CONTENT_ARRAY, CONTENT_DEFERRED };
enum { A_TOP, A_OBJECT, A_LEVEL1, NUM_ARENAS = A_LEVEL1 + MAX_LEVELS };

/* a captured string: `where` is 0 when unset, 1 for bytes of the body, 2 + n for bytes of arena n */
typedef struct {
    size_t off, len;
    unsigned char where;
} ref_t;

struct frame {
    enum kind kind;
    pgw_request_key_t key; /* objects: the key whose value is being read */
    size_t index; /* arrays: the element being read */
};

/* One content block being read, at nesting level 1 (a message's), 2 (inside a tool_result or a document) or 3. */
struct block {
    ref_t type, text, thinking, id, name, tool_use_id, tool_name, title, source_str;
    ref_t src_type, src_media_type, src_data, src_url, src_file_id;
    size_t input_off, input_len; /* the raw `input` object in the body; len 0 when absent */
    /* what is handed over when it closes: has_source, is_error and the content gathered are kept here as they are read,
     * the strings are filled in from the refs above at the end */
    pgw_block_t view;
};

struct state {
    const char *body;
    size_t len;
    const pgw_translate_opts_t *opts;
    pgw_translated_t *res;
    char *err;
    size_t errsz;
    int failed;
    yajl_handle handle; /* the parser running: the body's, or a replay's; NULL while pgw_json_read reads the body */
    size_t handle_base; /* the offset in the body of what `handle` reads */
    size_t consumed;    /* pgw_json_read's offset in the body, for consumed() */

    int depth;
    size_t skip;     /* > 0: inside a skipped value, this many levels deep */
    size_t *raw_off; /* non-NULL: the skipped value is wanted as raw bytes, stored here */
    size_t *raw_len;
    struct frame frames[MAX_FRAMES];
    size_t num_frames;
    int level; /* of the innermost open block */
    struct block blocks[MAX_LEVELS + 1];
    h2o_buffer_t *arenas[NUM_ARENAS];

    pgw_schema_copier_t copy; /* active inside a tool's input_schema */

    /* the message being read */
    struct {
        pgw_role_t role;
        int content;
        ref_t text;
        size_t deferred_off, deferred_len;
    } msg;

    /* what is decided elsewhere (owned) */
    pgw_messages_t *messages; /* what the system text, the messages and their blocks become */
    pgw_tools_t *tools;       /* what `tools` and `tool_choice` become */

    h2o_buffer_t *stop; /* the stop sequences to send, comma-separated JSON strings */
    size_t num_stop;
    h2o_buffer_t *unescaped; /* the string a callback is given, decoded again (see decoded()) */

    /* the object being read in `tools` or `system` */
    struct {
        ref_t name, type, description, text;
        int has_schema;
    } obj;

    /* scalars */
    int has_messages, stream, has_max_tokens;
    long long max_tokens;
    ref_t temperature, top_p;
    struct {
        ref_t type, name;
        int disable_parallel;
    } tool_choice;
    struct {
        ref_t type;
        long long budget;
        int has_budget;
    } thinking;
    ref_t effort;

    pgw_estimate_t est;
};

/* ---- small helpers ---- */

/* Appends `s` as a JSON string. It is valid UTF-8 (yajl validated it, or the gateway wrote it), so only quotes,
 * backslashes and control characters change. */
static void append_quoted(h2o_buffer_t **buf, const char *s, size_t len)
{
    pgw_json_append_quoted(buf, s, len);
}

static const char *ref_ptr(struct state *s, const ref_t *r)
{
    return r->where == 1 ? s->body + r->off : r->where >= 2 ? s->arenas[r->where - 2]->bytes + r->off : "";
}

static int ref_is(struct state *s, const ref_t *r, const char *lit)
{
    size_t len = strlen(lit);
    return r->where != 0 && r->len == len && memcmp(ref_ptr(s, r), lit, len) == 0;
}

/* The captured string, or {NULL, 0} when none was. */
static h2o_iovec_t ref_iovec(struct state *s, const ref_t *r)
{
    return r->where != 0 ? h2o_iovec_init(ref_ptr(s, r), r->len) : h2o_iovec_init(NULL, 0);
}

/* Captures a string a callback passed: kept in place when it lies in the body (no escapes), else copied to an arena. */
static void capture(struct state *s, ref_t *r, int arena, const char *v, size_t len)
{
    r->len = len;
    if (v >= s->body && v + len <= s->body + s->len) {
        r->where = 1;
        r->off = v - s->body;
    } else {
        r->where = 2 + arena;
        r->off = s->arenas[arena]->size;
        pgw_buf_append(&s->arenas[arena], v, len);
    }
}

static int parse_int(const char *v, size_t len, long long *out)
{
    size_t i = 0;
    int neg = 0;
    long long n = 0;

    if (len != 0 && v[0] == '-') {
        neg = 1;
        ++i;
    }
    if (i == len)
        return 0;
    for (; i != len; ++i) {
        if (v[i] < '0' || v[i] > '9')
            return 0;
        n = n > (LLONG_MAX - 9) / 10 ? LLONG_MAX : n * 10 + (v[i] - '0');
    }
    *out = neg ? -n : n;
    return 1;
}

/* ---- errors ---- */

static struct frame *top(struct state *s)
{
    return &s->frames[s->num_frames - 1];
}

static int is_array_kind(enum kind k)
{
    return k == F_SYSTEM || k == F_MESSAGES || k == F_CONTENT || k == F_TOOLS || k == F_STOP;
}

/* Writes the path of the value being read ("messages.3.content.1"), or with `last` of that member of the innermost
 * object, and ": " after it when it is not empty, into buf (NUL-terminated, cut to fit); returns its length. */
static size_t put_path(struct state *s, const char *last, char *buf, size_t size)
{
    size_t n = 0;

#define PUT(...)                                                                                                                   \
    do {                                                                                                                           \
        if (n < size)                                                                                                              \
            n += snprintf(buf + n, size - n, __VA_ARGS__);                                                                         \
    } while (0)
    for (size_t i = 1; i < s->num_frames; ++i) {
        const struct frame *f = &s->frames[i];
        const char *sep = n == 0 ? "" : ".";
        if (last != NULL && i == s->num_frames - 1)
            PUT("%s%s", sep, last);
        else if (is_array_kind(f->kind))
            PUT("%s%zu", sep, f->index);
        else if (f->key > K_OTHER)
            PUT("%s%s", sep, pgw_request_key_name(f->key));
    }
    PUT("%s", n == 0 ? "" : ": ");
#undef PUT
    return n < size ? n : size != 0 ? size - 1 : 0;
}

/*
 * Records a client-facing error naming the field: the path of the value being read, or, with `last` set, of the member
 * `last` of the innermost object (a missing field). Returns 0, which yajl callbacks return to stop the parse.
 */
static int fail_at(struct state *s, const char *last, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail_at(struct state *s, const char *last, const char *fmt, ...)
{
    size_t n = put_path(s, last, s->err, s->errsz);
    va_list args;

    if (n < s->errsz) {
        va_start(args, fmt);
        vsnprintf(s->err + n, s->errsz - n, fmt, args);
        va_end(args);
    }
    s->failed = 1;
    return 0;
}

#define EXPECTED(s, what) fail_at((s), NULL, "expected " what)

/* ---- frames ---- */

static int push(struct state *s, enum kind kind)
{
    /* the structures understood are shallower than MAX_FRAMES; deeper content is skipped before it gets here */
    if (s->num_frames == MAX_FRAMES)
        return fail_at(s, NULL, "nested too deeply");
    s->frames[s->num_frames++] = (struct frame){kind, K_NONE, 0};
    return 1;
}

static void after_value(struct state *s)
{
    struct frame *f = top(s);
    if (is_array_kind(f->kind))
        ++f->index;
    else
        f->key = K_NONE;
}

/* Skips the value starting now: a container's contents are ignored until it closes. */
static int ignore(struct state *s, enum vtype t)
{
    if (t == V_OBJECT || t == V_ARRAY)
        s->skip = 1;
    return 1;
}

/* The offset in the body just past the token being reported, whichever parser reports it. */
static size_t consumed(struct state *s)
{
    return s->handle != NULL ? s->handle_base + yajl_get_bytes_consumed(s->handle) : s->consumed;
}

/* Skips the container starting now, keeping its raw bytes' position. */
static int take_raw(struct state *s, size_t *off, size_t *len)
{
    /* the count stands just past the '{' or '[' reported */
    *off = consumed(s) - 1;
    *len = 0;
    s->raw_off = off;
    s->raw_len = len;
    s->skip = 1;
    return 1;
}

/* ---- blocks and messages: what they become is src/translate/translate_messages.c's ---- */

/* The block's strings as views, for src/translate/translate_messages.c. */
static void block_view(struct state *s, struct block *b)
{
    pgw_block_t *v = &b->view;
    v->type = ref_iovec(s, &b->type);
    v->text = ref_iovec(s, &b->text);
    v->thinking = ref_iovec(s, &b->thinking);
    v->id = ref_iovec(s, &b->id);
    v->name = ref_iovec(s, &b->name);
    v->tool_use_id = ref_iovec(s, &b->tool_use_id);
    v->tool_name = ref_iovec(s, &b->tool_name);
    v->title = ref_iovec(s, &b->title);
    v->source_str = ref_iovec(s, &b->source_str);
    v->src_type = ref_iovec(s, &b->src_type);
    v->src_media_type = ref_iovec(s, &b->src_media_type);
    v->src_data = ref_iovec(s, &b->src_data);
    v->src_url = ref_iovec(s, &b->src_url);
    v->src_file_id = ref_iovec(s, &b->src_file_id);
    v->input = h2o_iovec_init(s->body + b->input_off, b->input_len);
}

/* Where the block being handed over stands, for src/translate/translate_messages.c's log line. */
static size_t where(void *ctx, char *buf, size_t size)
{
    return put_path(ctx, NULL, buf, size);
}

static int finish_block(struct state *s)
{
    struct block *b = &s->blocks[s->level];
    const char *missing;

    if (!b->type.where)
        return fail_at(s, "type", "required");
    block_view(s, b);
    if (pgw_messages_block(s->messages, s->msg.role, &b->view, s->level > 1 ? &s->blocks[s->level - 1].view : NULL, &missing) != 0)
        return fail_at(s, missing, "required");
    return 1;
}

static void begin_block(struct state *s)
{
    struct block *b = &s->blocks[++s->level];
    h2o_buffer_t *joined = b->view.joined, *attach = b->view.attach;
    memset(b, 0, sizeof(*b));
    b->view.joined = joined;
    b->view.joined->size = 0;
    b->view.attach = attach;
    b->view.attach->size = 0;
    s->arenas[A_LEVEL1 + s->level - 1]->size = 0;
}

/* ---- messages ---- */

static void begin_message(struct state *s)
{
    memset(&s->msg, 0, sizeof(s->msg));
    s->arenas[A_OBJECT]->size = 0;
    pgw_messages_begin(s->messages);
}

static const yajl_callbacks callbacks;

/* Reads a content array skipped because `role` came after it, now that the role is known. */
static int replay_content(struct state *s)
{
    yajl_handle saved = s->handle, h = yajl_alloc(&callbacks, &pgw_yajl_alloc_funcs, s);
    size_t saved_base = s->handle_base;
    yajl_status st;

    s->handle = h;
    s->handle_base = s->msg.deferred_off;
    s->msg.content = CONTENT_NONE; /* message_value sees the array again, now with the role known */
    top(s)->key = K_CONTENT;
    if ((st = yajl_parse(h, (const unsigned char *)s->body + s->msg.deferred_off, s->msg.deferred_len)) == yajl_status_ok)
        st = yajl_complete_parse(h);
    yajl_free(h);
    s->handle = saved;
    s->handle_base = saved_base;
    /* the bytes were parsed once already: only a callback can have stopped this */
    return st == yajl_status_ok && !s->failed;
}

static int finish_message(struct state *s)
{
    if (s->msg.role == PGW_ROLE_NONE)
        return fail_at(s, "role", "required");
    if (s->msg.content == CONTENT_NONE)
        return fail_at(s, "content", "required");
    if (s->msg.content == CONTENT_DEFERRED && !replay_content(s))
        return 0;
    if (s->msg.content == CONTENT_STRING)
        pgw_messages_text(s->messages, s->msg.role, ref_ptr(s, &s->msg.text), s->msg.text.len);
    pgw_messages_end(s->messages, s->msg.role);
    return 1;
}

/* ---- tools: which go upstream, and how, is src/translate/translate_tools.c's ---- */

static void begin_tool(struct state *s)
{
    memset(&s->obj, 0, sizeof(s->obj));
    s->arenas[A_OBJECT]->size = 0;
}

static int finish_tool(struct state *s)
{
    if (pgw_tools_end(s->tools, ref_iovec(s, &s->obj.type), ref_iovec(s, &s->obj.name), ref_iovec(s, &s->obj.description),
                      s->obj.has_schema) != 0)
        return fail_at(s, "name", "required");
    return 1;
}

/* ---- values, by frame ---- */

static int top_value(struct state *s, pgw_request_key_t key, enum vtype t, const char *v, size_t len)
{
    if (t == V_NULL)
        return key == K_MESSAGES ? EXPECTED(s, "an array") : 1;
    switch (key) {
    case K_MAX_TOKENS:
        if (t != V_NUMBER || !parse_int(v, len, &s->max_tokens))
            return EXPECTED(s, "an integer");
        if (s->max_tokens < 1)
            return fail_at(s, NULL, "must be at least 1");
        s->has_max_tokens = 1;
        return 1;
    case K_TEMPERATURE:
    case K_TOP_P:
        if (t != V_NUMBER)
            return EXPECTED(s, "a number");
        capture(s, key == K_TEMPERATURE ? &s->temperature : &s->top_p, A_TOP, v, len);
        return 1;
    case K_STREAM:
        if (t != V_BOOL)
            return EXPECTED(s, "a boolean");
        s->stream = v[0] == 't';
        return 1;
    case K_STOP_SEQUENCES:
        return t == V_ARRAY ? push(s, F_STOP) : EXPECTED(s, "an array of strings");
    case K_SYSTEM:
        if (t == V_STRING) {
            pgw_messages_system(s->messages, v, len);
            return 1;
        }
        return t == V_ARRAY ? push(s, F_SYSTEM) : EXPECTED(s, "a string or an array");
    case K_MESSAGES:
        s->has_messages = 1;
        return t == V_ARRAY ? push(s, F_MESSAGES) : EXPECTED(s, "an array");
    case K_TOOLS:
        return t == V_ARRAY ? push(s, F_TOOLS) : EXPECTED(s, "an array");
    case K_TOOL_CHOICE:
        return t == V_OBJECT ? push(s, F_TOOL_CHOICE) : EXPECTED(s, "an object");
    case K_THINKING:
        return t == V_OBJECT ? push(s, F_THINKING) : EXPECTED(s, "an object");
    case K_OUTPUT_CONFIG:
        return t == V_OBJECT ? push(s, F_OUTPUT_CONFIG) : EXPECTED(s, "an object");
    default:
        /* model (the route decides), metadata, context_management, top_k, anything unknown: never upstream
         * (docs/mapping.md#top-level-fields) */
        return ignore(s, t);
    }
}

/* A string member of an object being captured; null counts as absent. */
static int string_member(struct state *s, ref_t *r, int arena, enum vtype t, const char *v, size_t len)
{
    if (t == V_NULL)
        return 1;
    if (t != V_STRING)
        return EXPECTED(s, "a string");
    capture(s, r, arena, v, len);
    return 1;
}

static int content_array(struct state *s)
{
    /* deeper content than MAX_LEVELS is not a structure Anthropic defines: skipped */
    return s->level < MAX_LEVELS ? push(s, F_CONTENT) : ignore(s, V_ARRAY);
}

static int block_value(struct state *s, pgw_request_key_t key, enum vtype t, const char *v, size_t len)
{
    struct block *b = &s->blocks[s->level];
    int arena = A_LEVEL1 + s->level - 1;

    switch (key) {
    case K_TYPE:
        return string_member(s, &b->type, arena, t, v, len);
    case K_TEXT:
        return string_member(s, &b->text, arena, t, v, len);
    case K_THINKING:
        return string_member(s, &b->thinking, arena, t, v, len);
    case K_ID:
        return string_member(s, &b->id, arena, t, v, len);
    case K_NAME:
        return string_member(s, &b->name, arena, t, v, len);
    case K_TOOL_USE_ID:
        return string_member(s, &b->tool_use_id, arena, t, v, len);
    case K_TOOL_NAME:
        return string_member(s, &b->tool_name, arena, t, v, len);
    case K_TITLE:
        return string_member(s, &b->title, arena, t, v, len);
    case K_IS_ERROR:
        if (t == V_NULL)
            return 1;
        if (t != V_BOOL)
            return EXPECTED(s, "a boolean");
        b->view.is_error = v[0] == 't';
        return 1;
    case K_INPUT:
        if (t == V_NULL)
            return 1;
        return t == V_OBJECT ? take_raw(s, &b->input_off, &b->input_len) : EXPECTED(s, "an object");
    case K_SOURCE:
        if (t == V_STRING) {
            /* search_result: the source is a URL */
            capture(s, &b->source_str, arena, v, len);
            return 1;
        }
        if (t == V_NULL)
            return 1;
        if (t != V_OBJECT)
            return EXPECTED(s, "an object");
        b->view.has_source = 1;
        return push(s, F_SOURCE);
    case K_CONTENT:
        if (t == V_STRING) {
            pgw_messages_block_text(&b->view, v, len);
            return 1;
        }
        if (t == V_NULL)
            return 1;
        return t == V_ARRAY ? content_array(s) : EXPECTED(s, "a string or an array");
    default:
        return ignore(s, t);
    }
}

static int source_value(struct state *s, pgw_request_key_t key, enum vtype t, const char *v, size_t len)
{
    struct block *b = &s->blocks[s->level];
    int arena = A_LEVEL1 + s->level - 1;

    switch (key) {
    case K_TYPE:
        return string_member(s, &b->src_type, arena, t, v, len);
    case K_MEDIA_TYPE:
        return string_member(s, &b->src_media_type, arena, t, v, len);
    case K_DATA:
        return string_member(s, &b->src_data, arena, t, v, len);
    case K_URL:
        return string_member(s, &b->src_url, arena, t, v, len);
    case K_FILE_ID:
        return string_member(s, &b->src_file_id, arena, t, v, len);
    case K_CONTENT:
        /* a document's content source */
        return block_value(s, key, t, v, len);
    default:
        return ignore(s, t);
    }
}

static int message_value(struct state *s, pgw_request_key_t key, enum vtype t, const char *v, size_t len)
{
    switch (key) {
    case K_ROLE:
        /* a second role or content would re-read what was translated under the first (found by fuzzing: the output
         * was no longer JSON) */
        if (s->msg.role != PGW_ROLE_NONE)
            return fail_at(s, NULL, "given twice");
        if (t != V_STRING)
            return EXPECTED(s, "a string");
#define IS(lit) (len == sizeof(lit) - 1 && memcmp(v, lit, len) == 0)
        s->msg.role = IS("user")        ? PGW_ROLE_USER
                      : IS("assistant") ? PGW_ROLE_ASSISTANT
                      : IS("system")    ? PGW_ROLE_SYSTEM
                                        : PGW_ROLE_NONE;
#undef IS
        if (s->msg.role == PGW_ROLE_NONE)
            return EXPECTED(s, "\"user\", \"assistant\" or \"system\"");
        return 1;
    case K_CONTENT:
        if (s->msg.content != CONTENT_NONE)
            return fail_at(s, NULL, "given twice");
        if (t == V_STRING) {
            s->msg.content = CONTENT_STRING;
            capture(s, &s->msg.text, A_OBJECT, v, len);
            return 1;
        }
        if (t != V_ARRAY)
            return EXPECTED(s, "a string or an array");
        if (s->msg.role == PGW_ROLE_NONE) {
            s->msg.content = CONTENT_DEFERRED;
            return take_raw(s, &s->msg.deferred_off, &s->msg.deferred_len);
        }
        s->msg.content = CONTENT_ARRAY;
        return push(s, F_CONTENT);
    default:
        return ignore(s, t);
    }
}

static int tool_value(struct state *s, pgw_request_key_t key, enum vtype t, const char *v, size_t len)
{
    switch (key) {
    case K_NAME:
        return string_member(s, &s->obj.name, A_OBJECT, t, v, len);
    case K_TYPE:
        return string_member(s, &s->obj.type, A_OBJECT, t, v, len);
    case K_DESCRIPTION:
        return string_member(s, &s->obj.description, A_OBJECT, t, v, len);
    case K_INPUT_SCHEMA:
        if (t == V_NULL)
            return 1;
        if (t != V_OBJECT)
            return EXPECTED(s, "an object");
        s->obj.has_schema = 1;
        pgw_schema_begin(&s->copy, pgw_tools_schema(s->tools), s->opts->minimal_schema);
        return 1;
    default:
        /* cache_control, defer_loading, strict, input_examples, ...: dropped */
        return ignore(s, t);
    }
}

/* Every value the parser reports (scalar, or the start of an object or array), dispatched on where it stands. */
static int on_value(struct state *s, enum vtype t, const char *v, size_t len)
{
    struct frame *f = top(s);

    switch (f->kind) {
    case F_ROOT:
        if (t != V_OBJECT) {
            snprintf(s->err, s->errsz, "request body must be a JSON object");
            s->failed = 1;
            return 0;
        }
        return push(s, F_TOP);
    case F_TOP:
        return top_value(s, f->key, t, v, len);
    case F_STOP:
        if (t != V_STRING)
            return EXPECTED(s, "a string");
        /* the first four that are not whitespace-only (docs/mapping.md#stop-sequences) */
        if (s->num_stop < MAX_STOP && !pgw_is_blank(v, len)) {
            if (s->num_stop < sizeof(s->res->stop_sequences) / sizeof(s->res->stop_sequences[0]) &&
                s->res->stop_sequences[s->num_stop] == NULL)
                s->res->stop_sequences[s->num_stop] = h2o_strdup(NULL, v, len).base;
            if (s->num_stop++ != 0)
                pgw_buf_append_lit(&s->stop, ",");
            append_quoted(&s->stop, v, len);
        }
        return 1;
    case F_SYSTEM:
        if (t != V_OBJECT)
            return EXPECTED(s, "an object");
        memset(&s->obj, 0, sizeof(s->obj));
        s->arenas[A_OBJECT]->size = 0;
        return push(s, F_SYSBLOCK);
    case F_SYSBLOCK:
        if (f->key == K_TYPE)
            return string_member(s, &s->obj.type, A_OBJECT, t, v, len);
        if (f->key == K_TEXT)
            return string_member(s, &s->obj.text, A_OBJECT, t, v, len);
        return ignore(s, t);
    case F_MESSAGES:
        if (t != V_OBJECT)
            return EXPECTED(s, "an object");
        begin_message(s);
        return push(s, F_MESSAGE);
    case F_MESSAGE:
        return message_value(s, f->key, t, v, len);
    case F_CONTENT:
        if (t != V_OBJECT)
            return EXPECTED(s, "an object");
        begin_block(s);
        return push(s, F_BLOCK);
    case F_BLOCK:
        return block_value(s, f->key, t, v, len);
    case F_SOURCE:
        return source_value(s, f->key, t, v, len);
    case F_TOOLS:
        if (t != V_OBJECT)
            return EXPECTED(s, "an object");
        if (f->index == PGW_TRANSLATE_MAX_TOOLS) {
            snprintf(s->err, s->errsz, "tools: more than %d tools; the gateway accepts at most %d per request",
                     PGW_TRANSLATE_MAX_TOOLS, PGW_TRANSLATE_MAX_TOOLS);
            s->failed = 1;
            return 0;
        }
        begin_tool(s);
        return push(s, F_TOOL);
    case F_TOOL:
        return tool_value(s, f->key, t, v, len);
    case F_TOOL_CHOICE:
        if (f->key == K_TYPE)
            return string_member(s, &s->tool_choice.type, A_TOP, t, v, len);
        if (f->key == K_NAME)
            return string_member(s, &s->tool_choice.name, A_TOP, t, v, len);
        if (f->key == K_DISABLE_PARALLEL_TOOL_USE) {
            if (t == V_NULL)
                return 1;
            if (t != V_BOOL)
                return EXPECTED(s, "a boolean");
            s->tool_choice.disable_parallel = v[0] == 't';
            return 1;
        }
        return ignore(s, t);
    case F_THINKING:
        if (f->key == K_TYPE)
            return string_member(s, &s->thinking.type, A_TOP, t, v, len);
        if (f->key == K_BUDGET_TOKENS) {
            if (t == V_NULL)
                return 1;
            if (t != V_NUMBER || !parse_int(v, len, &s->thinking.budget))
                return EXPECTED(s, "an integer");
            s->thinking.has_budget = 1;
            return 1;
        }
        return ignore(s, t);
    case F_OUTPUT_CONFIG:
        /* effort only; format has no Poe equivalent (docs/mapping.md#top-level-fields) */
        if (f->key == K_EFFORT)
            return string_member(s, &s->effort, A_TOP, t, v, len);
        return ignore(s, t);
    }
    return ignore(s, t);
}

/* An object or array of a frame has closed. */
static int on_frame_end(struct state *s)
{
    struct frame *f = top(s);

    switch (f->kind) {
    case F_SYSBLOCK:
        if (!s->obj.type.where)
            return fail_at(s, "type", "required");
        if (ref_is(s, &s->obj.type, "text") && s->obj.text.where)
            pgw_messages_system(s->messages, ref_ptr(s, &s->obj.text), s->obj.text.len);
        return 1;
    case F_MESSAGES:
        pgw_messages_end_all(s->messages);
        return 1;
    case F_MESSAGE:
        return finish_message(s);
    case F_BLOCK:
        if (!finish_block(s))
            return 0;
        --s->level;
        return 1;
    case F_TOOL:
        return finish_tool(s);
    case F_TOOL_CHOICE:
        if (!s->tool_choice.type.where)
            return fail_at(s, "type", "required");
        if (!(ref_is(s, &s->tool_choice.type, "auto") || ref_is(s, &s->tool_choice.type, "any") ||
              ref_is(s, &s->tool_choice.type, "none") || ref_is(s, &s->tool_choice.type, "tool")))
            return fail_at(s, "type", "expected \"auto\", \"any\", \"tool\" or \"none\"");
        if (ref_is(s, &s->tool_choice.type, "tool") && !s->tool_choice.name.where)
            return fail_at(s, "name", "required");
        return 1;
    default:
        return 1;
    }
}

/* ---- yajl callbacks ---- */

static int on_scalar(struct state *s, enum vtype t, const char *v, size_t len)
{
    if (s->skip != 0)
        return 1;
    if (s->copy.active) {
        pgw_schema_scalar(&s->copy, t == V_STRING, v, len);
        return 1;
    }
    if (!on_value(s, t, v, len))
        return 0;
    after_value(s);
    return 1;
}

static int on_null(void *ctx)
{
    return on_scalar(ctx, V_NULL, "null", 4);
}

static int on_boolean(void *ctx, int b)
{
    return on_scalar(ctx, V_BOOL, b ? "true" : "false", b ? 4 : 5);
}

static int on_number(void *ctx, const char *v, size_t len)
{
    return on_scalar(ctx, V_NUMBER, v, len);
}

/*
 * A string yajl had to decode (one with escapes: it lies outside the body) decoded again from its bytes in the body by
 * pgw_json_unescape, the gateway's one string decoder: yajl 2.1 writes a lone low surrogate (\udc00) as bytes that are
 * not UTF-8, which would go upstream as they are. The string ends just before what yajl has consumed.
 */
static const char *decoded(struct state *s, const unsigned char *v, size_t *len)
{
    if (s->handle == NULL)
        return (const char *)v; /* pgw_json_read decodes with pgw_json_unescape already */
    const char *close = s->body + s->handle_base + yajl_get_bytes_consumed(s->handle) - 1, *open = close;
    if ((const char *)v >= s->body && (const char *)v + *len <= s->body + s->len)
        return (const char *)v;
    if (close <= s->body || close >= s->body + s->len || *close != '"')
        return (const char *)v;
    /* the opening quote: the nearest one before that is not escaped (preceded by an even run of backslashes) */
    for (;;) {
        if ((open = memrchr(s->body, '"', open - s->body)) == NULL)
            return (const char *)v;
        size_t run = 0;
        while (open - run > s->body && open[-1 - (ptrdiff_t)run] == '\\')
            ++run;
        if (run % 2 == 0)
            break;
    }
    char *dst = h2o_buffer_reserve(&s->unescaped, close - open).base;
    *len = pgw_json_unescape(open + 1, close - open - 1, dst);
    return dst;
}

static int on_string(void *ctx, const unsigned char *v, size_t len)
{
    struct state *s = ctx;
    const char *str = s->skip != 0 ? (const char *)v : decoded(s, v, &len);
    return on_scalar(s, V_STRING, str, len);
}

static int on_open(struct state *s, enum vtype t)
{
    if (++s->depth > MAX_DEPTH) {
        snprintf(s->err, s->errsz, "request body nests deeper than %d levels", MAX_DEPTH);
        s->failed = 1;
        return 0;
    }
    if (s->skip != 0) {
        ++s->skip;
        return 1;
    }
    if (s->copy.active) {
        if (pgw_schema_open(&s->copy, t == V_OBJECT))
            s->skip = 1; /* left out by the cleaner */
        return 1;
    }
    return on_value(s, t, NULL, 0);
}

static int on_close(struct state *s)
{
    if (s->skip != 0) {
        --s->depth;
        if (--s->skip == 0) {
            if (s->raw_off != NULL) {
                *s->raw_len = consumed(s) - *s->raw_off;
                s->raw_off = NULL;
            }
            /* a value the copier dropped is not a value of the frame */
            if (!s->copy.active)
                after_value(s);
        }
        return 1;
    }
    if (s->copy.active) {
        --s->depth;
        if (pgw_schema_close(&s->copy))
            after_value(s); /* the input_schema value of the tool */
        return 1;
    }
    /* frames finish at their own depth: a replay reads the content array as if in place */
    if (!on_frame_end(s))
        return 0;
    --s->depth;
    --s->num_frames;
    after_value(s);
    return 1;
}

static int on_start_map(void *ctx)
{
    return on_open(ctx, V_OBJECT);
}

static int on_start_array(void *ctx)
{
    return on_open(ctx, V_ARRAY);
}

static int on_end(void *ctx)
{
    return on_close(ctx);
}

static int on_map_key(void *ctx, const unsigned char *k, size_t len)
{
    struct state *s = ctx;

    if (s->skip != 0)
        return 1;
    k = (const unsigned char *)decoded(s, k, &len);
    if (s->copy.active) {
        pgw_schema_key(&s->copy, (const char *)k, len);
        return 1;
    }
    top(s)->key = pgw_request_key_find((const char *)k, len);
    return 1;
}

static const yajl_callbacks callbacks = {on_null,      on_boolean, NULL,   NULL,           on_number, on_string,
                                         on_start_map, on_map_key, on_end, on_start_array, on_end};

/* ---- assembly ---- */

static void assemble(struct state *s, h2o_buffer_t **out)
{
    const pgw_extra_body_t *x = s->opts->extra_body;
    pgw_tool_choice_t choice = {ref_iovec(s, &s->tool_choice.type), ref_iovec(s, &s->tool_choice.name),
                                s->tool_choice.disable_parallel};
    pgw_thinking_t thinking = {ref_iovec(s, &s->thinking.type), s->thinking.budget, s->thinking.has_budget,
                               ref_iovec(s, &s->effort), s->max_tokens};

    const char *model = s->opts->upstream_model != NULL ? s->opts->upstream_model : "";
    pgw_buf_append_lit(out, "{\"model\":");
    append_quoted(out, model, strlen(model));
    pgw_buf_append_lit(out, ",\"messages\":[");
    pgw_messages_write(s->messages, pgw_tools_collided(s->tools) ? &s->res->toolnames : NULL, out);
    pgw_buf_append_lit(out, "]");

    if (s->has_max_tokens && !pgw_extra_body_has(x, "max_tokens")) {
        pgw_buf_append_lit(out, ",\"max_tokens\":");
        pgw_json_append_int(out, s->max_tokens);
    }
    if (s->temperature.where && !pgw_extra_body_has(x, "temperature")) {
        pgw_buf_append_lit(out, ",\"temperature\":");
        pgw_buf_append(out, ref_ptr(s, &s->temperature), s->temperature.len);
    }
    if (s->top_p.where && !pgw_extra_body_has(x, "top_p")) {
        pgw_buf_append_lit(out, ",\"top_p\":");
        pgw_buf_append(out, ref_ptr(s, &s->top_p), s->top_p.len);
    }
    if (s->num_stop != 0 && !pgw_extra_body_has(x, "stop")) {
        pgw_buf_append_lit(out, ",\"stop\":[");
        pgw_buf_append(out, s->stop->bytes, s->stop->size);
        pgw_buf_append_lit(out, "]");
    }
    if (s->stream) /* MUST: without include_usage no usage arrives and auto-compaction never fires
                    * (docs/mapping.md#top-level-fields) */
        pgw_buf_append_lit(out, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    pgw_tools_write(s->tools, &choice, x, out);
    pgw_knobs_append(out, s->opts->bot, &thinking, x);
    pgw_tools_server(s->tools, &choice, s->opts->bot, x, out, s->res);
    pgw_extra_body_append(x, out);
    pgw_buf_append_lit(out, "}");
}

/* ---- entry points ---- */

static void init_buffer(h2o_buffer_t **b)
{
    h2o_buffer_init(b, &h2o_socket_buffer_prototype);
}

/*
 * One translation, the body read by pgw_json_read (`fast`) or by yajl. Returns what pgw_translate_request does, or 1 when
 * pgw_json_read left the body to yajl (nothing appended to `out`; `res` to dispose).
 */
static int translate(const char *body, size_t len, const pgw_translate_opts_t *opts, h2o_buffer_t **out, pgw_translated_t *res,
                     char *err, size_t errsz, int fast)
{
    struct state *s = h2o_mem_alloc(sizeof(*s));
    h2o_buffer_t **buffers[] = {&s->stop, &s->unescaped};
    int ret = -1;

    memset(res, 0, sizeof(*res));
    memset(s, 0, sizeof(*s));
    s->body = body;
    s->len = len;
    s->opts = opts;
    s->res = res;
    s->err = err;
    s->errsz = errsz;
    s->frames[0].kind = F_ROOT;
    s->num_frames = 1;
    for (size_t i = 0; i != sizeof(buffers) / sizeof(buffers[0]); ++i)
        init_buffer(buffers[i]);
    for (size_t i = 0; i != NUM_ARENAS; ++i)
        init_buffer(&s->arenas[i]);
    for (size_t i = 1; i <= MAX_LEVELS; ++i) {
        init_buffer(&s->blocks[i].view.joined);
        init_buffer(&s->blocks[i].view.attach);
    }
    s->messages = pgw_messages_create(opts->echo_reasoning, &s->est, where, s);
    s->tools = pgw_tools_create(&res->toolnames, &s->est);
    if (errsz != 0)
        err[0] = '\0';

    yajl_status st;
    if (fast) {
        /* the same calls yajl would make, faster; whatever it leaves to yajl (malformed JSON above all, whose message is
         * yajl's) is read again from the start */
        pgw_json_read_t rd = pgw_json_read(body, len, &callbacks, s, &s->unescaped, &s->consumed, 0);
        if (rd == PGW_JSON_READ_REFUSED || (rd == PGW_JSON_READ_CANCELED && !s->failed)) {
            ret = 1;
            goto Exit;
        }
        st = rd == PGW_JSON_READ_OK ? yajl_status_ok : yajl_status_client_canceled;
    } else {
        s->handle = yajl_alloc(&callbacks, &pgw_yajl_alloc_funcs, s);
        st = len == 0 ? yajl_status_error : yajl_parse(s->handle, (const unsigned char *)body, len);
        if (st == yajl_status_ok)
            st = yajl_complete_parse(s->handle);
    }
    if (st != yajl_status_ok) {
        if (!s->failed) {
            if (len == 0) {
                snprintf(err, errsz, "request body is empty; expected a JSON object");
            } else {
                unsigned char *msg = yajl_get_error(s->handle, 0, (const unsigned char *)body, len);
                size_t mlen = strlen((const char *)msg);
                while (mlen != 0 && (msg[mlen - 1] == '\n' || msg[mlen - 1] == ' '))
                    --mlen;
                snprintf(err, errsz, "request body is not valid JSON: %.*s (at byte %zu)", (int)mlen, (const char *)msg,
                         yajl_get_bytes_consumed(s->handle));
                yajl_free_error(s->handle, msg);
            }
        }
        goto Exit;
    }
    if (!s->has_messages) {
        snprintf(err, errsz, "messages: required");
        goto Exit;
    }
    s->res->stream = s->stream;
    if (s->has_max_tokens && opts->bot != NULL && opts->bot->max_output_tokens > 0 && s->max_tokens > opts->bot->max_output_tokens)
        s->max_tokens = opts->bot->max_output_tokens; /* clamp to the catalog's limit (docs/mapping.md#max-tokens) */
    s->res->max_tokens = s->has_max_tokens ? s->max_tokens : 0;
    assemble(s, out);
    s->res->input_tokens = pgw_estimate_total(&s->est);
    ret = 0;

Exit:
    if (s->handle != NULL)
        yajl_free(s->handle);
    for (size_t i = 0; i != sizeof(buffers) / sizeof(buffers[0]); ++i)
        h2o_buffer_dispose(buffers[i]);
    pgw_messages_destroy(s->messages);
    pgw_tools_destroy(s->tools);
    for (size_t i = 0; i != NUM_ARENAS; ++i)
        h2o_buffer_dispose(&s->arenas[i]);
    for (size_t i = 1; i <= MAX_LEVELS; ++i) {
        h2o_buffer_dispose(&s->blocks[i].view.joined);
        h2o_buffer_dispose(&s->blocks[i].view.attach);
    }
    free(s);
    return ret;
}

int pgw_translate_request(const char *body, size_t len, const pgw_translate_opts_t *opts, h2o_buffer_t **out, pgw_translated_t *res,
                          char *err, size_t errsz)
{
#ifndef PGW_TRANSLATE_NO_READER /* fuzz/ builds it without, to compare */
    int ret = translate(body, len, opts, out, res, err, errsz, 1);
    if (ret != 1)
        return ret;
    pgw_translated_dispose(res); /* what the first reading made */
#endif
    return translate(body, len, opts, out, res, err, errsz, 0);
}

void pgw_translated_dispose(pgw_translated_t *res)
{
    pgw_toolnames_dispose(&res->toolnames);
    for (size_t i = 0; i != sizeof(res->stop_sequences) / sizeof(res->stop_sequences[0]); ++i) {
        free(res->stop_sequences[i]);
        res->stop_sequences[i] = NULL;
    }
}
