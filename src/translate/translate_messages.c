/* poe-gateway: MIT licence. The chat/completions `messages` of a translated request (docs/mapping.md#messages).
 *
 * How it works
 *
 * The request translator reads the Anthropic body in one pass and hands over each piece as it completes: the system
 * text, then per message its blocks (a block's own content first, as nested blocks joined into it), its string content
 * and its end. This file decides what they become. Only what has to move is held:
 *   - a user message's parts other than tool_result: its tool_result blocks become `tool` messages, which must follow
 *     the assistant turn that made the calls at once, so they go out first and the other parts after them, as one user
 *     message (docs/mapping.md#tool-results);
 *   - an assistant message's text, reasoning and tool calls, written as one message at its end;
 *   - `role: "system"` text, which waits until the `tool` messages answering the previous assistant turn are out, then
 *     goes as a user message (docs/mapping.md#messages).
 * The calls of the last assistant turn are kept (`prev`): a tool_result answering one becomes a `tool` message, any
 * other is an orphan and becomes user text; when the next turn begins, a call nobody answered gets an "interrupted"
 * `tool` message, since upstreams refuse a history with an unanswered call.
 *
 * History tool_use names are written in their plain mapping (pgw_toolname_map, a pure function) and remembered as
 * fixups. Only a collision inside `tools` (both names take the hashed form: docs/mapping.md#tool-names) changes a
 * mapping, and `tools` may come after `messages`, so the affected names are replaced while the messages are copied to
 * the output (pgw_messages_write).
 *
 * Everything written is counted into the request's token estimate as it goes (docs/mapping.md#the-token-estimate).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <h2o/socket.h>
#include "common/json.h"
#include "common/log.h"
#include "translate/translate_messages.h"

#define MODULE_NAME "translate_messages"

struct call {
    size_t off, len; /* the id, in `ids` */
    int answered;
};

struct calls {
    H2O_VECTOR(struct call) list;
    h2o_buffer_t *ids;
};

/* a history tool name written in its plain mapping: where (in `msgs`), and its original (in `fixnames`) */
struct fixup {
    size_t off, len, orig_off, orig_len;
};

struct st_pgw_messages_t {
    int echo_reasoning;
    pgw_estimate_t *est;
    pgw_messages_where_cb where;
    void *where_ctx;
    int unknown_logged; /* a block of an unknown type was logged */

    /* the message being read */
    h2o_buffer_t *parts; /* user: parts other than tool_result */
    size_t num_parts, first_text_off, first_text_len;
    int first_is_text;
    h2o_buffer_t *atext; /* assistant: text, raw */
    size_t num_atext;
    h2o_buffer_t *acalls; /* assistant: tool_calls items */
    size_t num_acalls, fixups_msg_start;
    h2o_buffer_t *reasoning;
    size_t num_reasoning;
    struct calls prev, cur; /* tool_use ids of the last assistant message, and of this one */
    h2o_buffer_t *note;     /* pending `role: "system"` text, raw */
    size_t num_note;

    /* the output */
    h2o_buffer_t *sys; /* raw */
    h2o_buffer_t *msgs;
    size_t num_msgs;
    H2O_VECTOR(struct fixup) fixups;
    h2o_buffer_t *fixnames;
    h2o_buffer_t *scratch;
};

/* ---- small helpers ---- */

/* Appends `len` bytes as JSON string content, without quotes. The input is valid UTF-8 (yajl validated it, or the
 * gateway wrote it), so only quotes, backslashes and control characters change. */
static inline void append_escaped(h2o_buffer_t **buf, const char *s, size_t len)
{
    pgw_json_append_escaped(buf, s, len);
}

static void append_quoted(h2o_buffer_t **buf, const char *s, size_t len)
{
    pgw_json_append_quoted(buf, s, len);
}

