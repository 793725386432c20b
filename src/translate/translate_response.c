/* poe-gateway: MIT licence. A whole chat/completions response translated into an Anthropic message
 * (docs/mapping.md#the-whole-response). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>
#include "common/errors.h"
#include "common/json.h"
#include "common/log.h"
#include "translate/translate.h"
#include "translate/translate_search.h"

#define MODULE_NAME "translate_response"

/* containers nested deeper than this in tool arguments are not repaired */
#define REPAIR_MAX_DEPTH 64

/* ---- tool arguments: always an object (docs/mapping.md#tool-input) ---- */

/*
 * Whether tool arguments are exactly one JSON object. yajl alone is not enough: once a document is complete, trailing
 * bytes that open a string it never sees closed ({"a":1}"x) are taken for a token still arriving, and both yajl_parse
 * and yajl_complete_parse succeed. So the callbacks note where the top-level value ended, and nothing may follow it.
 */
struct first {
    yajl_handle h;
    int kind;     /* 0 nothing yet, 1 an object came first, 2 something else did */
    size_t depth; /* containers open */
    size_t end;   /* bytes consumed when the top-level value ended; SIZE_MAX before */
};

static int on_first_value(void *ctx)
{
    struct first *f = ctx;
    if (f->kind == 0)
        f->kind = 2; /* a scalar or an array came first */
    if (f->depth == 0)
        f->end = yajl_get_bytes_consumed(f->h);
    return 1;
}

static int on_first_null(void *ctx)
{
    return on_first_value(ctx);
}

static int on_first_bool(void *ctx, int b)
{
    return on_first_value(ctx);
}

static int on_first_number(void *ctx, const char *s, size_t l)
{
    return on_first_value(ctx);
}

static int on_first_string(void *ctx, const unsigned char *s, size_t l)
{
    return on_first_value(ctx);
}

static int on_first_open(void *ctx, int is_map)
{
    struct first *f = ctx;
    if (f->kind == 0)
        f->kind = is_map ? 1 : 2;
    ++f->depth;
    return 1;
}

static int on_first_map(void *ctx)
{
    return on_first_open(ctx, 1);
}

static int on_first_array(void *ctx)
{
    return on_first_open(ctx, 0);
}

static int on_first_key(void *ctx, const unsigned char *s, size_t l)
{
    return 1;
}

static int on_first_end(void *ctx)
{
    struct first *f = ctx;
    if (--f->depth == 0)
        f->end = yajl_get_bytes_consumed(f->h);
    return 1;
}

/* 1 when `s` is exactly one well-formed JSON object: yajl validates strings as UTF-8; the caller trimmed whitespace */
static int is_json_object(const char *s, size_t len)
{
    static const yajl_callbacks callbacks = {on_first_null,   on_first_bool,   NULL,         NULL,
                                             on_first_number, on_first_string, on_first_map, on_first_key,
                                             on_first_end,    on_first_array,  on_first_end};
    struct first f = {NULL, 0, 0, SIZE_MAX};
    f.h = yajl_alloc(&callbacks, NULL, &f);
    int ok = yajl_parse(f.h, (const unsigned char *)s, len) == yajl_status_ok && yajl_complete_parse(f.h) == yajl_status_ok;
    yajl_free(f.h);
    return ok && f.kind == 1 && f.end == len;
}

enum { X_VALUE, X_VALUE_OR_END, X_KEY, X_KEY_OR_END, X_COLON, X_COMMA_OR_END, X_DONE };

struct scan {
    char stack[REPAIR_MAX_DEPTH]; /* '{' or '[' */
    size_t depth;
    char safe_stack[REPAIR_MAX_DEPTH];
    size_t safe_depth;
    size_t safe;         /* the longest prefix that the closers of safe_stack complete */
    int in_value_string; /* the text ends inside a string value */
    size_t string_cut;   /* where to cut that string (before an unfinished escape) */
};

static int is_token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '+' || c == '-';
}

