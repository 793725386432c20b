/* poe-gateway: MIT licence. Leveled logging to stderr; the one place that formats a log line. */
#ifndef PGW_LOG_H
#define PGW_LOG_H

#include <stdarg.h>

typedef enum en_pgw_log_level_t {
    PGW_LOG_ERROR = 0,
    PGW_LOG_WARN,
    PGW_LOG_INFO,
    PGW_LOG_DEBUG,
} pgw_log_level_t;

/** Current threshold; messages above it are dropped. Set once at start-up. */
extern pgw_log_level_t pgw_log_level;

/**
 * Parses "error", "warn", "info" or "debug". Returns 0 and sets *level, or -1 for anything else.
 */
int pgw_log_parse_level(const char *s, pgw_log_level_t *level);

/**
 * Writes one line "time level [module] message" to stderr with a single write(2), so lines from worker
 * threads never interleave. Never pass a secret: callers mask keys with pgw_log_mask_key first.
 */
void pgw_log(pgw_log_level_t level, const char *module, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/**
 * Writes a masked form of a key into buf ("sk-…wxyz" style: the first 3 and the last 4 characters only when the key is
 * at least 16 characters long, otherwise "****"). NULL prints "(unset)". Returns buf.
 */
const char *pgw_log_mask_key(const char *key, char *buf, size_t bufsz);

#define pgw_log_error(module, ...) pgw_log(PGW_LOG_ERROR, module, __VA_ARGS__)
#define pgw_log_warn(module, ...) pgw_log(PGW_LOG_WARN, module, __VA_ARGS__)
#define pgw_log_info(module, ...) pgw_log(PGW_LOG_INFO, module, __VA_ARGS__)
#define pgw_log_debug(module, ...) pgw_log(PGW_LOG_DEBUG, module, __VA_ARGS__)

#endif
