/* poe-gateway: MIT licence. The LiteLLM-compatible YAML configuration, loaded once into plain C structs. */
#ifndef PGW_CONFIG_H
#define PGW_CONFIG_H

#include <stddef.h>

#define PGW_DEFAULT_CONFIG_PATH "conf/gateway.yaml"
#define PGW_DEFAULT_HOST "127.0.0.1"
#define PGW_DEFAULT_PORT 4000
#define PGW_DEFAULT_MAX_BODY_BYTES (32 * 1024 * 1024)
#define PGW_DEFAULT_TIMEOUT 600.0        /* seconds to the first upstream byte */
#define PGW_DEFAULT_STREAM_TIMEOUT 300.0 /* seconds of upstream silence mid-stream */
#define PGW_DEFAULT_MAX_RETRIES 2
#define PGW_DEFAULT_GRACEFUL_TIMEOUT 30.0
#define PGW_DEFAULT_IDLE_TIMEOUT 60.0
#define PGW_DEFAULT_OPENAI_API_BASE "https://api.poe.com/v1"
#define PGW_DEFAULT_ANTHROPIC_API_BASE "https://api.poe.com"
#define PGW_DEFAULT_TAILSCALE_SOCKET "/var/run/tailscale/tailscaled.sock"

typedef enum en_pgw_route_kind_t {
    PGW_ROUTE_OPENAI,   /* "openai/<bot>": Anthropic <-> chat/completions translation */
    PGW_ROUTE_ANTHROPIC /* "anthropic/<model>": pass-through to Poe's /v1/messages */
} pgw_route_kind_t;

/* gateway.metrics_auth: who may read /metrics. The zero value is the default. */
typedef enum en_pgw_metrics_auth_t {
    PGW_METRICS_AUTH_MASTER, /* the master key only */
    PGW_METRICS_AUTH_KEYS,   /* any caller the gateway authenticates */
    PGW_METRICS_AUTH_NONE    /* anyone: routing skips authentication */
} pgw_metrics_auth_t;

typedef struct st_pgw_header_t {
    char *name;  /* owned */
    char *value; /* owned */
} pgw_header_t;

/**
 * One entry of `model_list`. All strings are owned by the route and freed by pgw_config_dispose.
 */
typedef struct st_pgw_route_t {
    char *model_name;       /* client-facing name as written; may contain '*' wildcards */
    int is_wildcard;        /* model_name contains '*' */
    pgw_route_kind_t kind;  /* from the provider prefix of litellm_params.model */
    char *upstream_model;   /* litellm_params.model without the prefix; a '*' stands for the client's model name */
    char *api_base;         /* litellm_params.api_base without trailing '/'; the kind's default when absent */
    char *api_key;          /* resolved key; NULL when it names an unset environment variable (or is absent) */
    char *api_key_env;      /* NAME when api_key was written os.environ/NAME, else NULL */
    int rpm;                /* requests per minute, 0 = unlimited */
    double timeout;         /* seconds to first byte: route, else router_settings.timeout, else PGW_DEFAULT_TIMEOUT */
    double stream_timeout;  /* seconds of silence mid-stream: route, else PGW_DEFAULT_STREAM_TIMEOUT */
    int max_retries;        /* route max_retries, else router_settings.num_retries, else PGW_DEFAULT_MAX_RETRIES */
    int ssl_verify;         /* 1 unless the route says ssl_verify: false */
    int h2c;                /* http2_prior_knowledge: true: HTTP/2 without TLS to an http:// api_base */
    int echo_reasoning;     /* openai/: history thinking goes upstream as reasoning_content */
    int minimal_schema;     /* openai/: tool schemas reduced to type/properties/required */
    int buffer_tools;       /* openai/: tool calls emitted whole at the end of a stream */
    char *extra_body;       /* openai/: litellm_params.extra_body as JSON object members without braces, or NULL (owned) */
    struct st_pgw_extra_body_t *extra_body_members; /* the same, parsed once for the translator (src/config/extra_body.h), or
                                                       NULL (owned: free()) */
    pgw_header_t *extra_headers; /* owned array */
    size_t num_extra_headers;
    unsigned line, column; /* 1-based position of the entry in the file, for messages */
} pgw_route_t;

/**
 * A named client key (gateway.keys). The master key is not one of these: pgw_auth identifies it as "master".
 */
