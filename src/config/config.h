/* poe-gateway: MIT licence. The LiteLLM-compatible YAML configuration, loaded once into plain C structs. */
#ifndef PGW_CONFIG_H
#define PGW_CONFIG_H

#include <stddef.h>

#define PGW_DEFAULT_CONFIG_PATH "conf/gateway.yaml"
#ifndef PGW_DEFAULT_HOST /* the Docker image builds with 0.0.0.0 (cmake -DPGW_DEFAULT_HOST), as LiteLLM's image listens */
#define PGW_DEFAULT_HOST "127.0.0.1"
#endif
#define PGW_DEFAULT_PORT 4000
#define PGW_DEFAULT_MAX_BODY_BYTES (32 * 1024 * 1024)
#define PGW_DEFAULT_TIMEOUT 600.0        /* seconds to the first upstream byte */
#define PGW_DEFAULT_STREAM_TIMEOUT 300.0 /* seconds of upstream silence mid-stream */
#define PGW_DEFAULT_MAX_RETRIES 2
#define PGW_DEFAULT_ALLOWED_FAILS 3      /* router_settings.allowed_fails: failures a minute a route may have */
#define PGW_DEFAULT_COOLDOWN_TIME 5.0    /* router_settings.cooldown_time: seconds a route then rests */
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

/* A spending limit (gateway.budget, gateway.budgets, a key's budget): 0 = none. In USD, or in Poe points with `points`. */
typedef struct st_pgw_budget_t {
    double daily;   /* per UTC day */
    double monthly; /* per UTC calendar month */
    int in_points;  /* the figures are points (converted with gateway.points_per_usd), not USD */
} pgw_budget_t;

/* One entry of gateway.budgets: a caller named by its tailnet login (or key name) and its budget. */
typedef struct st_pgw_named_budget_t {
    char *name; /* owned */
    pgw_budget_t budget;
} pgw_named_budget_t;

#define PGW_DEFAULT_POINTS_PER_USD 33333.0 /* Poe sells add-on points at 30 USD a million */
#define PGW_DEFAULT_LEDGER_RETENTION_DAYS 90
#define PGW_DEFAULT_LEDGER_MAX_BYTES ((size_t)1024 * 1024 * 1024)
#define PGW_DEFAULT_RECONCILE_INTERVAL 900.0 /* seconds between polls of Poe's usage endpoints */

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
    char api_key_fp[16];    /* pgw_key_fingerprint(api_key): names the key in the ledger, logs and metrics */
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
    long long max_input_tokens; /* model_info.max_input_tokens: the prompt that fits, for context_window_fallbacks; 0 unknown */
    unsigned line, column; /* 1-based position of the entry in the file, for messages */
} pgw_route_t;

/** One model name a request may fall back to (docs/config.md#fallbacks). */
typedef struct st_pgw_fallback_target_t {
    char *name;            /* the model name the target route is asked for, as written (owned) */
    size_t route;          /* index in conf->routes of the route serving `name` */
    unsigned line, column; /* position of the name in the file */
} pgw_fallback_target_t;

/**
 * One entry of `fallbacks` or `context_window_fallbacks` (router_settings, or LiteLLM's litellm_settings): requests for
 * `from` go, in order, to the targets when their own route fails before the first byte (or, for context-window entries,
 * when the prompt does not fit the route).
 */