static int is_number(const char *s, size_t len)
{
    char buf[64], *end;
    if (len == 0 || len >= sizeof(buf) || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
        return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    strtod(buf, &end);
    return *end == '\0' && s[len - 1] >= '0' && s[len - 1] <= '9';
}

/*
 * Scans JSON text that may have been cut short (finish_reason "length" truncates arguments), remembering the last point
 * where closing the open containers yields a complete document. Returns -1 when the text is not a JSON prefix at all.
 */
static int scan_prefix(const char *s, size_t len, struct scan *sc)
{
    int x = X_VALUE;
    size_t i = 0;

    memset(sc, 0, sizeof(*sc));
    while (i != len) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            ++i;
            continue;
        }
        switch (x) {
        case X_VALUE:
        case X_VALUE_OR_END:
            if (c == ']' && x == X_VALUE_OR_END)
                goto Close;
            if (c == '{' || c == '[') {
                if (sc->depth == REPAIR_MAX_DEPTH)
                    return -1;
                sc->stack[sc->depth++] = c;
                x = c == '{' ? X_KEY_OR_END : X_VALUE_OR_END;
                ++i;
                goto Safe;
            }
            if (c == '"') {
                size_t esc = SIZE_MAX;
                for (++i; i != len; ++i) {
                    if (s[i] == '\\') {
                        esc = i;
                        if (i + 1 == len || (s[i + 1] == 'u' && len - i < 6))
                            break;
                        i += s[i + 1] == 'u' ? 5 : 1;
                        esc = SIZE_MAX;
                    } else if (s[i] == '"') {
                        break;
                    }
                }
                if (i >= len || s[i] != '"') {
                    sc->in_value_string = 1;
                    sc->string_cut = esc != SIZE_MAX ? esc : len;
                    return 0;
                }
                ++i;
                goto ValueDone;
            }
            if (is_token_char(c)) {
                size_t start = i;
                while (i != len && is_token_char(s[i]))
                    ++i;
                size_t n = i - start;
                if ((n == 4 && memcmp(s + start, "true", 4) == 0) || (n == 5 && memcmp(s + start, "false", 5) == 0) ||
                    (n == 4 && memcmp(s + start, "null", 4) == 0) || is_number(s + start, n))
                    goto ValueDone;
                return i == len ? 0 : -1; /* a literal cut short is dropped; anything else is not JSON */
            }
            return -1;
        case X_KEY:
        case X_KEY_OR_END:
            if (c == '}' && x == X_KEY_OR_END)
                goto Close;
            if (c != '"')
                return -1;
            for (++i; i != len && s[i] != '"'; ++i)
                if (s[i] == '\\' && i + 1 != len)
                    ++i;
            if (i >= len)
                return 0; /* a key cut short is dropped */
            ++i;
            x = X_COLON;
            continue;
        case X_COLON:
            if (c != ':')
                return -1;
            ++i;
            x = X_VALUE;
            continue;
        case X_COMMA_OR_END:
            if (c == ',') {
                ++i;
                x = sc->stack[sc->depth - 1] == '{' ? X_KEY : X_VALUE;
                continue;
            }
            if ((c == '}' && sc->stack[sc->depth - 1] == '{') || (c == ']' && sc->stack[sc->depth - 1] == '['))
                goto Close;
            return -1;
        default:
            return -1; /* bytes after a complete document */
        }
    Close:
        --sc->depth;
        ++i;
    ValueDone:
        x = sc->depth == 0 ? X_DONE : X_COMMA_OR_END;
    Safe:
        sc->safe = i;
        memcpy(sc->safe_stack, sc->stack, sc->depth);
        sc->safe_depth = sc->depth;
    }
    return 0;
}

