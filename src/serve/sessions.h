/* poe-gateway: MIT licence. Claude Code's sessions and subagents: the ids it sends on each request, and a bounded table
 * of per-session totals for /usage (docs/request-path.md#sessions-and-subagents). */
#ifndef PGW_SESSIONS_H
#define PGW_SESSIONS_H

#include <stddef.h>
#include <stdint.h>
#include <h2o/memory.h>
#include "common/usage.h"

#define PGW_SESSIONS_MAX 1024     /* sessions the process-wide table holds; past it the least recently seen is evicted */
#define PGW_SESSION_ID_MAX 128    /* bytes kept of an id; the rest is cut */
#define PGW_SESSION_AGENTS_MAX 64 /* distinct agent ids counted per session; more count as this many */

/* The headers Claude Code sends (docs/peers.md#claude-codes-requests). */
#define PGW_SESSION_HEADER "x-claude-code-session-id"
#define PGW_AGENT_HEADER "x-claude-code-agent-id"
#define PGW_PARENT_AGENT_HEADER "x-claude-code-parent-agent-id"

/**
 * An id from a header value, safe to write into a log line or JSON as it is: at most PGW_SESSION_ID_MAX bytes, each
 * byte outside `A-Z a-z 0-9 . _ : @ % + = -` replaced by '_'. Returns NULL for an absent (base NULL) or empty value;
 * otherwise a NUL-terminated copy from `pool`.
 */
const char *pgw_session_id(h2o_mem_pool_t *pool, h2o_iovec_t value);

typedef struct st_pgw_sessions_t pgw_sessions_t;

/** A table of at most `max` sessions (at least 1). */
pgw_sessions_t *pgw_sessions_create(size_t max);
void pgw_sessions_destroy(pgw_sessions_t *s);

/** The process-wide table of PGW_SESSIONS_MAX sessions, made on first use; it lives as long as the process. */
pgw_sessions_t *pgw_sessions(void);

/**
 * Adds one finished request to the row of (`key`, `session`), made when new; when the table is full, the row seen
 * least recently is evicted first (and counted). `agent` (or NULL) is the request's subagent id: the request counts as a
 * subagent's, and the id among the session's distinct agents. `usage` may be NULL. Safe from any thread (one mutex).
 */
void pgw_sessions_record(pgw_sessions_t *s, const char *key, const char *session, const char *agent, const pgw_usage_t *usage,
                         uint64_t now_ms);

/**
 * Appends one JSON object: `{"max":N,"evicted":N,"keys":{KEY:{SESSION:{"first_seen":...,"last_seen":...,"requests":N,
 * "subagent_requests":N,"agents":N,"input_tokens":N,"output_tokens":N,"cache_read_input_tokens":N,
 * "cache_creation_input_tokens":N}}}}`, keys and sessions sorted.
 */
void pgw_sessions_render(pgw_sessions_t *s, h2o_buffer_t **out);

#endif