typedef struct st_pgw_fallbacks_t {
    char *from;                 /* a client model name, or a route's model_name as written (wildcards included) (owned) */
    int context_window;         /* 1: an entry of context_window_fallbacks */
    pgw_fallback_target_t *to;  /* owned array, in order */
    size_t num_to;
    unsigned line, column;
} pgw_fallbacks_t;

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
    pgw_budget_t budget;        /* gateway.keys.budget */
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
    int upstream_client_curl;      /* gateway.upstream_client: curl: https:// upstreams through libcurl too (default builtin) */
    char *redis_host;      /* gateway.redis: redis://host:port/db, NULL = no shared state, one process alone (owned) */
    unsigned redis_port;   /* default 6379 */
    unsigned redis_db;     /* default 0 */
    double redis_timeout;  /* gateway.redis_timeout: seconds a decision waits for Redis before it is made locally; 0.25 */
    int redis_fail_closed; /* gateway.redis_failure: closed: without Redis, requests get 503 instead of a local share */
    /* gateway.ledger (docs/ledger.md) */
    int ledger_enabled;              /* default 1 */
    char *ledger_path;               /* NULL = <state_dir>/ledger.sqlite (owned) */
    unsigned ledger_retention_days;  /* default PGW_DEFAULT_LEDGER_RETENTION_DAYS */
    size_t ledger_max_bytes;         /* default PGW_DEFAULT_LEDGER_MAX_BYTES */
    double reconcile_interval;       /* seconds between polls of Poe's usage endpoints (the first one interval after start); 0 = none */
    double points_per_usd;           /* gateway.points_per_usd, default PGW_DEFAULT_POINTS_PER_USD */
    pgw_budget_t team_budget;        /* gateway.budget: every upstream (Poe) key's own */
    pgw_named_budget_t *budgets;     /* gateway.budgets (owned array) */
    size_t num_budgets;
    pgw_key_t *keys;       /* gateway.keys, in file order (owned array) */
    size_t num_keys;
    pgw_fallbacks_t *fallbacks; /* router_settings / litellm_settings fallbacks and context_window_fallbacks (owned array) */
    size_t num_fallbacks;
    int allowed_fails;          /* router_settings.allowed_fails, default PGW_DEFAULT_ALLOWED_FAILS */
    double cooldown_time;       /* router_settings.cooldown_time in seconds (0: never), default PGW_DEFAULT_COOLDOWN_TIME */
    /* environment variables referenced with os.environ/NAME that are not set, each named once (owned) */
    char **missing_env;
    unsigned *missing_env_uses; /* for each, what refers to it: PGW_ENV_USE_* bits (owned) */
    size_t num_missing_env;
    /* unknown keys in the gateway's own sections, each "file:line:column: section: unknown key 'k'[; did you mean
     * 'x'?]": a start warns and ignores them, --check-config refuses them (owned) */
    char **unknown_keys;
    size_t num_unknown_keys;
} pgw_config_t;

/**
 * Loads and validates the file at `path` into `conf` (which the function zero-initialises first).
 * Environment variables are read at load time. Unknown LiteLLM sections and keys produce one warning each through
 * pgw_log_warn and are otherwise ignored. Returns 0 on success. On error returns -1 with `conf` already disposed and
 * `err` holding one line "file:line:column: what is wrong" (without a trailing newline).
 */
int pgw_config_load(pgw_config_t *conf, const char *path, char *err, size_t errsz);

/** What refers to an os.environ/ variable (pgw_config_t.missing_env_uses). */
enum {
    PGW_ENV_USE_ROUTE = 1,  /* a route's api_key, api_base or extra_headers */
    PGW_ENV_USE_KEY = 2,    /* a gateway.keys entry's key */
    PGW_ENV_USE_MASTER = 4, /* general_settings.master_key */
};

/**
 * Logs one warning for each variable in conf->missing_env, saying what it disables (routes answer 503, a key entry is
 * refused, no master key from it).
 */
void pgw_config_warn_missing_env(const pgw_config_t *conf);

/**
 * Logs one warning for each variable in conf->missing_env, saying that the routes that need it answer 503; except the
 * master key's own variable when no route uses it, since the master key step (src/config/masterkey.c) then either
 * generates a key and says where it keeps it, or refuses to start.
 */
void pgw_config_warn_missing_env(const pgw_config_t *conf);

/**
 * Writes `key`'s fingerprint into `out`: the first 12 hex digits of its SHA-256 and a NUL ("-" for NULL). It names an
 * upstream key where the key itself must not appear (the ledger, /metrics, logs).
 */
void pgw_key_fingerprint(const char *key, char out[16]);

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

/**
 * Reads the file of the last pgw_dotenv_load again (SIGHUP), without changing the environment: pgw_dotenv_getenv answers
 * from it from then on. Returns 0 (also when no file was loaded, or it is gone: its variables are then unset), or -1
 * with `err` set for a malformed or unreadable file, the values read before staying. Main thread only (with
 * pgw_config_load, which reads what it answers).
 */
int pgw_dotenv_reload(char *err, size_t errsz);

/**
 * The value of variable `name` for the configuration (os.environ/NAME, LITELLM_MASTER_KEY): the process's environment
 * wins, except for the variables the env file set at start-up, which follow the file as last read; a variable in
 * neither comes from the file as last read. NULL when unset. The pointer is valid until the next pgw_dotenv_load or
 * pgw_dotenv_reload.
 */
const char *pgw_dotenv_getenv(const char *name);

#endif