/* Repairs arguments cut short by closing the open string, arrays and objects; returns 0 with the result in `*out`. */
static int repair_json(const char *s, size_t len, h2o_buffer_t **out)
{
    struct scan sc;
    const char *stack;
    size_t depth;

    if (scan_prefix(s, len, &sc) != 0)
        return -1;
    if (sc.in_value_string) {
        pgw_buf_append(out, s, sc.string_cut);
        pgw_buf_append_lit(out, "\"");
        stack = sc.stack;
        depth = sc.depth;
    } else {
        if (sc.safe == 0)
            return -1; /* not even an opening brace survived */
        pgw_buf_append(out, s, sc.safe);
        stack = sc.safe_stack;
        depth = sc.safe_depth;
    }
    while (depth != 0)
        pgw_buf_append(out, stack[--depth] == '{' ? "}" : "]", 1);
    return 0;
}

/* Appends the tool input for `args`: an object always, repaired when simply truncated, else {} and a log line. */
static void append_input(h2o_buffer_t **out, const char *args, size_t len, const char *name)
{
    while (len != 0 && (*args == ' ' || *args == '\t' || *args == '\n' || *args == '\r'))
        ++args, --len;
    while (len != 0 && (args[len - 1] == ' ' || args[len - 1] == '\t' || args[len - 1] == '\n' || args[len - 1] == '\r'))
        --len;
    if (len == 0) {
        pgw_buf_append_lit(out, "{}");
        return;
    }
    if (is_json_object(args, len)) {
        pgw_buf_append(out, args, len);
        return;
    }
    h2o_buffer_t *fixed;
    h2o_buffer_init(&fixed, &h2o_socket_buffer_prototype);
    if (repair_json(args, len, &fixed) == 0 && is_json_object(fixed->bytes, fixed->size)) {
        pgw_log_warn(MODULE_NAME, "tool %s: arguments were cut short (%zu bytes); closed them to give an object", name, len);
        pgw_buf_append(out, fixed->bytes, fixed->size);
    } else {
        pgw_log_warn(MODULE_NAME, "tool %s: arguments are not a JSON object (%zu bytes); sending {}", name, len);
        pgw_buf_append_lit(out, "{}");
    }
    h2o_buffer_dispose(&fixed);
}

/* ---- the response ---- */

static yajl_val get(yajl_val v, const char *k1, const char *k2, yajl_type type)
{
    const char *path[] = {k1, k2, NULL};
    return v != NULL && YAJL_IS_OBJECT(v) ? yajl_tree_get(v, path, type) : NULL;
}

static const char *get_str(yajl_val v, const char *k1, const char *k2)
{
    yajl_val s = get(v, k1, k2, yajl_t_string);
    return s != NULL ? YAJL_GET_STRING(s) : NULL;
}

static int nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* -1 when absent or not an integer */
static long long get_int(yajl_val v, const char *k1, const char *k2)
{
    yajl_val n = get(v, k1, k2, yajl_t_number);
    return n != NULL && YAJL_IS_INTEGER(n) ? YAJL_GET_INTEGER(n) : -1;
}

static void fail_with(pgw_upstream_failure_t *fail, int status, const char *type, const char *message)
{
    fail->status = status;
    fail->type = type;
    fail->no_retry = 0;
    snprintf(fail->message, sizeof(fail->message), "%s", message);
}

static void append_thinking(h2o_buffer_t **out, int *nblocks, const char *text, const char *signature)
{
    if ((*nblocks)++ != 0)
        pgw_buf_append_lit(out, ",");
    pgw_buf_append_lit(out, "{\"type\":\"thinking\",\"thinking\":");
    pgw_json_append_string(out, text, strlen(text));
    pgw_buf_append_lit(out, ",\"signature\":");
    /* the upstream signature if any, else "": never invent one (docs/mapping.md#invented-signatures-and-unsafe-tool-ids) */
    pgw_json_append_string(out, signature != NULL ? signature : "", signature != NULL ? strlen(signature) : 0);
    pgw_buf_append_lit(out, "}");
}

static void append_text(h2o_buffer_t **out, int *nblocks, const char *text, size_t len)
{
    if ((*nblocks)++ != 0)
        pgw_buf_append_lit(out, ",");
    pgw_buf_append_lit(out, "{\"type\":\"text\",\"text\":");
    pgw_json_append_string(out, text, len);
    pgw_buf_append_lit(out, "}");
}

