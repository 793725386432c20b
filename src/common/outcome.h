/* poe-gateway: MIT licence. How a request's answer ended, beyond its status: for the access log and /metrics. */
#ifndef PGW_OUTCOME_H
#define PGW_OUTCOME_H

typedef enum en_pgw_outcome_t {
    PGW_OUTCOME_OK = 0,         /* answered as the status says: a whole body, or a stream that ended with message_stop */
    PGW_OUTCOME_UPSTREAM_CUT,   /* Poe's answer broke off, stalled or was unusable: the client got a 5xx or one `error`
                                 * event instead of the rest */
    PGW_OUTCOME_UPSTREAM_ERROR, /* Poe answered with an error of its own (a status, or an `error` event in a stream) */
    PGW_OUTCOME_CLIENT_GONE,    /* the client went away before the end */
    PGW_OUTCOME_COUNT
} pgw_outcome_t;

/** "ok", "upstream_cut", "upstream_error", "client_gone". */
static inline const char *pgw_outcome_name(pgw_outcome_t o)
{
    static const char *const names[PGW_OUTCOME_COUNT] = {"ok", "upstream_cut", "upstream_error", "client_gone"};
    return (unsigned)o < PGW_OUTCOME_COUNT ? names[o] : "ok";
}

#endif
