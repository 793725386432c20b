/* poe-gateway: MIT licence. Anthropic Messages <-> OpenAI chat/completions, for openai/ routes: the shared types and the
 * three translators (request, whole response, stream). The rules are in docs/mapping.md (requests, whole responses) and
 * docs/streams.md (streams). Translators see bytes and buffers only: no h2o request, no curl, no clock, no randomness. */
#ifndef PGW_TRANSLATE_H
#define PGW_TRANSLATE_H

#include <stddef.h>
#include <h2o/memory.h>
#include "common/outcome.h"
#include "upstream/upstream_errors.h"
#include "upstream/catalog.h"
#include "config/extra_body.h"

/* ---- src/translate/toolnames.c: tool names (docs/mapping.md#tool-names) and tool-call ids (docs/mapping.md#identifiers) ---- */

#define PGW_TOOLNAME_MAX 64

/**
 * The names of one request's tools, original and as sent upstream. Built by the request translator from `tools`;
 * used by the response translators to restore originals. Owns its strings.
 */
typedef struct st_pgw_toolnames_t {
    struct {
        char *original;
        char *mapped;
    } *entries;
    size_t num_entries;
} pgw_toolnames_t;

/**
 * Maps a tool name to `^[a-zA-Z0-9_-]{1,64}$`: other characters become '_'; a name over 64 characters becomes its
 * first 55 characters, '_' and the first 8 hex digits of its SHA-256. Writes a NUL-terminated result into `out`
 * (PGW_TOOLNAME_MAX + 1 bytes). Pure: the same input always maps the same way.
 */
void pgw_toolname_map(const char *name, size_t len, char *out);

/** Adds a pair (copied); names that collide after mapping both take the hashed form (docs/mapping.md#tool-names). */
void pgw_toolnames_add(pgw_toolnames_t *names, const char *original, size_t len);
/** The upstream name for an original, or NULL when the tool is not in `names`. */
const char *pgw_toolnames_mapped(const pgw_toolnames_t *names, const char *original, size_t len);
/** The original for an upstream name; the upstream name itself when unknown. Valid while `names` lives. */
const char *pgw_toolnames_original(const pgw_toolnames_t *names, const char *mapped, size_t len, size_t *out_len);
void pgw_toolnames_dispose(pgw_toolnames_t *names);

/**
 * Sanitises an upstream tool-call id (docs/mapping.md#identifiers): every character outside [A-Za-z0-9_-] becomes '_'.
 * Writes at most `outsz` - 1 bytes and a NUL. An empty id yields "".
 */
void pgw_toolcall_id_sanitise(const char *id, size_t len, char *out, size_t outsz);

/* ---- src/translate/translate_request.c: Anthropic request -> chat/completions request (docs/mapping.md) ---- */

/**
 * The most tools one request may declare (a 400 beyond): bounds the work a request makes on its tool names, whatever they
 * are, and is far above what a client needs.
 */
#define PGW_TRANSLATE_MAX_TOOLS 4096

typedef struct st_pgw_translate_opts_t {
    const char *upstream_model; /* the bot name sent as "model" */
    const pgw_bot_t *bot;       /* the bot's catalog entry; NULL when unknown: no knobs are sent and max_tokens is not
                                   clamped */
    const pgw_extra_body_t *extra_body; /* the route's pins, parsed at load: added at the top level, winning over
                                           computed fields and knobs (docs/mapping.md#extra-body); NULL for none */
    int echo_reasoning;         /* route option: history thinking goes upstream as reasoning_content
                                   (docs/mapping.md#assistant-blocks) */
    int minimal_schema;         /* route option: tool schemas reduced to type/properties/required
                                   (docs/mapping.md#tool-schemas) */
} pgw_translate_opts_t;