typedef struct st_pgw_key_t {
    char *name;                 /* shown in logs and metrics instead of the key (owned) */
    unsigned char sha256[32];   /* the key's SHA-256: the only form kept (a literal or variable is hashed at load) */
    int has_key;                /* 0 when the key names an unset environment variable: nobody can use it */
    char **models;              /* allow list of model-name patterns ('*' wildcards); NULL = every model (owned) */
    size_t num_models;
    int rpm;                    /* requests per minute for this key, 0 = unlimited */
    unsigned line, column;
} pgw_key_t;

typedef struct st_pgw_config_t {
    char *path;            /* the file loaded (owned) */
    pgw_route_t *routes;   /* in file order (owned array) */
    size_t num_routes;
    char *master_key;      /* resolved general_settings.master_key, else env LITELLM_MASTER_KEY, else NULL (owned) */
    char *master_key_env;  /* NAME when the master key came from os.environ/NAME or LITELLM_MASTER_KEY (owned) */
    /* gateway: section */
    char *host;            /* default PGW_DEFAULT_HOST (owned) */
    unsigned port;         /* default PGW_DEFAULT_PORT */
    unsigned threads;      /* 0 = number of cores */
    char *log_level;       /* NULL = info (owned) */
    char *state_dir;       /* NULL = ~/.local/state/poe-gateway (owned) */
    char *public_url;      /* NULL unless set (owned) */
    char *tls_cert_file;   /* gateway.tls.cert_file, NULL = no TLS (owned) */
    char *tls_key_file;    /* gateway.tls.key_file (owned) */
    char *ssl_ca_file;     /* gateway.ssl_ca_file, extra CA for upstream TLS (owned) */
    size_t max_body_bytes; /* default PGW_DEFAULT_MAX_BODY_BYTES */
    size_t max_body_bytes_per_connection; /* request bodies one connection may have in flight; default 2 x max_body_bytes */
    size_t max_body_bytes_in_flight;      /* request bodies the gateway may hold at once; default 8 x max_body_bytes */
    double idle_timeout;   /* seconds a client may stay silent, default PGW_DEFAULT_IDLE_TIMEOUT */
    unsigned max_connections; /* client connections open at once; 0 = derived from the descriptor limit (src/serve/listener.c) */
    double graceful_timeout; /* seconds in-flight requests get on SIGTERM, default PGW_DEFAULT_GRACEFUL_TIMEOUT */
    int auth_tailscale;    /* gateway.auth: tailscale: callers without a key are identified by tailscaled's whois */
    char *tailscale_socket; /* gateway.tailscale_socket: tailscaled's LocalAPI socket (NULL = the default path) (owned) */
    pgw_metrics_auth_t metrics_auth; /* gateway.metrics_auth, default PGW_METRICS_AUTH_MASTER */
    int upstream_rpm;      /* gateway.upstream_rpm: requests a minute per upstream (Poe) key, shaped; default 500, 0 = unlimited */
    int upstream_burst;    /* gateway.upstream_burst: of those, how many may go at once; default 0 = a minute's worth */
    double queue_timeout;  /* gateway.queue_timeout: seconds a request may wait for its turn before a 429; default 60 */
    unsigned upstream_connections; /* gateway.upstream_connections: per worker and upstream host; 0 = the default */
    pgw_key_t *keys;       /* gateway.keys, in file order (owned array) */
    size_t num_keys;
    /* environment variables referenced with os.environ/NAME that are not set, each named once (owned) */
    char **missing_env;
    size_t num_missing_env;
} pgw_config_t;

/**
 * Loads and validates the file at `path` into `conf` (which the function zero-initialises first).
 * Environment variables are read at load time. Unknown LiteLLM sections and keys produce one warning each through
 * pgw_log_warn and are otherwise ignored. Returns 0 on success. On error returns -1 with `conf` already disposed and
 * `err` holding one line "file:line:column: what is wrong" (without a trailing newline).
 */
int pgw_config_load(pgw_config_t *conf, const char *path, char *err, size_t errsz);

/**
 * Frees everything `conf` owns and zeroes it. Safe to call twice.
 */
void pgw_config_dispose(pgw_config_t *conf);

/**
 * Loads compose-style KEY=value lines from `path` into the environment without overriding variables already set.
 * Blank lines and lines starting with '#' are skipped; `export KEY=value` is accepted; values may be wrapped in single or
 * double quotes (double quotes understand \n, \" and \\); an unquoted value ends at " #". A missing file is not an error
 * (returns 0). Returns the number of variables set, or -1 with `err` as "file:line: what is wrong" for a malformed line.
 */
int pgw_dotenv_load(const char *path, char *err, size_t errsz);

#endif