/* the thinking_blocks array, directly on the message or under provider_specific_fields (LiteLLM) */
static yajl_val thinking_blocks(yajl_val message)
{
    yajl_val tb = get(message, "thinking_blocks", NULL, yajl_t_array);
    if (tb == NULL || tb->u.array.len == 0)
        tb = get(message, "provider_specific_fields", "thinking_blocks", yajl_t_array);
    return tb;
}

/* the stop sequence the upstream says matched (a vLLM-style string stop_reason / matched_stop), when it is the client's */
static const char *matched_stop_sequence(yajl_val choice, const pgw_response_opts_t *opts)
{
    const char *names[] = {"stop_reason", "matched_stop"};
    for (size_t i = 0; i != 2; ++i) {
        const char *s = get_str(choice, names[i], NULL);
        if (!nonempty(s))
            continue;
        for (size_t j = 0; j != 4 && opts->stop_sequences[j] != NULL; ++j)
            if (strcmp(opts->stop_sequences[j], s) == 0)
                return opts->stop_sequences[j];
    }
    return NULL;
}

int pgw_translate_response(const char *body, size_t len, const pgw_response_opts_t *opts, h2o_buffer_t **out,
                           pgw_upstream_failure_t *fail)
{
    char *copy = h2o_mem_alloc(len + 1), errbuf[128];
    yajl_val root, choice, message, v;
    h2o_buffer_t *text = NULL, *ids = NULL;
    int ret = -1, nblocks = 0;
    size_t output_bytes = 0;
    pgw_search_t search;

    pgw_search_init(&search, opts->web_search, opts->msg_id);

    if (len != 0) /* an empty body (a 204) may come with no buffer at all */
        memcpy(copy, body, len);
    copy[len] = '\0';
    root = yajl_tree_parse(copy, errbuf, sizeof(errbuf));
    free(copy);
    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        pgw_log_warn(MODULE_NAME, "upstream response is not a JSON object (%zu bytes)", len);
        fail_with(fail, 502, PGW_ERR_API, "Poe returned a response that is not a JSON object");
        goto Exit;
    }
    if ((v = get(root, "error", NULL, yajl_t_any)) != NULL && !YAJL_IS_NULL(v)) {
        pgw_map_upstream_error(200, body, len, opts->model, opts->secret, fail);
        goto Exit;
    }
    if ((v = get(root, "choices", NULL, yajl_t_array)) == NULL || v->u.array.len == 0 || !YAJL_IS_OBJECT(v->u.array.values[0])) {
        fail_with(fail, 502, PGW_ERR_API, "Poe returned a response with no choices");
        goto Exit;
    }
    choice = v->u.array.values[0];
    message = get(choice, "message", NULL, yajl_t_object);

    /* gather everything first: an empty answer is a failure and nothing may be written then */
    const char *finish = get_str(choice, "finish_reason", NULL);
    yajl_val tb = thinking_blocks(message);
    size_t num_tb_thinking = 0;
    const char *tb_signature = NULL;
    if (tb != NULL)
        for (size_t i = 0; i != tb->u.array.len; ++i) {
            if (nonempty(get_str(tb->u.array.values[i], "thinking", NULL)))
                ++num_tb_thinking;
            if (tb_signature == NULL && nonempty(get_str(tb->u.array.values[i], "signature", NULL)))
                tb_signature = get_str(tb->u.array.values[i], "signature", NULL);
        }
    /* Poe repeats the text in reasoning_content and reasoning: use one (docs/mapping.md#the-whole-response) */
    const char *reasoning = get_str(message, "reasoning_content", NULL);
    if (!nonempty(reasoning))
        reasoning = get_str(message, "reasoning", NULL);
    h2o_buffer_init(&text, &h2o_socket_buffer_prototype);
    if ((v = get(message, "content", NULL, yajl_t_any)) != NULL) {
        if (YAJL_IS_STRING(v)) {
            pgw_buf_append_str(&text, v->u.string);
        } else if (YAJL_IS_ARRAY(v)) {
            /* some providers answer with content parts */
            for (size_t i = 0; i != v->u.array.len; ++i) {
                const char *part = get_str(v->u.array.values[i], "text", NULL);
                if (part != NULL)
                    pgw_buf_append_str(&text, part);
            }
        }
    }
    const char *refusal = get_str(message, "refusal", NULL);
    yajl_val calls = get(message, "tool_calls", NULL, yajl_t_array);
    size_t num_calls = calls != NULL ? calls->u.array.len : 0;
    yajl_val legacy_call = get(message, "function_call", NULL, yajl_t_object);

    for (size_t i = 0; i != num_calls + (legacy_call != NULL); ++i) {
        yajl_val fn = i < num_calls ? get(calls->u.array.values[i], "function", NULL, yajl_t_object) : legacy_call;
        if (!nonempty(get_str(fn, "name", NULL))) {
            /* a call Claude Code cannot run: fail (retryable) rather than deliver it */
            pgw_log_warn(MODULE_NAME, "upstream tool call %zu has no name", i);
            fail_with(fail, 502, PGW_ERR_API, "Poe returned a tool call without a name");
            goto Exit;
        }
    }
    int has_thinking = num_tb_thinking != 0 || nonempty(reasoning), has_text = text->size != 0, has_refusal = nonempty(refusal);
    int has_tools = num_calls != 0 || legacy_call != NULL;
    int is_length = finish != NULL && strcmp(finish, "length") == 0;
    int is_filter = finish != NULL && strcmp(finish, "content_filter") == 0;
    if (!has_thinking && !has_text && !has_refusal && !has_tools && !is_length && !is_filter) {
        /* docs/mapping.md#an-empty-answer: an empty end_turn makes Claude Code insert "No response requested." */
        pgw_log_warn(MODULE_NAME, "upstream answered nothing (finish_reason %s)", finish != NULL ? finish : "null");
        fail_with(fail, 502, PGW_ERR_API, "Poe returned an empty response");
        goto Exit;
    }

    pgw_buf_append_lit(out, "{\"id\":");
    pgw_json_append_string(out, opts->msg_id, strlen(opts->msg_id));
    pgw_buf_append_lit(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    pgw_json_append_string(out, opts->model, strlen(opts->model));
    pgw_buf_append_lit(out, ",\"content\":[");

    /* thinking -> (web search) -> text -> tool_use (docs/mapping.md#the-whole-response) */
    if (num_tb_thinking != 0) {
        for (size_t i = 0; i != tb->u.array.len; ++i) {
            const char *t = get_str(tb->u.array.values[i], "thinking", NULL);
            if (nonempty(t)) {
                append_thinking(out, &nblocks, t, get_str(tb->u.array.values[i], "signature", NULL));
                output_bytes += strlen(t);
            }
        }
    } else if (nonempty(reasoning)) {
        append_thinking(out, &nblocks, reasoning, tb_signature);
        output_bytes += strlen(reasoning);
    }
    /* a search the answer cites, before the text (docs/mapping.md#web-search) */
    pgw_search_collect(&search, get(message, "annotations", NULL, yajl_t_array));
    pgw_search_collect(&search, get(message, "citations", NULL, yajl_t_array));
    pgw_search_collect(&search, get(message, "provider_specific_fields", "citations", yajl_t_array));
    pgw_search_collect(&search, get(root, "citations", NULL, yajl_t_array));
    if (search.num_pages != 0) {
        if (nblocks++ != 0)
            pgw_buf_append_lit(out, ",");
        pgw_search_append_use(&search, out);
        pgw_buf_append_lit(out, ",");
        pgw_search_append_result(&search, out);
        ++nblocks;
    }
    if (has_text) {
        append_text(out, &nblocks, text->bytes, text->size);
        output_bytes += text->size;
    }
    if (has_refusal) {
        append_text(out, &nblocks, refusal, strlen(refusal));
        output_bytes += strlen(refusal);
    }
    h2o_buffer_init(&ids, &h2o_socket_buffer_prototype);
    for (size_t i = 0; i != num_calls + (legacy_call != NULL); ++i) {
        yajl_val call = i < num_calls ? calls->u.array.values[i] : NULL,
                 fn = i < num_calls ? get(call, "function", NULL, yajl_t_object) : legacy_call;
        const char *id = get_str(call, "id", NULL), *name = get_str(fn, "name", NULL), *args = get_str(fn, "arguments", NULL);
        size_t name_len = name != NULL ? strlen(name) : 0, idoff;
        if (name_len != 0 && opts->toolnames != NULL)
            name = pgw_toolnames_original(opts->toolnames, name, name_len, &name_len);
        idoff = pgw_tool_use_id(&ids, id != NULL ? id : "", id != NULL ? strlen(id) : 0, opts->msg_id, i);
        if ((nblocks)++ != 0)
            pgw_buf_append_lit(out, ",");
        pgw_buf_append_lit(out, "{\"type\":\"tool_use\",\"id\":");
        pgw_json_append_string(out, ids->bytes + idoff, strlen(ids->bytes + idoff));
        pgw_buf_append_lit(out, ",\"name\":");
        pgw_json_append_string(out, name != NULL ? name : "", name_len);
        pgw_buf_append_lit(out, ",\"input\":");
        size_t before = (*out)->size;
        append_input(out, args != NULL ? args : "", args != NULL ? strlen(args) : 0, name != NULL ? name : "");
        output_bytes += (*out)->size - before;
        pgw_buf_append_lit(out, "}");
    }

    const char *stop_sequence = matched_stop_sequence(choice, opts);
    const char *stop_reason = pgw_stop_reason(finish, has_tools, has_refusal, &stop_sequence);
    pgw_buf_append_lit(out, "],");
    pgw_append_stop(out, stop_reason, stop_sequence);

    /* usage (docs/mapping.md#usage): prompt_tokens includes the cache; take the cache counts from one place, never add both */
    yajl_val usage = get(root, "usage", NULL, yajl_t_object);
    long long prompt = get_int(usage, "prompt_tokens", NULL), completion = get_int(usage, "completion_tokens", NULL);
    long long cache_read = get_int(usage, "prompt_tokens_details", "cached_tokens");
    long long cache_creation = get_int(usage, "prompt_tokens_details", "cache_creation_tokens");
    if (cache_read < 0)
        cache_read = get_int(usage, "cache_read_input_tokens", NULL);
    if (cache_creation < 0)
        cache_creation = get_int(usage, "cache_creation_input_tokens", NULL);
    if (cache_read < 0)
        cache_read = 0;
    if (cache_creation < 0)
        cache_creation = 0;
    long long input = prompt > 0 ? prompt - cache_read - cache_creation : (opts->input_tokens > 0 ? opts->input_tokens : 1);
    if (input < 0)
        input = 0;
    /* Poe reported completion_tokens 0 for tool-call-only answers: estimate when output exists */
    long long output = completion > 0 ? completion : (long long)((output_bytes + 3) / 4);
    if (output == 0 && output_bytes != 0)
        output = 1;
    pgw_buf_append_lit(out, ",\"usage\":{\"input_tokens\":");
    pgw_json_append_int(out, input);
    pgw_buf_append_lit(out, ",\"output_tokens\":");
    pgw_json_append_int(out, output);
    pgw_buf_append_lit(out, ",\"cache_read_input_tokens\":");
    pgw_json_append_int(out, cache_read);
    pgw_buf_append_lit(out, ",\"cache_creation_input_tokens\":");
    pgw_json_append_int(out, cache_creation);
    pgw_search_append_usage(&search, out);
    pgw_buf_append_lit(out, "}}");
    ret = 0;

Exit:
    pgw_search_dispose(&search);
    if (text != NULL)
        h2o_buffer_dispose(&text);
    if (ids != NULL)
        h2o_buffer_dispose(&ids);
    if (root != NULL)
        yajl_tree_free(root);
    return ret;
}