typedef struct st_pgw_translated_t {
    int stream;                   /* the client asked for a stream */
    long long max_tokens;         /* as sent upstream (after clamping); 0 when the client sent none (count_tokens) */
    long long input_tokens;       /* the local estimate of the translated prompt (docs/mapping.md#the-token-estimate):
                                     never below the true count */
    pgw_toolnames_t toolnames;    /* the request's tools, for the response side; dispose with pgw_translated_dispose */
    char *stop_sequences[4];      /* the stop sequences sent upstream (decoded, owned), unused entries NULL */
    int web_search;               /* the request's web_search server tool went upstream as the bot's web_search knob: the
                                     answer reports a search (docs/mapping.md#web-search) */
    char refused_tool[64];        /* the type of a server tool the bot cannot run, "" when none: the body was translated
                                     without it, and a messages request is refused (docs/mapping.md#server-tools) */
} pgw_translated_t;

/**
 * Translates the Anthropic request `body` into a chat/completions body appended to `*out`, streaming through yajl
 * callbacks (no document tree), buffering only what must move (docs/mapping.md#tool-results). Returns 0, or -1 with a
 * client-facing message in `err` (an invalid_request_error: malformed JSON, a field of the wrong type, ...). `res` is filled in
 * either case and must be disposed. A server tool the bot cannot run is not a failure here: it is named in
 * res->refused_tool, for the caller, which knows the routes that can, to refuse with.
 */
int pgw_translate_request(const char *body, size_t len, const pgw_translate_opts_t *opts, h2o_buffer_t **out,
                          pgw_translated_t *res, char *err, size_t errsz);
void pgw_translated_dispose(pgw_translated_t *res);

/* ---- src/translate/translate_response.c, translate_stream.c: chat/completions -> Anthropic (docs/mapping.md, docs/streams.md) ---- */

typedef struct st_pgw_response_opts_t {
    const char *msg_id;             /* "msg_..." chosen by the caller (docs/mapping.md#identifiers) */
    const char *model;              /* the model name the client asked for */
    long long input_tokens;         /* the request's estimate, used until (and unless) Poe reports usage */
    const pgw_toolnames_t *toolnames;
    int buffer_tools;               /* emit each tool call whole at the end (docs/streams.md#tool-calls-in-a-stream) */
    const char *stop_sequences[4];  /* the client's stop sequences, NULL-terminated, for stop_sequence reporting */
    const char *secret;             /* the route's upstream key: redacted from every upstream message passed on (or NULL) */
    int web_search;                 /* the request searched through the bot's knob (pgw_translated_t): the answer gets the
                                       search blocks (docs/mapping.md#web-search) */
} pgw_response_opts_t;

/**
 * Translates a whole chat/completions response into an Anthropic message appended to `*out`. Returns 0, or -1 with
 * `fail` filled when the response is unusable (no choices, malformed, nothing at all with finish_reason stop, an
 * error object): the caller answers with fail->status.
 */
int pgw_translate_response(const char *body, size_t len, const pgw_response_opts_t *opts, h2o_buffer_t **out,
                           pgw_upstream_failure_t *fail);

/* ---- src/translate/translate_answer.c: what the whole and the streamed answer decide alike ---- */

/**
 * Chooses the tool_use id for one upstream tool call (docs/mapping.md#identifiers). `*ids` holds the ids already chosen
 * for this message, each NUL-terminated; the new one is appended the same way and its offset in `*ids` returned. The id
 * is the upstream id sanitised; when the upstream gave none, "toolu_" + the part of `msg_id` after "msg_" + "_" +
 * `position` (deterministic: translators have no randomness, and the id only has to pair tool_use with tool_result);
 * when the result was already chosen, "_2", "_3", ... is appended until it is unique.
 */
size_t pgw_tool_use_id(h2o_buffer_t **ids, const char *upstream_id, size_t len, const char *msg_id, size_t position);

/**
 * The Anthropic stop_reason of an answer (docs/mapping.md#stop-reasons), a static string: "max_tokens" when
 * `finish_reason` is "length"; else "tool_use" when the answer holds a tool_use block (`has_tools`), whatever
 * `finish_reason` said; else "refusal" for a refusal (`has_refusal`) or finish_reason "content_filter"; else
 * "stop_sequence" when `*stop_sequence` is not NULL; else "end_turn" (also for "stop", an unknown reason and NULL).
 * `*stop_sequence` is, on entry, the client's stop sequence the upstream named as matched (or NULL); on return, the
 * stop_sequence to report: NULL unless the reason is "stop_sequence".
 */