int pgw_is_blank(const char *p, size_t len)
{
    for (size_t i = 0; i != len; ++i)
        if (!(p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t' || p[i] == '\f' || p[i] == '\v'))
            return 0;
    return 1;
}

/* Appends `p` to `buf`, preceded by `sep` unless it is the first piece. */
static void join(h2o_buffer_t **buf, size_t *count, const char *sep, const char *p, size_t len)
{
    if ((*count)++ != 0)
        pgw_buf_append_str(buf, sep);
    pgw_buf_append(buf, p, len);
}

static int has(h2o_iovec_t v)
{
    return v.base != NULL;
}

static int is(h2o_iovec_t v, const char *lit)
{
    size_t len = strlen(lit);
    return v.base != NULL && v.len == len && memcmp(v.base, lit, len) == 0;
}

static int ends(h2o_iovec_t v, const char *lit)
{
    size_t len = strlen(lit);
    return v.base != NULL && v.len >= len && memcmp(v.base + v.len - len, lit, len) == 0;
}

/* The string, or "" when absent: for printing and copying */
static const char *str(h2o_iovec_t v)
{
    return v.base != NULL ? v.base : "";
}

/* Text that is there and not blank. */
static int has_text(h2o_iovec_t v)
{
    return v.base != NULL && !pgw_is_blank(v.base, v.len);
}

/* Records the member a block lacks; returns -1. */
static int required(const char **missing, const char *member)
{
    *missing = member;
    return -1;
}

/* ---- output pieces ---- */

static void msg_begin(pgw_messages_t *m)
{
    if (m->num_msgs++ != 0)
        pgw_buf_append_lit(&m->msgs, ",");
    ++m->est->num_messages;
}

static void tool_message(pgw_messages_t *m, const char *id, size_t idlen, const char *prefix, const char *text, size_t len)
{
    msg_begin(m);
    pgw_buf_append_lit(&m->msgs, "{\"role\":\"tool\",\"tool_call_id\":");
    append_quoted(&m->msgs, id, idlen);
    pgw_buf_append_lit(&m->msgs, ",\"content\":\"");
    append_escaped(&m->msgs, prefix, strlen(prefix));
    append_escaped(&m->msgs, text, len);
    pgw_buf_append_lit(&m->msgs, "\"}");
    pgw_estimate_add_text(m->est, id, idlen);
    pgw_estimate_add_text(m->est, prefix, strlen(prefix));
    pgw_estimate_add_text(m->est, text, len);
}

static void part_begin(pgw_messages_t *m)
{
    if (m->num_parts++ != 0)
        pgw_buf_append_lit(&m->parts, ",");
}

/* A user text part; the first one is remembered, as a message of one text part is sent as a plain string
 * (docs/mapping.md#user-blocks). */
static void user_text(pgw_messages_t *m, const char *prefix, const char *text, size_t len)
{
    part_begin(m);
    pgw_buf_append_lit(&m->parts, "{\"type\":\"text\",\"text\":");
    size_t start = m->parts->size;
    pgw_buf_append_lit(&m->parts, "\"");
    append_escaped(&m->parts, prefix, strlen(prefix));
    append_escaped(&m->parts, text, len);
    pgw_buf_append_lit(&m->parts, "\"");
    if (m->num_parts == 1) {
        m->first_is_text = 1;
        m->first_text_off = start;
        m->first_text_len = m->parts->size - start;
    }
    pgw_buf_append_lit(&m->parts, "}");
    pgw_estimate_add_text(m->est, prefix, strlen(prefix));
    pgw_estimate_add_text(m->est, text, len);
}

/* Moves parts collected from a block's content items into the user message. */
static void user_attachments(pgw_messages_t *m, pgw_block_t *b)
{
    if (b->num_attach == 0)
        return;
    part_begin(m);
    pgw_buf_append(&m->parts, b->attach->bytes, b->attach->size);
    m->num_parts += b->num_attach - 1;
}

static void attach_begin(pgw_block_t *b)
{
    if (b->num_attach++ != 0)
        pgw_buf_append_lit(&b->attach, ",");
}

/*
 * Writes the image_url part for an image block (docs/mapping.md#user-blocks) to `*buf`. Returns 1, 0 when the source names
 * nothing the upstream can read (a Files API id, an unknown source type: the caller writes `placeholder`), or -1 with
 * `*missing` set.
 */
static int image_part(pgw_messages_t *m, pgw_block_t *b, h2o_buffer_t **buf, char *placeholder, size_t phsz, const char **missing)
{
    if (!b->has_source)
        return required(missing, "source");
    if (is(b->src_type, "base64")) {
        if (!has(b->src_media_type))
            return required(missing, "source.media_type");
        if (!has(b->src_data))
            return required(missing, "source.data");
        pgw_buf_append_lit(buf, "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:");
        append_escaped(buf, b->src_media_type.base, b->src_media_type.len);
        pgw_buf_append_lit(buf, ";base64,");
        append_escaped(buf, b->src_data.base, b->src_data.len);
        pgw_buf_append_lit(buf, "\"}}");
    } else if (is(b->src_type, "url")) {
        if (!has(b->src_url))
            return required(missing, "source.url");
        pgw_buf_append_lit(buf, "{\"type\":\"image_url\",\"image_url\":{\"url\":");
        append_quoted(buf, b->src_url.base, b->src_url.len);
        pgw_buf_append_lit(buf, "}}");
    } else {
        if (has(b->src_file_id))
            snprintf(placeholder, phsz, "[image file %.*s not available]", (int)b->src_file_id.len, b->src_file_id.base);
        else
            snprintf(placeholder, phsz, "[image not available]");
        return 0;
    }
    ++m->est->num_images;
    return 1;
}

static int is_pdf_data(pgw_block_t *b)
{
    return is(b->src_type, "base64") && (!has(b->src_media_type) || is(b->src_media_type, "application/pdf"));
}

/* Writes Poe's `file` part for a base64 PDF document (docs/mapping.md#user-blocks). Returns 1, or -1 with `*missing`. */
static int file_part(pgw_messages_t *m, pgw_block_t *b, h2o_buffer_t **buf, const char **missing)
{
    if (!has(b->src_data))
        return required(missing, "source.data");
    pgw_buf_append_lit(buf, "{\"type\":\"file\",\"file\":{\"filename\":");
    if (has_text(b->title))
        append_quoted(buf, b->title.base, b->title.len);
    else
        pgw_buf_append_lit(buf, "\"doc.pdf\"");
    pgw_buf_append_lit(buf, ",\"file_data\":\"data:application/pdf;base64,");
    append_escaped(buf, b->src_data.base, b->src_data.len);
    pgw_buf_append_lit(buf, "\"}}");
    m->est->extra_tokens += pgw_estimate_pdf(b->src_data.base, b->src_data.len);
    return 1;
}

/*
 * The text standing for a document that is not a base64 PDF, into m->scratch (raw): the title first, then the text or
 * content source's text, or a line naming the URL (never fetched) or the file. Returns 0, or -1 with `*missing`.
 */
static int document_text(pgw_messages_t *m, pgw_block_t *b, const char **missing)
{
    char line[512];
    size_t n = 0;

    m->scratch->size = 0;
    if (!b->has_source)
        return required(missing, "source");
    if (has_text(b->title))
        join(&m->scratch, &n, "\n\n", b->title.base, b->title.len);
    if (is(b->src_type, "text")) {
        if (!has(b->src_data))
            return required(missing, "source.data");
        join(&m->scratch, &n, "\n\n", b->src_data.base, b->src_data.len);
    } else if (is(b->src_type, "content")) {
        if (b->num_joined != 0)
            join(&m->scratch, &n, "\n\n", b->joined->bytes, b->joined->size);
    } else if (is(b->src_type, "url")) {
        int l = snprintf(line, sizeof(line), "[document at %.*s (not fetched)]", (int)b->src_url.len, str(b->src_url));
        join(&m->scratch, &n, "\n\n", line, (size_t)l < sizeof(line) ? (size_t)l : sizeof(line) - 1);
    } else if (is(b->src_type, "file")) {
        int l = snprintf(line, sizeof(line), "[document file %.*s not available]", (int)b->src_file_id.len, str(b->src_file_id));
        join(&m->scratch, &n, "\n\n", line, (size_t)l < sizeof(line) ? (size_t)l : sizeof(line) - 1);
    } else {
        int l = snprintf(line, sizeof(line), "[document of type %.*s not available]", (int)b->src_media_type.len,
                         str(b->src_media_type));
        join(&m->scratch, &n, "\n\n", line, (size_t)l < sizeof(line) ? (size_t)l : sizeof(line) - 1);
    }
    return 0;
}

/* A search_result's text, into m->scratch (raw): title, source, then its content. */
static void search_result_text(pgw_messages_t *m, pgw_block_t *b)
{
    size_t n = 0;
    m->scratch->size = 0;
    if (has(b->title))
        join(&m->scratch, &n, "\n", b->title.base, b->title.len);
    if (has(b->source_str))
        join(&m->scratch, &n, "\n", b->source_str.base, b->source_str.len);
    if (b->num_joined != 0)
        join(&m->scratch, &n, "\n", b->joined->bytes, b->joined->size);
}

static int is_thinking_or_tool_use(h2o_iovec_t type)
{
    return is(type, "thinking") || is(type, "redacted_thinking") || is(type, "tool_use") || is(type, "server_tool_use") ||
           is(type, "mcp_tool_use") || ends(type, "_tool_result");
}

/*
 * A block of a type the translation does not know (not one of the Anthropic API's types below, nor of the thinking and
 * tool family above) goes upstream as its text, or not at all when it has none, and the first one of a request is
 * logged. The Anthropic API refuses a type it does not know with a 400, but a list kept here lags behind Anthropic's:
 * Claude Code sends a new type as soon as the API takes it, and a 400 would refuse a request the API serves.
 */
static void note_unknown_type(pgw_messages_t *m, const pgw_block_t *b, int text_kept)
{
    static const char *const known[] = {"text", "image", "document", "search_result", "tool_reference", "container_upload"};
    char where[160];
    h2o_buffer_t *name;

    if (m->unknown_logged || is_thinking_or_tool_use(b->type))
        return;
    for (size_t i = 0; i != sizeof(known) / sizeof(known[0]); ++i)
        if (is(b->type, known[i]))
            return;
    m->unknown_logged = 1;
    size_t n = m->where(m->where_ctx, where, sizeof(where));
    h2o_buffer_init(&name, &h2o_socket_buffer_prototype);
    pgw_json_append_string(&name, b->type.base, b->type.len < 64 ? b->type.len : 64);
    pgw_log_warn(MODULE_NAME, "%.*sblock type %.*s is unknown to the gateway: %s (later ones in this request go unlogged)", (int)n,
                 where, (int)name->size, name->bytes, text_kept ? "only its text was sent" : "dropped");
    h2o_buffer_dispose(&name);
}

/* ---- blocks ---- */

/* A call's id; an empty id ("id": "") may have left the id buffer unallocated. */
static const char *call_id(const struct calls *c, const struct call *e)
{
    return e->len == 0 ? "" : c->ids->bytes + e->off;
}

static struct call *find_call(struct calls *c, const char *id, size_t len)
{
    for (size_t i = 0; i != c->list.size; ++i) {
        struct call *e = &c->list.entries[i];
        if (!e->answered && e->len == len && memcmp(call_id(c, e), id, len) == 0)
            return e;
    }
    return NULL;
}

static void calls_clear(struct calls *c)
{
    c->list.size = 0;
    c->ids->size = 0;
}

/* A tool_result (docs/mapping.md#tool-results): a `tool` message when it answers a call of the previous assistant turn,
 * else user text. */
static int user_tool_result(pgw_messages_t *m, pgw_block_t *b, const char **missing)
{
    if (!has(b->tool_use_id))
        return required(missing, "tool_use_id");
    const char *id = b->tool_use_id.base, *text = b->joined->bytes;
    size_t len = b->joined->size;
    const char *prefix = b->is_error ? "[tool error] " : "";
    if (b->num_joined == 0) {
        text = "(no output)";
        len = strlen(text);
    }
    struct call *c = find_call(&m->prev, id, b->tool_use_id.len);
    if (c != NULL) {
        c->answered = 1;
        tool_message(m, id, b->tool_use_id.len, prefix, text, len);
    } else {
        /* an orphan: nothing to answer, so it becomes text (docs/mapping.md#messages) */
        user_text(m, b->is_error ? "[tool error] " : "[tool result] ", text, len);
    }
    user_attachments(m, b);
    return 0;
}

static int user_block(pgw_messages_t *m, pgw_block_t *b, const char **missing)
{
    char placeholder[256];

    if (is(b->type, "text")) {
        if (!has(b->text))
            return required(missing, "text");
        if (has_text(b->text))
            user_text(m, "", b->text.base, b->text.len);
    } else if (is(b->type, "image")) {
        size_t mark = m->parts->size;
        part_begin(m);
        int r = image_part(m, b, &m->parts, placeholder, sizeof(placeholder), missing);
        if (r < 0)
            return -1;
        if (r == 0) {
            m->parts->size = mark;
            --m->num_parts;
            user_text(m, "", placeholder, strlen(placeholder));
        }
    } else if (is(b->type, "document")) {
        if (is_pdf_data(b)) {
            part_begin(m);
            if (file_part(m, b, &m->parts, missing) < 0)
                return -1;
        } else {
            if (document_text(m, b, missing) < 0)
                return -1;
            if (m->scratch->size != 0)
                user_text(m, "", m->scratch->bytes, m->scratch->size);
            user_attachments(m, b);
        }
    } else if (is(b->type, "tool_result")) {
        return user_tool_result(m, b, missing);
    } else if (is(b->type, "search_result")) {
        search_result_text(m, b);
        if (m->scratch->size != 0)
            user_text(m, "", m->scratch->bytes, m->scratch->size);
    } else {
        /* an unknown type is never forwarded (docs/mapping.md#user-blocks); its text is */
        int text = !is_thinking_or_tool_use(b->type) && has_text(b->text);
        if (text)
            user_text(m, "", b->text.base, b->text.len);
        note_unknown_type(m, b, text);
    }
    return 0;
}

static int assistant_block(pgw_messages_t *m, pgw_block_t *b, const char **missing)
{
    char mapped[PGW_TOOLNAME_MAX + 1];

    if (is(b->type, "tool_use")) {
        if (!has(b->id))
            return required(missing, "id");
        if (!has(b->name))
            return required(missing, "name");
        pgw_toolname_map(b->name.base, b->name.len, mapped);
        if (m->num_acalls++ != 0)
            pgw_buf_append_lit(&m->acalls, ",");
        pgw_buf_append_lit(&m->acalls, "{\"id\":");
        append_quoted(&m->acalls, b->id.base, b->id.len);
        pgw_buf_append_lit(&m->acalls, ",\"type\":\"function\",\"function\":{\"name\":");
        /* remembered in case a collision in `tools` changes the mapping (docs/mapping.md#tool-names) */
        h2o_vector_reserve(NULL, &m->fixups, m->fixups.size + 1);
        m->fixups.entries[m->fixups.size++] = (struct fixup){m->acalls->size, strlen(mapped) + 2, m->fixnames->size, b->name.len};
        pgw_buf_append(&m->fixnames, b->name.base, b->name.len);
        append_quoted(&m->acalls, mapped, strlen(mapped));
        pgw_buf_append_lit(&m->acalls, ",\"arguments\":");
        if (b->input.len != 0)
            append_quoted(&m->acalls, b->input.base, b->input.len);
        else
            pgw_buf_append_lit(&m->acalls, "\"{}\"");
        pgw_buf_append_lit(&m->acalls, "}}");
        pgw_estimate_add_text(m->est, b->id.base, b->id.len);
        pgw_estimate_add_text(m->est, mapped, strlen(mapped));
        if (b->input.len != 0)
            pgw_estimate_add_text(m->est, b->input.base, b->input.len);
        else
            pgw_estimate_add_text(m->est, H2O_STRLIT("{}"));

        h2o_vector_reserve(NULL, &m->cur.list, m->cur.list.size + 1);
        m->cur.list.entries[m->cur.list.size++] = (struct call){m->cur.ids->size, b->id.len, 0};
        pgw_buf_append(&m->cur.ids, b->id.base, b->id.len);
    } else if (is(b->type, "thinking")) {
        /* dropped, or echoed as reasoning_content; never folded into text (docs/mapping.md#assistant-blocks) */
        if (m->echo_reasoning && has_text(b->thinking))
            join(&m->reasoning, &m->num_reasoning, "\n", b->thinking.base, b->thinking.len);
    } else if (is(b->type, "text") || !is_thinking_or_tool_use(b->type)) {
        int text = has_text(b->text);
        if (text)
            join(&m->atext, &m->num_atext, "\n", b->text.base, b->text.len);
        note_unknown_type(m, b, text);
    }
    return 0;
}

static void note_text(pgw_messages_t *m, const char *p, size_t len)
{
    if (!pgw_is_blank(p, len))
        join(&m->note, &m->num_note, "\n\n", p, len);
}

/* A block inside a tool_result, document or search_result: reduced to text and parts of its parent
 * (docs/mapping.md#tool-results). */
static int nested_block(pgw_messages_t *m, pgw_block_t *b, pgw_block_t *parent, const char **missing)
{
    char placeholder[256];

    if (is(b->type, "image")) {
        size_t mark = parent->attach->size;
        attach_begin(parent);
        int r = image_part(m, b, &parent->attach, placeholder, sizeof(placeholder), missing);
        if (r < 0)
            return -1;
        if (r == 0) {
            parent->attach->size = mark;
            --parent->num_attach;
            join(&parent->joined, &parent->num_joined, "\n", placeholder, strlen(placeholder));
        } else {
            /* OpenAI tool messages carry text only: the image follows in the next user message */
            join(&parent->joined, &parent->num_joined, "\n", H2O_STRLIT("[image attached below]"));
        }
    } else if (is(b->type, "document")) {
        if (is_pdf_data(b)) {
            attach_begin(parent);
            if (file_part(m, b, &parent->attach, missing) < 0)
                return -1;
            join(&parent->joined, &parent->num_joined, "\n", H2O_STRLIT("[document attached below]"));
        } else {
            if (document_text(m, b, missing) < 0)
                return -1;
            if (m->scratch->size != 0)
                join(&parent->joined, &parent->num_joined, "\n", m->scratch->bytes, m->scratch->size);
            if (b->num_attach != 0) {
                attach_begin(parent);
                pgw_buf_append(&parent->attach, b->attach->bytes, b->attach->size);
                parent->num_attach += b->num_attach - 1;
            }
        }
    } else if (is(b->type, "tool_reference")) {
        /* a tool search result: keeps the tool message non-empty and says what was loaded */
        join(&parent->joined, &parent->num_joined, "\n", H2O_STRLIT("[Loaded tool: "));
        pgw_buf_append(&parent->joined, str(b->tool_name), b->tool_name.len);
        pgw_buf_append_lit(&parent->joined, "]");
    } else if (is(b->type, "search_result")) {
        search_result_text(m, b);
        if (m->scratch->size != 0)
            join(&parent->joined, &parent->num_joined, "\n", m->scratch->bytes, m->scratch->size);
    } else {
        int text = !is_thinking_or_tool_use(b->type) && has_text(b->text);
        if (text)
            join(&parent->joined, &parent->num_joined, "\n", b->text.base, b->text.len);
        note_unknown_type(m, b, text);
    }
    return 0;
}

int pgw_messages_block(pgw_messages_t *m, pgw_role_t role, pgw_block_t *b, pgw_block_t *parent, const char **missing)
{
    if (parent != NULL)
        return nested_block(m, b, parent, missing);
    switch (role) {
    case PGW_ROLE_USER:
        return user_block(m, b, missing);
    case PGW_ROLE_ASSISTANT:
        return assistant_block(m, b, missing);
    default:
        if (!is_thinking_or_tool_use(b->type) && has(b->text))
            note_text(m, b->text.base, b->text.len);
        return 0;
    }
}

void pgw_messages_block_text(pgw_block_t *b, const char *text, size_t len)
{
    if (!pgw_is_blank(text, len))
        join(&b->joined, &b->num_joined, "\n", text, len);
}

/* ---- messages (docs/mapping.md#messages) ---- */

/* Answers the previous assistant turn's unanswered calls, then writes any pending system note. */
static void close_turn(pgw_messages_t *m)
{
    for (size_t i = 0; i != m->prev.list.size; ++i) {
        struct call *c = &m->prev.list.entries[i];
        if (!c->answered)
            tool_message(m, call_id(&m->prev, c), c->len, "", H2O_STRLIT("[tool call interrupted]"));
    }
    calls_clear(&m->prev);
    if (m->num_note != 0) {
        msg_begin(m);
        pgw_buf_append_lit(&m->msgs, "{\"role\":\"user\",\"content\":\"[system note] ");
        append_escaped(&m->msgs, m->note->bytes, m->note->size);
        pgw_buf_append_lit(&m->msgs, "\"}");
        pgw_estimate_add_text(m->est, H2O_STRLIT("[system note] "));
        pgw_estimate_add_text(m->est, m->note->bytes, m->note->size);
        m->note->size = 0;
        m->num_note = 0;
    }
}

void pgw_messages_begin(pgw_messages_t *m)
{
    m->parts->size = 0;
    m->num_parts = 0;
    m->first_is_text = 0;
    m->atext->size = 0;
    m->num_atext = 0;
    m->acalls->size = 0;
    m->num_acalls = 0;
    m->reasoning->size = 0;
    m->num_reasoning = 0;
    calls_clear(&m->cur);
    m->fixups_msg_start = m->fixups.size;
}

void pgw_messages_text(pgw_messages_t *m, pgw_role_t role, const char *text, size_t len)
{
    if (pgw_is_blank(text, len))
        return;
    if (role == PGW_ROLE_USER)
        user_text(m, "", text, len);
    else if (role == PGW_ROLE_ASSISTANT)
        join(&m->atext, &m->num_atext, "\n", text, len);
    else
        note_text(m, text, len);
}

void pgw_messages_end(pgw_messages_t *m, pgw_role_t role)
{
    switch (role) {
    case PGW_ROLE_USER:
        /* its tool messages are out already; then the calls it left unanswered, a pending note, and its other parts */
        close_turn(m);
        if (m->num_parts != 0) {
            msg_begin(m);
            pgw_buf_append_lit(&m->msgs, "{\"role\":\"user\",\"content\":");
            if (m->num_parts == 1 && m->first_is_text) {
                pgw_buf_append(&m->msgs, m->parts->bytes + m->first_text_off, m->first_text_len);
            } else {
                pgw_buf_append_lit(&m->msgs, "[");
                pgw_buf_append(&m->msgs, m->parts->bytes, m->parts->size);
                pgw_buf_append_lit(&m->msgs, "]");
            }
            pgw_buf_append_lit(&m->msgs, "}");
        }
        break;
    case PGW_ROLE_ASSISTANT: {
        if (m->num_atext == 0 && m->num_acalls == 0)
            break; /* left empty (thinking only, blank text): dropped, and the previous turn stays open */
        close_turn(m);
        msg_begin(m);
        pgw_buf_append_lit(&m->msgs, "{\"role\":\"assistant\",\"content\":");
        if (m->num_atext != 0)
            append_quoted(&m->msgs, m->atext->bytes, m->atext->size);
        else
            pgw_buf_append_lit(&m->msgs, "null");
        pgw_estimate_add_text(m->est, m->atext->bytes, m->atext->size);
        if (m->num_reasoning != 0) {
            pgw_buf_append_lit(&m->msgs, ",\"reasoning_content\":");
            append_quoted(&m->msgs, m->reasoning->bytes, m->reasoning->size);
            pgw_estimate_add_text(m->est, m->reasoning->bytes, m->reasoning->size);
        }
        if (m->num_acalls != 0) {
            pgw_buf_append_lit(&m->msgs, ",\"tool_calls\":[");
            for (size_t i = m->fixups_msg_start; i != m->fixups.size; ++i)
                m->fixups.entries[i].off += m->msgs->size;
            pgw_buf_append(&m->msgs, m->acalls->bytes, m->acalls->size);
            pgw_buf_append_lit(&m->msgs, "]");
        }
        pgw_buf_append_lit(&m->msgs, "}");
        /* its calls now wait for the next user turn */
        struct calls tmp = m->prev;
        m->prev = m->cur;
        m->cur = tmp;
        break;
    }
    default:
        /* role "system": its text waits in m->note (docs/mapping.md#messages) */
        break;
    }
}

void pgw_messages_end_all(pgw_messages_t *m)
{
    /* a trailing assistant turn's calls have no answer: still answered, or the upstream refuses the history */
    close_turn(m);
}

/* ---- system (docs/mapping.md#system) ---- */

void pgw_messages_system(pgw_messages_t *m, const char *p, size_t len)
{
    /* Claude Code's attribution line means nothing upstream and, changing per request, defeats prefix caches */
    static const char billing[] = "x-anthropic-billing-header:";
    if (len >= sizeof(billing) - 1 && memcmp(p, billing, sizeof(billing) - 1) == 0) {
        const char *nl = memchr(p, '\n', len);
        len = nl != NULL ? len - (nl + 1 - p) : 0;
        p = nl != NULL ? nl + 1 : p;
    }
    if (!pgw_is_blank(p, len)) {
        size_t n = m->sys->size != 0;
        join(&m->sys, &n, "\n\n", p, len);
    }
}

/* ---- output ---- */

void pgw_messages_write(pgw_messages_t *m, const pgw_toolnames_t *names, h2o_buffer_t **out)
{
    size_t pos = 0;

    if (m->sys->size != 0) {
        pgw_buf_append_lit(out, "{\"role\":\"system\",\"content\":");
        append_quoted(out, m->sys->bytes, m->sys->size);
        pgw_buf_append(out, "},", m->num_msgs != 0 ? 2 : 1);
        ++m->est->num_messages;
        pgw_estimate_add_text(m->est, m->sys->bytes, m->sys->size);
    }
    /* history tool names whose mapping a collision in `tools` changed are replaced (docs/mapping.md#tool-names) */
    for (size_t i = 0; names != NULL && i != m->fixups.size; ++i) {
        const struct fixup *f = &m->fixups.entries[i];
        const char *final = pgw_toolnames_mapped(names, m->fixnames->bytes + f->orig_off, f->orig_len);
        if (final == NULL || (strlen(final) + 2 == f->len && memcmp(pgw_buf_at(m->msgs, f->off + 1), final, f->len - 2) == 0))
            continue;
        pgw_buf_append(out, pgw_buf_at(m->msgs, pos), f->off - pos);
        append_quoted(out, final, strlen(final));
        pos = f->off + f->len;
    }
    pgw_buf_append(out, pgw_buf_at(m->msgs, pos), m->msgs->size - pos);
}

/* ---- life ---- */

#define NUM_BUFFERS 11

/* The buffers `m` owns. */
static void list_buffers(pgw_messages_t *m, h2o_buffer_t **list[NUM_BUFFERS])
{
    h2o_buffer_t **all[] = {&m->parts, &m->atext, &m->acalls, &m->reasoning, &m->prev.ids, &m->cur.ids,
                            &m->note,  &m->sys,   &m->msgs,   &m->fixnames,  &m->scratch};
    _Static_assert(sizeof(all) / sizeof(all[0]) == NUM_BUFFERS, "NUM_BUFFERS counts the buffers");
    memcpy(list, all, sizeof(all));
}

pgw_messages_t *pgw_messages_create(int echo_reasoning, pgw_estimate_t *est, pgw_messages_where_cb where, void *ctx)
{
    pgw_messages_t *m = h2o_mem_alloc(sizeof(*m));
    h2o_buffer_t **buffers[NUM_BUFFERS];

    memset(m, 0, sizeof(*m));
    m->echo_reasoning = echo_reasoning;
    m->est = est;
    m->where = where;
    m->where_ctx = ctx;
    list_buffers(m, buffers);
    for (size_t i = 0; i != NUM_BUFFERS; ++i)
        h2o_buffer_init(buffers[i], &h2o_socket_buffer_prototype);
    return m;
}

void pgw_messages_destroy(pgw_messages_t *m)
{
    h2o_buffer_t **buffers[NUM_BUFFERS];

    list_buffers(m, buffers);
    for (size_t i = 0; i != NUM_BUFFERS; ++i)
        h2o_buffer_dispose(buffers[i]);
    free(m->prev.list.entries);
    free(m->cur.list.entries);
    free(m->fixups.entries);
    free(m);
}