const char *pgw_stop_reason(const char *finish_reason, int has_tools, int has_refusal, const char **stop_sequence);

/** Appends `"stop_reason":"<stop_reason>","stop_sequence":<the sequence as a JSON string, or null>`, as both answer
 * translators write it (a whole message, and a stream's message_delta). */
void pgw_append_stop(h2o_buffer_t **out, const char *stop_reason, const char *stop_sequence);

/**
 * The stream state machine (docs/streams.md#the-translation-state-machine). Fed one upstream SSE event's data at a time
 * (the SSE framing is src/relay/sse.c's job); appends Anthropic SSE frames ("event: T\ndata: {...}\n\n") to the caller's
 * buffer. Finalises exactly once.
 */
typedef struct st_pgw_stream_translator_t pgw_stream_translator_t;

typedef enum en_pgw_stream_status_t {
    PGW_STREAM_CONTINUE = 0, /* keep feeding */
    PGW_STREAM_DONE,         /* message_stop (or a closing error event) was written: the client stream is complete */
    PGW_STREAM_FAILED_EARLY, /* an upstream error arrived before the commit: answer with stream_failure() as JSON */
} pgw_stream_status_t;

pgw_stream_translator_t *pgw_stream_translator_create(const pgw_response_opts_t *opts);
void pgw_stream_translator_destroy(pgw_stream_translator_t *t);

/** One event's data: a chunk object, or "[DONE]". */
pgw_stream_status_t pgw_stream_translator_feed(pgw_stream_translator_t *t, const char *data, size_t len, h2o_buffer_t **out);

/**
 * Forces the commit (message_start) when nothing usable arrived within the caller's wait (docs/streams.md#commit).
 * No-op once committed.
 */
void pgw_stream_translator_commit(pgw_stream_translator_t *t, h2o_buffer_t **out);

/** 1 once message_start has been written. */
int pgw_stream_translator_committed(const pgw_stream_translator_t *t);

/**
 * 1 when finish_reason was seen but the stream is not finalised yet (the caller arms the 2 s grace timer,
 * docs/streams.md#timers).
 */
int pgw_stream_translator_awaiting_usage(const pgw_stream_translator_t *t);

/**
 * Ends the stream: `clean` means the upstream ended normally (EOF or the grace timer); otherwise `errtype`/`message` say
 * why it broke (a stall, a reset). Writes message_delta + message_stop, or one `error` event (docs/streams.md#ending).
 * Idempotent.
 */
pgw_stream_status_t pgw_stream_translator_finish(pgw_stream_translator_t *t, int clean, const char *errtype, const char *message,
                                                 h2o_buffer_t **out);

/** After PGW_STREAM_FAILED_EARLY: the failure to answer with. */
const pgw_upstream_failure_t *pgw_stream_translator_failure(const pgw_stream_translator_t *t);

/** The usage the client was told (for logs and metrics), valid after the stream is done. */
void pgw_stream_translator_usage(const pgw_stream_translator_t *t, long long *input, long long *output, long long *cache_read,
                                 long long *cache_creation);

/**
 * 1 when the stream ended with an api_error event because an argument fragment arrived for a tool block already closed
 * (docs/streams.md#tool-calls-in-a-stream): the caller sets the route's buffer_tools flag so that Claude Code's retry
 * succeeds.
 */
int pgw_stream_translator_wants_buffer_tools(const pgw_stream_translator_t *t);

/**
 * How the stream ended, once feed/finish returned PGW_STREAM_DONE: PGW_OUTCOME_OK for message_stop, UPSTREAM_ERROR for
 * an error event that carries Poe's own error, UPSTREAM_CUT for one that says Poe's stream broke off or was unusable.
 */
pgw_outcome_t pgw_stream_translator_outcome(const pgw_stream_translator_t *t);

#endif
