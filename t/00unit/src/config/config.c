/* poe-gateway: MIT licence. Unit tests for the configuration loader (src/config/config.c and its section files): loading and messages. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../../../../src/config/config.c"
#include "config/route_match.h"
#include <openssl/sha.h>
#include "config/extra_body.h"
#include "../../test.h"

static char conf_path[64];
static char conf_err[1024];

/* Loads `yaml` through a temporary file named in conf_path. */
static int load_yaml(pgw_config_t *conf, const char *yaml)
{
    make_temp_file(conf_path, sizeof(conf_path), yaml);
    int ret = pgw_config_load(conf, conf_path, conf_err, sizeof(conf_err));
    unlink(conf_path);
    return ret;
}

/*
 * Loads `yaml`, expecting an error. Returns the message without the "<temporary path>:" prefix ("line:column: what"),
 * the whole message when the prefix is not the file's path, or "(loaded)" when the load succeeded.
 */
static const char *load_error(const char *yaml)
{
    pgw_config_t conf;
    size_t plen;

    if (load_yaml(&conf, yaml) == 0) {
        pgw_config_dispose(&conf);
        return "(loaded)";
    }
    plen = strlen(conf_path);
    if (strncmp(conf_err, conf_path, plen) != 0 || conf_err[plen] != ':')
        return conf_err;
    return conf_err + plen + 1;
}

/* Loads `yaml` with warnings captured into `log`. */
static int load_yaml_logged(pgw_config_t *conf, const char *yaml, char *log, size_t logsz)
{
    stderr_capture_begin();
    int ret = load_yaml(conf, yaml);
    stderr_capture_end(log, logsz);
    return ret;
}

/* conf->routes[i], or an empty route when the load produced fewer, so that a failed load fails tests, not the binary */
static const pgw_route_t *route_at(const pgw_config_t *conf, size_t i)
{
    static const pgw_route_t none;
    return i < conf->num_routes ? conf->routes + i : &none;
}

static size_t count_substr(const char *haystack, const char *needle)
{
    size_t n = 0;
    for (const char *p = haystack; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        ++n;
    return n;
}

static void clear_env(void)
{
    unsetenv("POE_API_KEY");
    unsetenv("LITELLM_MASTER_KEY");
    unsetenv("PGW_TEST_BASE");
    unsetenv("PGW_TEST_HEADER");
}

static void test_seed_file(void)
{
    pgw_config_t conf;
    char err[512] = "";

    clear_env();
    setenv("POE_API_KEY", "poe-test-key-0123456789", 1);
    setenv("LITELLM_MASTER_KEY", "sk-master-0123456789", 1);
    is_int(pgw_config_load(&conf, "t/assets/litellm-config.yaml", err, sizeof(err)), 0);
    is_str(err, "");
    is_str(conf.path, "t/assets/litellm-config.yaml");
    is_int(conf.num_routes, 1);
    if (conf.num_routes != 1)
        return; /* the rest would only crash */
    const pgw_route_t *route = conf.routes;
    is_str(route->model_name, "claude-sonnet-4-5-20250929");
    ok(!route->is_wildcard);
    ok(route->kind == PGW_ROUTE_OPENAI);
    is_str(route->upstream_model, "Claude-Sonnet-4.5");
    is_str(route->api_base, "https://api.poe.com/v1");
    is_str(route->api_key, "poe-test-key-0123456789");
    is_str(route->api_key_env, "POE_API_KEY");
    is_int(route->line, 2);
    is_int(route->column, 5);
    is_int(route->rpm, 0);
    ok(route->timeout == PGW_DEFAULT_TIMEOUT);
    ok(route->stream_timeout == PGW_DEFAULT_STREAM_TIMEOUT);
    is_int(route->max_retries, PGW_DEFAULT_MAX_RETRIES);
    is_int(route->ssl_verify, 1);
    is_int(route->num_extra_headers, 0);
    is_str(conf.master_key, "sk-master-0123456789");
    is_str(conf.master_key_env, "LITELLM_MASTER_KEY");
    is_str(conf.host, "127.0.0.1");
    is_int(conf.port, 4000);
    is_int(conf.num_missing_env, 0);
    pgw_config_dispose(&conf);

    /* unset variables: values NULL, each name recorded once, in file order */
    clear_env();
    is_int(pgw_config_load(&conf, "t/assets/litellm-config.yaml", err, sizeof(err)), 0);
    if (conf.num_routes != 1)
        return;
    ok(route_at(&conf, 0)->api_key == NULL);
    is_str(route_at(&conf, 0)->api_key_env, "POE_API_KEY");
    ok(conf.master_key == NULL);
    is_str(conf.master_key_env, "LITELLM_MASTER_KEY");
    is_int(conf.num_missing_env, 2);
    if (conf.num_missing_env == 2) {
        is_str(conf.missing_env[0], "POE_API_KEY");
        is_str(conf.missing_env[1], "LITELLM_MASTER_KEY");
    }
    pgw_config_dispose(&conf);

    /* set but empty counts as missing */
    setenv("POE_API_KEY", "", 1);
    is_int(pgw_config_load(&conf, "t/assets/litellm-config.yaml", err, sizeof(err)), 0);
    if (conf.num_routes != 1)
        return;
    ok(route_at(&conf, 0)->api_key == NULL);
    is_int(conf.num_missing_env, 2);
    pgw_config_dispose(&conf);
    clear_env();
}

static void test_shipped_config(void)
{
    pgw_config_t conf;
    char err[512] = "", log[4096], buf[128];
    const pgw_route_t *route;

    clear_env();
    setenv("POE_API_KEY", "poe-test-key-0123456789", 1);
    setenv("LITELLM_MASTER_KEY", "sk-master-0123456789", 1);
    stderr_capture_begin();
    int ret = pgw_config_load(&conf, PGW_DEFAULT_CONFIG_PATH ".template", err, sizeof(err)); /* what conf/gateway.yaml starts as */
    stderr_capture_end(log, sizeof(log));
    is_int(ret, 0);
    is_str(err, "");
    is_str(log, ""); /* the shipped file warns about nothing */
    is_int(conf.num_missing_env, 0);
    is_str(conf.host, "127.0.0.1");
    is_int(conf.port, 4000);
    is_str(conf.master_key, "sk-master-0123456789");

    static const char *const claude_ids[] = {"claude-opus-4-8", "claude-sonnet-4-6", "claude-haiku-4-5-20251001", "claude-haiku-4-5"};
    for (size_t i = 0; i != sizeof(claude_ids) / sizeof(claude_ids[0]); ++i) {
        route = pgw_config_find_route(&conf, claude_ids[i], strlen(claude_ids[i]));
        ok(route != NULL && !route->is_wildcard && strcmp(route->model_name, claude_ids[i]) == 0);
        ok(route != NULL && route->kind == PGW_ROUTE_ANTHROPIC);
        is_str(route != NULL ? route->api_base : NULL, "https://api.poe.com");
        is_str(route != NULL ? route->api_key : NULL, "poe-test-key-0123456789");
    }

    /* an unknown Claude id passes through unchanged */
    route = pgw_config_find_route(&conf, "claude-opus-5-5", 15);
    is_str(route != NULL ? route->model_name : NULL, "claude-*");
    ok(route != NULL && route->kind == PGW_ROUTE_ANTHROPIC);
    is_int(route != NULL ? pgw_route_upstream_model(route, "claude-opus-5-5", 15, buf, sizeof(buf)) : -2, 15);
    is_str(buf, "claude-opus-5-5");

    route = pgw_config_find_route(&conf, "gpt-5", 5);
    ok(route != NULL && route->kind == PGW_ROUTE_OPENAI);
    is_str(route != NULL ? route->upstream_model : NULL, "GPT-5");
    is_str(route != NULL ? route->api_base : NULL, "https://api.poe.com/v1");
    route = pgw_config_find_route(&conf, "gemini-2.5-pro", 14);
    is_str(route != NULL ? route->upstream_model : NULL, "Gemini-2.5-Pro");
    ok(pgw_config_find_route(&conf, "llama-3", 7) == NULL);
    pgw_config_dispose(&conf);
    clear_env();
}

static void test_defaults(void)
{
    pgw_config_t conf;
    char log[2048];

    clear_env();
    is_int(load_yaml_logged(&conf, "model_list: []\n", log, sizeof(log)), 0);
    ok(strstr(log, "model_list is empty") != NULL);
    is_int(conf.num_routes, 0);
    is_str(conf.host, PGW_DEFAULT_HOST);
    is_int(conf.port, PGW_DEFAULT_PORT);
    is_int(conf.threads, 0);
    ok(conf.log_level == NULL);
    ok(conf.state_dir == NULL);
    ok(conf.public_url == NULL);
    ok(conf.tls_cert_file == NULL && conf.tls_key_file == NULL);
    ok(conf.ssl_ca_file == NULL);
    is_int(conf.max_body_bytes, PGW_DEFAULT_MAX_BODY_BYTES);
    is_int(conf.max_body_bytes_per_connection, 2 * PGW_DEFAULT_MAX_BODY_BYTES);
    is_int(conf.max_body_bytes_in_flight, 8 * PGW_DEFAULT_MAX_BODY_BYTES);
    ok(conf.idle_timeout == PGW_DEFAULT_IDLE_TIMEOUT);
    ok(conf.graceful_timeout == PGW_DEFAULT_GRACEFUL_TIMEOUT);
    is_int(conf.max_connections, 0); /* derived from the descriptor limit at start */
    ok(conf.metrics_auth == PGW_METRICS_AUTH_MASTER);
    ok(conf.master_key == NULL);
    ok(conf.master_key_env == NULL); /* no master key anywhere is not a missing variable */
    is_int(conf.num_missing_env, 0);
    pgw_config_dispose(&conf);
    pgw_config_dispose(&conf); /* twice is harmless */
    ok(conf.host == NULL);

    /* no general_settings.master_key: LITELLM_MASTER_KEY */
    setenv("LITELLM_MASTER_KEY", "sk-from-env-0123456789", 1);
    is_int(load_yaml(&conf, "# only a comment\n"), 0);
    is_str(conf.master_key, "sk-from-env-0123456789");
    is_str(conf.master_key_env, "LITELLM_MASTER_KEY");
    pgw_config_dispose(&conf);

    /* a literal master key wins over the variable */
    is_int(load_yaml(&conf, "general_settings:\n  master_key: sk-literal-0123456789\n"), 0);
    is_str(conf.master_key, "sk-literal-0123456789");
    ok(conf.master_key_env == NULL);
    pgw_config_dispose(&conf);
    clear_env();

    /* a literal beginning with os.environ/ names an unset variable */
    is_int(load_yaml(&conf, "general_settings:\n  master_key: os.environ/PGW_TEST_MASTER\n"), 0);
    ok(conf.master_key == NULL);
    is_str(conf.master_key_env, "PGW_TEST_MASTER");
    is_int(conf.num_missing_env, 1);
    is_str(conf.num_missing_env == 1 ? conf.missing_env[0] : NULL, "PGW_TEST_MASTER");
    pgw_config_dispose(&conf);

    /* every gateway key */
    is_int(load_yaml(&conf, "gateway:\n"
                            "  host: 0.0.0.0\n"
                            "  port: 0\n"
                            "  threads: 4\n"
                            "  log_level: debug\n"
                            "  state_dir: /var/lib/pgw\n"
                            "  public_url: https://gw.example.ts.net/\n"
                            "  tls:\n"
                            "    cert_file: /c.pem\n"
                            "    key_file: /k.pem\n"
                            "  ssl_ca_file: /ca.pem\n"
                            "  max_body_bytes: 64K\n"
                            "  idle_timeout: 1.5\n"
                            "  max_connections: 500\n"
                            "  graceful_timeout: 0\n"),
           0);
    is_str(conf.host, "0.0.0.0");
    is_int(conf.port, 0);
    is_int(conf.threads, 4);
    is_str(conf.log_level, "debug");
    is_str(conf.state_dir, "/var/lib/pgw");
    is_str(conf.public_url, "https://gw.example.ts.net");
    is_str(conf.tls_cert_file, "/c.pem");
    is_str(conf.tls_key_file, "/k.pem");
    is_str(conf.ssl_ca_file, "/ca.pem");
    is_int(conf.max_body_bytes, 64 * 1024);
    ok(conf.idle_timeout == 1.5);
    is_int(conf.max_connections, 500);
    ok(conf.graceful_timeout == 0);
    pgw_config_dispose(&conf);

    is_int(load_yaml(&conf, "gateway:\n  max_body_bytes: 32M\n  port: \"8080\"\n  host:\n"), 0);
    is_int(conf.max_body_bytes, 32 * 1024 * 1024);
    is_int(conf.port, 8080);
    is_str(conf.host, PGW_DEFAULT_HOST); /* null is the same as absent */
    pgw_config_dispose(&conf);
    is_int(load_yaml(&conf, "gateway:\n  max_body_bytes: 1g\n"), 0);
    is_int(conf.max_body_bytes, 1024 * 1024 * 1024);
    pgw_config_dispose(&conf);
    is_int(load_yaml(&conf, "gateway:\n  max_body_bytes: 1000\n"), 0);
    is_int(conf.max_body_bytes, 1000);
    is_int(conf.max_body_bytes_per_connection, 2000); /* the limits on bodies in flight follow max_body_bytes */
    is_int(conf.max_body_bytes_in_flight, 8000);
    pgw_config_dispose(&conf);
    is_int(load_yaml(&conf, "gateway:\n  max_body_bytes: 1M\n  max_body_bytes_per_connection: 1M\n"
                            "  max_body_bytes_in_flight: 3M\n"), 0);
    is_int(conf.max_body_bytes_per_connection, 1024 * 1024);
    is_int(conf.max_body_bytes_in_flight, 3 * 1024 * 1024);
    pgw_config_dispose(&conf);

    /* metrics_auth: each name to its mode; null is absent */
    static const struct {
        const char *yaml;
        pgw_metrics_auth_t mode;
    } metrics_auth[] = {{"gateway:\n  metrics_auth: keys\n", PGW_METRICS_AUTH_KEYS},
                        {"gateway:\n  metrics_auth: none\n", PGW_METRICS_AUTH_NONE},
                        {"gateway:\n  metrics_auth: master\n", PGW_METRICS_AUTH_MASTER},
                        {"gateway:\n  metrics_auth:\n", PGW_METRICS_AUTH_MASTER}};
    for (size_t i = 0; i != sizeof(metrics_auth) / sizeof(metrics_auth[0]); ++i) {
        is_int(load_yaml(&conf, metrics_auth[i].yaml), 0);
        is_int(conf.metrics_auth, metrics_auth[i].mode);
        pgw_config_dispose(&conf);
    }
}

static const char routes_yaml[] = "model_list:\n"
                                  "  - model_name: claude-*\n"
                                  "    litellm_params: {model: anthropic/*}\n"
                                  "  - model_name: claude-sonnet-4-5\n"
                                  "    litellm_params: {model: anthropic/claude-sonnet-4.5}\n"
                                  "  - model_name: \"*-preview\"\n"
                                  "    litellm_params: {model: openai/*-Preview}\n"
                                  "  - model_name: \"*\"\n"
                                  "    litellm_params: {model: openai/Assistant}\n"
                                  "  - model_name: gpt-*\n"
                                  "    litellm_params: {model: openai/GPT}\n";

static void test_shadowed_wildcard(void)
{
    pgw_config_t conf;
    char log[2048];

    is_int(load_yaml_logged(&conf, routes_yaml, log, sizeof(log)), 0);
    is_int(conf.num_routes, 5);
    /* the wildcard after "*" can never match, and the loader says so */
    ok(strstr(log, "model_name 'gpt-*' can never match: '*' (line 8) comes first") != NULL);
    ok(strstr(log, "*-preview' can never") == NULL);
    pgw_config_dispose(&conf);
}

static void test_router_settings(void)
{
    pgw_config_t conf;

    is_int(load_yaml(&conf, "model_list:\n"
                            "  - model_name: a\n"
                            "    litellm_params: {model: openai/A}\n"
                            "  - model_name: b\n"
                            "    litellm_params: {model: openai/B, timeout: 10, max_retries: 0, stream_timeout: 45.5}\n"
                            "router_settings:\n"
                            "  num_retries: 5\n"
                            "  timeout: 30\n"),
           0);
    is_int(conf.num_routes, 2);
    if (conf.num_routes != 2)
        return;
    ok(route_at(&conf, 0)->timeout == 30);
    is_int(route_at(&conf, 0)->max_retries, 5);
    ok(route_at(&conf, 0)->stream_timeout == PGW_DEFAULT_STREAM_TIMEOUT);
    ok(conf.routes[1].timeout == 10);
    is_int(conf.routes[1].max_retries, 0); /* 0 is a value, not "unset" */
    ok(conf.routes[1].stream_timeout == 45.5);
    pgw_config_dispose(&conf);

    is_int(load_yaml(&conf, "router_settings:\n  num_retries: 1\n"
                            "model_list:\n  - model_name: a\n    litellm_params: {model: openai/A, rpm: 60, ssl_verify: false}\n"),
           0);
    ok(route_at(&conf, 0)->timeout == PGW_DEFAULT_TIMEOUT);
    is_int(route_at(&conf, 0)->max_retries, 1);
    is_int(route_at(&conf, 0)->rpm, 60);
    is_int(route_at(&conf, 0)->ssl_verify, 0);
    pgw_config_dispose(&conf);
}

static void test_fallbacks(void)
{
    pgw_config_t conf;
    static const char routes[] = "model_list:\n"
                                 "  - model_name: claude-sonnet-4-5\n"
                                 "    litellm_params: {model: anthropic/claude-sonnet-4.5}\n"
                                 "    model_info: {max_input_tokens: 200000}\n"
                                 "  - model_name: gpt-5\n"
                                 "    litellm_params: {model: openai/GPT-5}\n"
                                 "  - model_name: claude-*\n"
                                 "    litellm_params: {model: anthropic/*}\n";
    char yaml[2048];

    /* LiteLLM's shape, in router_settings and litellm_settings; names resolved to routes, wildcards included */
    snprintf(yaml, sizeof(yaml),
             "router_settings:\n"
             "  fallbacks: [{\"claude-sonnet-4-5\": [\"gpt-5\", \"claude-opus-4-1\"]}]\n"
             "  allowed_fails: 1\n"
             "  cooldown_time: 30\n"
             "litellm_settings:\n"
             "  context_window_fallbacks:\n"
             "    - claude-sonnet-4-5: [claude-sonnet-4-5-1m]\n"
             "%s",
             routes);
    is_int(load_yaml(&conf, yaml), 0);
    is_int(conf.num_fallbacks, 2);
    is_int(conf.allowed_fails, 1);
    ok(conf.cooldown_time == 30);
    is_int(route_at(&conf, 0)->max_input_tokens, 200000);
    if (conf.num_fallbacks == 2) {
        const pgw_fallbacks_t *fb = pgw_config_find_fallbacks(&conf, 0, "claude-sonnet-4-5", sizeof("claude-sonnet-4-5") - 1, conf.routes);
        ok(fb == conf.fallbacks);
        is_int(fb->num_to, 2);
        is_str(fb->to[0].name, "gpt-5");
        is_int(fb->to[0].route, 1);
        is_str(fb->to[1].name, "claude-opus-4-1");
        is_int(fb->to[1].route, 2); /* the wildcard route serves it */
        is_int(fb->to[1].line, 2);
        is_int(fb->to[1].column, 47);
        fb = pgw_config_find_fallbacks(&conf, 1, "claude-sonnet-4-5", sizeof("claude-sonnet-4-5") - 1, conf.routes);
        ok(fb == conf.fallbacks + 1);
        is_int(fb->context_window, 1);
        is_int(fb->to[0].route, 2);
        ok(pgw_config_find_fallbacks(&conf, 0, "gpt-5", sizeof("gpt-5") - 1, conf.routes + 1) == NULL);
    }
    pgw_config_dispose(&conf);

    /* defaults; a list keyed by a wildcard route's model_name covers every name that route serves */
    snprintf(yaml, sizeof(yaml), "router_settings:\n  fallbacks:\n    - \"claude-*\": [gpt-5]\n%s", routes);
    is_int(load_yaml(&conf, yaml), 0);
    is_int(conf.allowed_fails, PGW_DEFAULT_ALLOWED_FAILS);
    ok(conf.cooldown_time == PGW_DEFAULT_COOLDOWN_TIME);
    ok(pgw_config_find_fallbacks(&conf, 0, "claude-opus-4-1", sizeof("claude-opus-4-1") - 1, conf.routes + 2) == conf.fallbacks);
    ok(pgw_config_find_fallbacks(&conf, 0, "claude-sonnet-4-5", sizeof("claude-sonnet-4-5") - 1, conf.routes) == NULL);
    pgw_config_dispose(&conf);

    /* errors name the file, line and column of the offending name or value */
    snprintf(yaml, sizeof(yaml), "router_settings:\n  fallbacks: [{claude-sonnet-4-5: [gpt-6]}]\n%s", routes);
    is_str(load_error(yaml), "2:36: fallbacks: target 'gpt-6' is not served by any model_list entry (fallbacks name model_name "
                             "values)");
    snprintf(yaml, sizeof(yaml), "%slitellm_settings:\n  fallbacks:\n    - gpt-4o: [gpt-5]\n", routes);
    is_str(load_error(yaml), "11:7: fallbacks: model 'gpt-4o' is not served by any model_list entry (fallbacks name model_name "
                             "values)");
    snprintf(yaml, sizeof(yaml), "router_settings:\n  fallbacks: [{gpt-5: [gpt-5]}]\n%s", routes);
    is_str(load_error(yaml), "2:24: fallbacks: model 'gpt-5' falls back to itself");
    snprintf(yaml, sizeof(yaml), "router_settings:\n  fallbacks: [{gpt-5: [claude-x]}, {gpt-5: [claude-y]}]\n%s", routes);
    is_str(load_error(yaml), "2:37: fallbacks: model 'gpt-5' already has a list (merge the two)");
    is_str(load_error("router_settings:\n  fallbacks: {a: [b]}\n"),
           "2:14: router_settings.fallbacks must be a list of {model: [fallback, ...]} entries");
    is_str(load_error("router_settings:\n  fallbacks: [{a: [b], c: [d]}]\n"),
           "2:15: router_settings.fallbacks: each entry must map exactly one model name (write one entry per model)");
    is_str(load_error("router_settings:\n  fallbacks: [{a: b}]\n"),
           "2:19: router_settings.fallbacks: the fallbacks of a model are a list of model names, e.g. [\"gpt-5\"]");
    is_str(load_error("router_settings:\n  context_window_fallbacks: [{a: []}]\n"),
           "2:34: router_settings.context_window_fallbacks: the fallbacks of a model must be a non-empty list of model names");
    is_str(load_error("router_settings:\n  fallbacks: [a]\n"),
           "2:15: router_settings.fallbacks: each entry must be a mapping of one model name to a list of model names, e.g. "
           "{\"claude-sonnet-4-5\": [\"gpt-5\"]}");
    is_str(load_error("router_settings:\n  allowed_fails: -1\n"), "2:18: router_settings.allowed_fails must be an integer between 0 and 1000000");
    is_str(load_error("router_settings:\n  cooldown_time: soon\n"), "2:18: router_settings.cooldown_time must be a non-negative number of seconds");
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params: {model: openai/A}\n    model_info: {max_input_tokens: 0}\n"),
           "4:36: model_info.max_input_tokens must be an integer between 1 and 1000000000000");
}

static void test_litellm_params(void)
{
    pgw_config_t conf;

    clear_env();
    setenv("PGW_TEST_BASE", "http://127.0.0.1:9999/v1/", 1);
    setenv("PGW_TEST_HEADER", "from-env", 1);
    is_int(load_yaml(&conf, "model_list:\n"
                            "  - model_name: a\n"
                            "    litellm_params:\n"
                            "      model: anthropic/claude-opus-4.5\n"
                            "      api_base: os.environ/PGW_TEST_BASE\n"
                            "      api_key: literal-key-0123456789\n"
                            "      extra_headers:\n"
                            "        X-Literal: one\n"
                            "        X-Env: os.environ/PGW_TEST_HEADER\n"
                            "        X-Missing: os.environ/PGW_TEST_UNSET\n"
                            "        X-Number: 42\n"
                            "        X-Empty:\n"
                            "  - model_name: b\n"
                            "    litellm_params: {model: anthropic/b, api_base: 'https://example.com//'}\n"
                            "  - model_name: c\n"
                            "    litellm_params: {model: openai/c, api_key: os.environ/PGW_TEST_UNSET}\n"),
           0);
    is_int(conf.num_routes, 3);
    if (conf.num_routes != 3)
        return;
    const pgw_route_t *a = conf.routes, *b = conf.routes + 1, *c = conf.routes + 2;
    is_str(a->api_base, "http://127.0.0.1:9999/v1");
    is_str(a->api_key, "literal-key-0123456789");
    ok(a->api_key_env == NULL);
    is_int(a->num_extra_headers, 5);
    if (a->num_extra_headers == 5) {
        is_str(a->extra_headers[0].name, "X-Literal");
        is_str(a->extra_headers[0].value, "one");
        is_str(a->extra_headers[1].name, "X-Env");
        is_str(a->extra_headers[1].value, "from-env");
        is_str(a->extra_headers[2].name, "X-Missing");
        ok(a->extra_headers[2].value == NULL);
        is_str(a->extra_headers[3].value, "42");
        is_str(a->extra_headers[4].value, "");
    }
    is_str(b->api_base, "https://example.com");
    ok(b->kind == PGW_ROUTE_ANTHROPIC);
    is_str(c->api_base, PGW_DEFAULT_OPENAI_API_BASE); /* the kind's default */
    ok(c->api_key == NULL);
    is_str(c->api_key_env, "PGW_TEST_UNSET");
    is_int(conf.num_missing_env, 1); /* named twice, recorded once */
    is_str(conf.num_missing_env == 1 ? conf.missing_env[0] : NULL, "PGW_TEST_UNSET");
    pgw_config_dispose(&conf);

    /* api_base from an unset variable: NULL, and recorded */
    is_int(load_yaml(
               &conf,
               "model_list:\n  - model_name: a\n    litellm_params: {model: anthropic/a, api_base: os.environ/PGW_TEST_NOBASE}\n"),
           0);
    ok(route_at(&conf, 0)->api_base == NULL);
    is_str(conf.num_missing_env == 1 ? conf.missing_env[0] : NULL, "PGW_TEST_NOBASE");
    pgw_config_dispose(&conf);

    /* the anthropic default base, and merge keys sharing settings */
    is_int(load_yaml(&conf, "poe: &poe\n"
                            "  api_key: shared-key-0123456789\n"
                            "  rpm: 7\n"
                            "model_list:\n"
                            "  - model_name: a\n"
                            "    litellm_params:\n"
                            "      <<: *poe\n"
                            "      model: anthropic/a\n"
                            "      rpm: 9\n"),
           0);
    is_str(route_at(&conf, 0)->api_base, PGW_DEFAULT_ANTHROPIC_API_BASE);
    is_str(route_at(&conf, 0)->api_key, "shared-key-0123456789");
    is_int(route_at(&conf, 0)->rpm, 9); /* the mapping's own key wins over the merged one */
    pgw_config_dispose(&conf);
    clear_env();
}

/* every litellm_params key reaches its own field, and a null value is the same as an absent key */
static void test_params_table(void)
{
    pgw_config_t conf;
    char log[2048];

    clear_env();
    setenv("PGW_TEST_HEADER", "from-env", 1);
    is_int(load_yaml_logged(&conf,
                            "model_list:\n"
                            "  - model_name: a\n"
                            "    litellm_params:\n"
                            "      model: openai/A\n"
                            "      api_base: http://127.0.0.1:1/v1\n"
                            "      api_key: os.environ/PGW_TEST_HEADER\n"
                            "      rpm: 11\n"
                            "      timeout: 12.5\n"
                            "      stream_timeout: 13\n"
                            "      max_retries: 4\n"
                            "      extra_headers: {X-A: b}\n"
                            "      ssl_verify: off\n"
                            "      http2_prior_knowledge: true\n"
                            "      extra_body: {k: 1}\n"
                            "      echo_reasoning: true\n"
                            "      minimal_schema: true\n"
                            "      buffer_tools: true\n"
                            "  - model_name: b\n"
                            "    litellm_params:\n"
                            "      model: anthropic/B\n"
                            "      api_base:\n"
                            "      api_key: ~\n"
                            "      rpm: null\n"
                            "      timeout:\n"
                            "      stream_timeout:\n"
                            "      max_retries:\n"
                            "      extra_headers:\n"
                            "      ssl_verify:\n"
                            "      http2_prior_knowledge:\n"
                            "      extra_body:\n"
                            "      echo_reasoning:\n"
                            "      minimal_schema:\n"
                            "      buffer_tools:\n",
                            log, sizeof(log)),
           0);
    is_int(conf.num_routes, 2);
    if (conf.num_routes == 2) {
        const pgw_route_t *a = conf.routes, *b = conf.routes + 1;
        ok(a->kind == PGW_ROUTE_OPENAI);
        is_str(a->upstream_model, "A");
        is_str(a->api_base, "http://127.0.0.1:1/v1");
        is_str(a->api_key, "from-env");
        is_str(a->api_key_env, "PGW_TEST_HEADER");
        is_int(a->rpm, 11);
        ok(a->timeout == 12.5);
        ok(a->stream_timeout == 13);
        is_int(a->max_retries, 4);
        is_int(a->num_extra_headers, 1);
        is_int(a->ssl_verify, 0);
        is_int(a->h2c, 1);
        is_str(a->extra_body, "\"k\":1");
        is_int(a->echo_reasoning, 1);
        is_int(a->minimal_schema, 1);
        is_int(a->buffer_tools, 1);

        ok(b->kind == PGW_ROUTE_ANTHROPIC);
        is_str(b->api_base, PGW_DEFAULT_ANTHROPIC_API_BASE);
        ok(b->api_key == NULL && b->api_key_env == NULL);
        is_int(b->rpm, 0);
        ok(b->timeout == PGW_DEFAULT_TIMEOUT);
        ok(b->stream_timeout == PGW_DEFAULT_STREAM_TIMEOUT);
        is_int(b->max_retries, PGW_DEFAULT_MAX_RETRIES);
        is_int(b->num_extra_headers, 0);
        is_int(b->ssl_verify, 1);
        is_int(b->h2c, 0);
        ok(b->extra_body == NULL);
        ok(!b->echo_reasoning && !b->minimal_schema && !b->buffer_tools);
    }
    /* the one warning: a route that does not verify TLS, at the key's position; no key is unknown */
    ok(strstr(log, ":12:7: route 'a' does not verify the upstream's TLS certificate") != NULL);
    is_int(count_substr(log, "\n"), 1);
    pgw_config_dispose(&conf);
    clear_env();
}

static void test_unknown_keys(void)
{
    pgw_config_t conf;
    char log[8192];

    is_int(load_yaml_logged(&conf,
                            "model_list:\n"
                            "  - model_name: a\n"
                            "    litellm_params:\n"
                            "      model: openai/A\n"
                            "      tpm: 1000\n"
                            "      drop_params: true\n"
                            "      extra_body: {web_search: true}\n"
                            "    model_info: {id: 1}\n"
                            "  - model_name: b\n"
                            "    litellm_params: {model: openai/B, tpm: 5}\n"
                            "    model_info: {id: 2}\n"
                            "litellm_settings:\n"
                            "  drop_params: true\n"
                            "  callbacks: [langfuse]\n"
                            "environment_variables: {X: y}\n"
                            "general_settings: {master_key: sk-xx, database_url: postgres://x}\n"
                            "router_settings: {routing_strategy: simple-shuffle}\n"
                            "gateway:\n"
                            "  colour: blue\n"
                            "  tls: {cert_file: /c, key_file: /k, ciphers: x}\n",
                            log, sizeof(log)),
           0);
    is_int(conf.num_routes, 2);
    is_int(count_substr(log, "litellm_params: ignoring unknown key 'tpm'"), 1); /* twice in the file, one warning */
    ok(strstr(log, ":5:7: litellm_params: ignoring unknown key 'tpm'") != NULL);
    is_int(count_substr(log, "'drop_params'"), 2); /* one per section */
    ok(strstr(log, ":13:3: litellm_settings: ignoring unknown key 'drop_params'") != NULL); /* fallbacks are read there */
    ok(strstr(log, ":14:3: litellm_settings: ignoring unknown key 'callbacks'") != NULL);
    is_int(count_substr(log, "model_info: ignoring unknown key 'id'"), 1); /* max_input_tokens is read there */
    ok(strstr(log, "top level: ignoring unsupported section 'environment_variables'") != NULL);
    ok(strstr(log, "general_settings: ignoring unknown key 'database_url'") != NULL);
    ok(strstr(log, "router_settings: ignoring unknown key 'routing_strategy'") != NULL);
    /* the gateway's own sections: a typo, kept for --check-config, with the nearest known key when one is close */
    ok(strstr(log, ":19:3: gateway: unknown key 'colour' (ignored)") != NULL);
    ok(strstr(log, "gateway.tls: unknown key 'ciphers' (ignored)") != NULL);
    is_int(conf.num_unknown_keys, 2);
    if (conf.num_unknown_keys == 2) {
        ok(strstr(conf.unknown_keys[0], ":19:3: gateway: unknown key 'colour'") != NULL);
        ok(strstr(conf.unknown_keys[1], "gateway.tls: unknown key 'ciphers'") != NULL);
    }
    ok(strstr(log, "extra_body") == NULL);
    ok(strstr(log, "sk-xx") == NULL);    /* never a key value */
    is_int(count_substr(log, "\n"), 10); /* tpm, drop_params, id, drop_params, callbacks, a section, 4 keys */
    pgw_config_dispose(&conf);

    is_int(load_yaml_logged(&conf,
                            "model_list: [{model_name: a, litellm_params: {model: openai/A}}]\n"
                            "gateway:\n"
                            "  prot: 4001\n"
                            "  max_body_byte: 5\n"
                            "  keys: [{name: a, key: k, modles: [a]}]\n",
                            log, sizeof(log)),
           0);
    is_int(conf.num_unknown_keys, 3);
    ok(strstr(log, "gateway: unknown key 'prot'; did you mean 'port'? (ignored)") != NULL);
    ok(strstr(log, "gateway: unknown key 'max_body_byte'; did you mean 'max_body_bytes'? (ignored)") != NULL);
    ok(strstr(log, "gateway.keys entry: unknown key 'modles'; did you mean 'models'? (ignored)") != NULL);
    pgw_config_dispose(&conf);
    static const char *const known[] = {"port", "host", "threads"};
    ok(pgw_loader_nearest_name("xyzzy", known, 3) == NULL); /* nothing close: no guess */
    is_str(pgw_loader_nearest_name("THREAD", known, 3), "threads");
}

static void test_errors(void)
{
    pgw_config_t conf;

    /* bad YAML */
    is_str(load_error("model_list:\n  - model_name: a\n   bad: [\n"),
           "3:4: did not find expected '-' indicator (while parsing a block collection at line 2)");
    is_str(load_error("model_list:\n\t- model_name: a\n"),
           "2:1: found character that cannot start any token (while scanning for the next token at line 2)");
    is_str(load_error("a: *nowhere\n"), "1:4: found undefined alias");
    is_str(load_error("gateway: {port: 1}\n---\ngateway: {port: 2}\n"), "3:1: only one YAML document is allowed");
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params: {model: \"openai/\xff\"}\n"),
           "3:37: invalid leading UTF-8 octet");
    is_str(load_error("gateway: {port: 1, port: 2}\n"), "1:20: duplicate key 'port' (first at line 1)");
    is_str(load_error("gateway: &g\n  <<: *g\n"), "1:10: merge keys nested too deeply");
    is_str(load_error("gateway:\n  <<: 5\n"), "2:7: a merge key (<<) takes a mapping or a sequence of mappings");
    is_str(load_error("gateway:\n  [a]: 5\n"), "2:3: a mapping key must be a scalar");

    /* shapes */
    is_str(load_error("- a\n- b\n"), "1:1: the top level must be a mapping, not a sequence");
    is_str(load_error("model_list:\n  model_name: a\n"), "2:3: model_list must be a sequence");
    is_str(load_error("model_list: claude\n"), "1:13: model_list must be a sequence");
    is_str(load_error("model_list:\n  - claude\n"), "2:5: a model_list entry must be a mapping, not a scalar");
    is_str(load_error("model_list:\n  - litellm_params: {model: openai/A}\n"), "2:5: model_list entry has no model_name");
    is_str(load_error("model_list:\n  - model_name: ''\n    litellm_params: {model: openai/A}\n"),
           "2:17: model_name must not be empty");
    is_str(load_error("model_list:\n  - model_name: [a]\n"), "2:17: model_name must be a scalar, not a sequence");
    is_str(load_error("model_list:\n  - model_name: a\n"), "2:5: model 'a' has no litellm_params.model");
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params:\n      api_key: k\n"),
           "4:7: model 'a' has no litellm_params.model");
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params: openai/A\n"),
           "3:21: litellm_params must be a mapping, not a scalar");
    is_str(load_error("general_settings: [master_key]\n"), "1:19: general_settings must be a mapping, not a sequence");
    is_str(load_error("router_settings: 3\n"), "1:18: router_settings must be a mapping, not a scalar");
    is_str(load_error("gateway: 4000\n"), "1:10: gateway must be a mapping, not a scalar");
    is_str(load_error("gateway:\n  tls: on\n"), "2:8: gateway.tls must be a mapping, not a scalar");
    is_str(load_error("gateway:\n  host: {a: b}\n"), "2:9: gateway.host must be a scalar, not a mapping");
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params: {model: openai/A, extra_headers: [x]}\n"),
           "3:54: extra_headers must be a mapping, not a sequence");
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params: {model: openai/A, extra_body: x}\n"),
           "3:51: extra_body must be a mapping, not a scalar");

    /* providers and names */
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params:\n      model: vertex_ai/gemini-pro\n"),
           "4:14: litellm_params.model: unsupported provider 'vertex_ai/' (use openai/<bot> or anthropic/<model>)");
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params:\n      model: gpt-4o\n"),
           "4:14: litellm_params.model 'gpt-4o' has no provider prefix (use openai/<bot> or anthropic/<model>)");
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/\n"),
           "4:14: litellm_params.model: empty model name after 'openai/'");
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params:\n      model: anthropic/\n"),
           "4:14: litellm_params.model: empty model name after 'anthropic/'");
    is_str(load_error("model_list:\n"
                      "  - model_name: a\n"
                      "    litellm_params: {model: openai/A}\n"
                      "  - model_name: b\n"
                      "    litellm_params: {model: openai/B}\n"
                      "  - model_name: a\n"
                      "    litellm_params: {model: openai/C}\n"),
           "6:17: duplicate model_name 'a' (first at line 2)");
    /* the same pattern twice is only unreachable, not an error */
    is_str(load_error("model_list:\n"
                      "  - {model_name: '*', litellm_params: {model: openai/A}}\n"
                      "  - {model_name: '*', litellm_params: {model: openai/B}}\n"),
           "(loaded)");

    /* integers */
    is_str(load_error("gateway:\n  port: 80x\n"), "2:9: gateway.port must be an integer between 0 and 65535");
    is_str(load_error("gateway:\n  port: 65536\n"), "2:9: gateway.port must be an integer between 0 and 65535");
    is_str(load_error("gateway:\n  port: -1\n"), "2:9: gateway.port must be an integer between 0 and 65535");
    is_str(load_error("gateway:\n  port: 4000.0\n"), "2:9: gateway.port must be an integer between 0 and 65535");
    is_str(load_error("gateway:\n  threads: many\n"), "2:12: gateway.threads must be an integer between 0 and 1024");
    is_str(load_error("gateway:\n  max_connections: 0\n"),
           "2:20: gateway.max_connections must be an integer between 1 and 10000000");
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params: {model: openai/A, rpm: -1}\n"),
           "3:44: rpm must be an integer between 0 and 2147483647");
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params: {model: openai/A, rpm: 1.5}\n"),
           "3:44: rpm must be an integer between 0 and 2147483647");
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params: {model: openai/A, max_retries: 11}\n"),
           "3:52: max_retries must be an integer between 0 and 10");
    is_str(load_error("router_settings: {num_retries: x}\n"),
           "1:32: router_settings.num_retries must be an integer between 0 and 10");
    is_str(load_error("gateway:\n  max_body_bytes: 32X\n"),
           "2:19: gateway.max_body_bytes must be a positive number of bytes, optionally with a K, M or G suffix");
    is_str(load_error("gateway:\n  max_body_bytes_per_connection: 1M\n"),
           "2:34: gateway.max_body_bytes_per_connection must be at least max_body_bytes (33554432 bytes)");
    is_str(load_error("gateway:\n  max_body_bytes_in_flight: 64M\n  max_body_bytes: 65M\n"),
           "2:29: gateway.max_body_bytes_in_flight must be at least max_body_bytes (68157440 bytes)");
    is_str(load_error("gateway:\n  max_body_bytes_in_flight: 0\n"),
           "2:29: gateway.max_body_bytes_in_flight must be a positive number of bytes, optionally with a K, M or G suffix");
    is_str(load_error("gateway:\n  max_body_bytes: 0\n"),
           "2:19: gateway.max_body_bytes must be a positive number of bytes, optionally with a K, M or G suffix");

    /* numbers */
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params: {model: openai/A, timeout: soon}\n"),
           "3:48: timeout must be a positive number of seconds");
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params: {model: openai/A, timeout: 0}\n"),
           "3:48: timeout must be a positive number of seconds");
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params: {model: openai/A, stream_timeout: inf}\n"),
           "3:55: stream_timeout must be a positive number of seconds");
    is_str(load_error("router_settings:\n  timeout: 1e\n"), "2:12: router_settings.timeout must be a positive number of seconds");
    is_str(load_error("gateway:\n  idle_timeout: 0\n"), "2:17: gateway.idle_timeout must be a positive number of seconds");
    is_str(load_error("gateway:\n  graceful_timeout: -1\n"),
           "2:21: gateway.graceful_timeout must be a non-negative number of seconds");

    /* other values */
    is_str(load_error("gateway:\n  tls:\n    cert_file: /c.pem\n"), "3:5: gateway.tls has cert_file but no key_file");
    is_str(load_error("gateway:\n  tls: {key_file: /k.pem}\n"), "2:8: gateway.tls has key_file but no cert_file");
    is_str(load_error("gateway:\n  log_level: loud\n"), "2:14: gateway.log_level must be one of error, warn, info, debug");
    is_str(load_error("gateway:\n  public_url: gw.example\n"), "2:15: gateway.public_url must start with http:// or https://");
    is_str(load_error("gateway:\n  host: ''\n"), "2:9: gateway.host must not be empty");
    is_str(load_error("gateway:\n  metrics_auth: Master\n"), "2:17: gateway.metrics_auth must be one of master, keys, none");
    is_str(load_error("gateway:\n  metrics_auth: ''\n"), "2:17: gateway.metrics_auth must not be empty");
    is_str(load_error("gateway:\n  metrics_auth: [none]\n"), "2:17: gateway.metrics_auth must be a scalar, not a sequence");
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params: {model: openai/A, api_base: ftp://x}\n"),
           "3:49: api_base must start with http:// or https://");
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params: {model: openai/A, api_base: 'https://'}\n"),
           "3:49: api_base must start with http:// or https://");
    setenv("PGW_TEST_BASE", "api.poe.com", 1);
    is_str(
        load_error("model_list:\n  - model_name: a\n    litellm_params: {model: openai/A, api_base: os.environ/PGW_TEST_BASE}\n"),
        "3:49: api_base ($PGW_TEST_BASE) must start with http:// or https://");
    setenv("PGW_TEST_HEADER", "a\r\nInjected: yes", 1);
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/A\n"
                      "      extra_headers: {X-A: os.environ/PGW_TEST_HEADER}\n"),
           "5:28: extra_headers: $PGW_TEST_HEADER holds a line break");
    clear_env();
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/A\n"
                      "      extra_headers: {'X A': b}\n"),
           "5:23: extra_headers: 'X A' is not a valid header name");
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/A\n"
                      "      extra_headers: {X-A: b, x-a: c}\n"),
           "5:31: extra_headers: duplicate header 'x-a'");
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params: {model: openai/A, api_key: os.environ/1BAD}\n"),
           "3:48: api_key: '1BAD' is not a valid environment variable name");
    is_str(load_error("model_list:\n  - model_name: a\n    litellm_params: {model: openai/A, ssl_verify: maybe}\n"),
           "3:51: ssl_verify must be true or false");
    is_str(load_error("model_list:\n  - model_name: \"a\\0b\"\n"), "2:17: model_name contains a NUL character");

    /* the file itself */
    ok(pgw_config_load(&conf, "t/assets/does-not-exist.yaml", conf_err, sizeof(conf_err)) == -1);
    is_str(conf_err, "t/assets/does-not-exist.yaml: cannot open: No such file or directory");
    ok(conf.path == NULL && conf.host == NULL && conf.routes == NULL); /* disposed */

    /* the fixtures shipped for integration tests */
    ok(pgw_config_load(&conf, "t/assets/bad-provider.yaml", conf_err, sizeof(conf_err)) == -1);
    is_str(conf_err, "t/assets/bad-provider.yaml:5:14: litellm_params.model: unsupported provider 'vertex_ai/' "
                     "(use openai/<bot> or anthropic/<model>)");
    ok(pgw_config_load(&conf, "t/assets/bad-duplicate.yaml", conf_err, sizeof(conf_err)) == -1);
    is_str(conf_err, "t/assets/bad-duplicate.yaml:9:17: duplicate model_name 'claude-sonnet-4-5' (first at line 3)");
    ok(pgw_config_load(&conf, "t/assets/bad-syntax.yaml", conf_err, sizeof(conf_err)) == -1);
    is_str(conf_err, "t/assets/bad-syntax.yaml:6:14: mapping values are not allowed in this context");

    /* a tiny buffer truncates without overflowing */
    char small[12];
    make_temp_file(conf_path, sizeof(conf_path), "gateway: 1\n");
    ok(pgw_config_load(&conf, conf_path, small, sizeof(small)) == -1);
    is_int(strlen(small), sizeof(small) - 1);
    ok(strncmp(small, conf_path, sizeof(small) - 1) == 0);
    unlink(conf_path);
}

static void test_route_options(void)
{
    pgw_config_t conf;

    clear_env();
    is_int(load_yaml(&conf, "model_list:\n"
                            "  - model_name: a\n"
                            "    litellm_params:\n"
                            "      model: openai/gpt-5\n"
                            "      echo_reasoning: true\n"
                            "      minimal_schema: yes\n"
                            "      buffer_tools: true\n"
                            "      http2_prior_knowledge: false\n"
                            "      extra_body:\n"
                            "        thinking_budget: 4096\n"
                            "        web_search: false\n"
                            "        reasoning_effort: high\n"
                            "        quoted: \"42\"\n"
                            "        ratio: -1.5e3\n"
                            "        list: [1, two, null]\n"
                            "        nested: {a: \"x\\\"y\"}\n"
                            "  - model_name: b\n"
                            "    litellm_params: {model: openai/b, extra_body: {}}\n"),
           0);
    if (conf.num_routes == 2) {
        const pgw_route_t *a = conf.routes, *b = conf.routes + 1;
        ok(a->echo_reasoning && a->minimal_schema && a->buffer_tools && !a->h2c);
        is_str(a->extra_body, "\"thinking_budget\":4096,\"web_search\":false,\"reasoning_effort\":\"high\",\"quoted\":\"42\","
                              "\"ratio\":-1.5e3,\"list\":[1,\"two\",null],\"nested\":{\"a\":\"x\\\"y\"}");
        ok(b->extra_body == NULL);
        /* parsed once at load, for the translator */
        const pgw_extra_body_t *x = a->extra_body_members;
        ok(x != NULL && x->num_members == 7);
        if (x != NULL && x->num_members == 7) {
            is_str(x->members[0].name.base, "thinking_budget");
            is_str(x->members[0].value.base, "4096");
            is_str(x->members[6].name.base, "nested");
            is_str(x->members[6].value.base, "{\"a\":\"x\\\"y\"}");
        }
        ok(b->extra_body_members == NULL);
        ok(!b->echo_reasoning && !b->minimal_schema && !b->buffer_tools);
    }
    pgw_config_dispose(&conf);
    is_int(load_yaml(&conf, "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, extra_body: 5}\n"), -1);

    /* YAML numbers that JSON does not accept are written as strings, so the upstream body stays valid JSON */
    is_int(load_yaml(&conf, "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n"
                            "      extra_body: {a: 1., b: 01, c: -.5, d: 1.e5, e: 0x1f, f: -0.5e-3}\n"),
           0);
    if (conf.num_routes == 1)
        is_str(conf.routes[0].extra_body, "\"a\":\"1.\",\"b\":\"01\",\"c\":\"-.5\",\"d\":\"1.e5\",\"e\":\"0x1f\",\"f\":-0.5e-3");
    pgw_config_dispose(&conf);

    /* strings are escaped by src/common/json.c's writer: control characters, quotes and backslashes */
    is_int(load_yaml(&conf, "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n"
                            "      extra_body: {\"k\\ty\": \"a\\nb\\u0001\\\"\\\\\"}\n"),
           0);
    if (conf.num_routes == 1)
        is_str(conf.routes[0].extra_body, "\"k\\ty\":\"a\\nb\\u0001\\\"\\\\\"");
    pgw_config_dispose(&conf);

    /* one string past the cap is refused too, before it is written out */
    {
        static char yaml[80 * 1024];
        int n = snprintf(yaml, sizeof(yaml), "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n"
                                             "      extra_body: {k: ");
        memset(yaml + n, 'x', 70 * 1024);
        strcpy(yaml + n + 70 * 1024, "}\n");
        is_str(load_error(yaml), "5:19: extra_body is larger than 65536 bytes once written out");
    }

    /* aliases cannot multiply extra_body without bound */
    ok(strstr(load_error("model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n      extra_body:\n"
                         "        l0: &a0 [xxxxxxxx, xxxxxxxx, xxxxxxxx, xxxxxxxx, xxxxxxxx, xxxxxxxx, xxxxxxxx, xxxxxxxx]\n"
                         "        l1: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]\n"
                         "        l2: &a2 [*a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1]\n"
                         "        l3: &a3 [*a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2]\n"
                         "        l4: &a4 [*a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3]\n"
                         "        l5: [*a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4]\n"),
              "larger than") != NULL);

    /* an error message is one line, whatever the file's strings hold */
    const char *e = load_error("model_list:\n  - model_name: \"evil\\nforged\"\n    litellm_params: {}\n");
    ok(strchr(e, '\n') == NULL && strstr(e, "evil?forged") != NULL);
}

static void test_keys(void)
{
    pgw_config_t conf;
    unsigned char digest[32];

    clear_env();
    setenv("PGW_TEST_ALICE", "alice-secret-0123456789", 1);
    is_int(load_yaml(&conf, "gateway:\n"
                            "  keys:\n"
                            "    - name: alice\n"
                            "      key: os.environ/PGW_TEST_ALICE\n"
                            "      models: [\"claude-*\", gpt-5]\n"
                            "      rpm: 120\n"
                            "    - name: bob\n"
                            "      key: sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b\n"
                            "    - name: carol\n"
                            "      key: os.environ/PGW_TEST_UNSET\n"
                            "    - name: dave\n"
                            "      key: literal-dave-key\n"),
           0);
    is_int(conf.num_keys, 4);
    if (conf.num_keys == 4) {
        is_str(conf.keys[0].name, "alice");
        SHA256((const unsigned char *)"alice-secret-0123456789", 23, digest);
        ok(conf.keys[0].has_key && memcmp(conf.keys[0].sha256, digest, 32) == 0);
        is_int(conf.keys[0].num_models, 2);
        is_int(conf.keys[0].rpm, 120);
        SHA256((const unsigned char *)"secret", 6, digest);
        ok(conf.keys[1].has_key && memcmp(conf.keys[1].sha256, digest, 32) == 0);
        ok(!conf.keys[2].has_key);
        is_int(conf.num_missing_env, 1);
        SHA256((const unsigned char *)"literal-dave-key", 16, digest);
        ok(conf.keys[3].has_key && memcmp(conf.keys[3].sha256, digest, 32) == 0);
    }
    pgw_config_dispose(&conf);

    is_str(load_error("gateway:\n  keys:\n    - {name: a, key: x}\n    - {name: a, key: y}\n"),
           "4:14: duplicate key name 'a' (first at line 3)");
    ok(strstr(load_error("gateway:\n  keys:\n    - {name: master, key: x}\n"), "other than 'master'") != NULL);
    ok(strstr(load_error("gateway:\n  keys:\n    - {name: a, key: 'sha256:abc'}\n"), "64 hex digits") != NULL);
    ok(strstr(load_error("gateway:\n  keys:\n    - {name: a}\n"), "has no key") != NULL);
    ok(strstr(load_error("gateway:\n  keys: {a: b}\n"), "sequence") != NULL);
    ok(strstr(load_error("gateway:\n  keys:\n    - {name: a, key: b, models: x}\n"), "sequence") != NULL);
}

static void test_redis(void)
{
    pgw_config_t conf;

    ok(load_yaml(&conf, "gateway: {}\n") == 0);
    {
        ok(conf.redis_host == NULL); /* no Redis: one process alone */
        ok(conf.redis_timeout == 0.25);
        is_int(conf.redis_fail_closed, 0);
    }
    pgw_config_dispose(&conf);
    ok(load_yaml(&conf, "gateway: {redis: 'redis://redis.internal:6380/2', redis_timeout: 0.5, redis_failure: closed}\n") == 0);
    {
        is_str(conf.redis_host, "redis.internal");
        is_int(conf.redis_port, 6380);
        is_int(conf.redis_db, 2);
        ok(conf.redis_timeout == 0.5);
        is_int(conf.redis_fail_closed, 1);
    }
    pgw_config_dispose(&conf);
    ok(load_yaml(&conf, "gateway: {redis: 'redis://[::1]'}\n") == 0);
    {
        is_str(conf.redis_host, "::1");
        is_int(conf.redis_port, 6379);
        is_int(conf.redis_db, 0);
    }
    pgw_config_dispose(&conf);
    ok(strstr(load_error("gateway: {redis: 'rediss://r:6379'}\n"), "TLS") != NULL);
    ok(strstr(load_error("gateway: {redis: 'redis://:secret@r:6379'}\n"), "REDIS_PASSWORD") != NULL);
    ok(strstr(load_error("gateway: {redis: 'http://r'}\n"), "redis://host") != NULL);
    ok(strstr(load_error("gateway: {redis: 'redis://r:99999'}\n"), "port") != NULL);
    ok(strstr(load_error("gateway: {redis: 'redis://r/x'}\n"), "database") != NULL);
    ok(strstr(load_error("gateway: {redis_failure: maybe}\n"), "open or closed") != NULL);
}

/* gateway.upstream_client: the gateway's own HTTP/2 client unless told curl */
static void test_upstream_client(void)
{
    pgw_config_t conf;

    ok(load_yaml(&conf, "gateway: {}\n") == 0);
    is_int(conf.upstream_client_curl, 0);
    pgw_config_dispose(&conf);
    ok(load_yaml(&conf, "gateway: {upstream_client: curl}\n") == 0);
    is_int(conf.upstream_client_curl, 1);
    pgw_config_dispose(&conf);
    ok(load_yaml(&conf, "gateway: {upstream_client: builtin}\n") == 0);
    is_int(conf.upstream_client_curl, 0);
    pgw_config_dispose(&conf);
    ok(strstr(load_error("gateway: {upstream_client: nghttp2}\n"), "builtin or curl") != NULL);
}

static void test_cost_control(void)
{
    pgw_config_t conf;

    clear_env();
    is_int(load_yaml(&conf, "gateway:\n  keys: [{name: a, key: x}]\n"), 0);
    ok(conf.ledger_enabled && conf.ledger_path == NULL && conf.ledger_retention_days == 90);
    ok(conf.ledger_max_bytes == PGW_DEFAULT_LEDGER_MAX_BYTES && conf.reconcile_interval == 900);
    ok(conf.points_per_usd == PGW_DEFAULT_POINTS_PER_USD);
    ok(conf.keys[0].budget.daily == 0 && conf.keys[0].budget.monthly == 0 && conf.team_budget.daily == 0);
    pgw_config_dispose(&conf);

    is_int(load_yaml(&conf, "gateway:\n"
                            "  ledger: {enabled: false, path: /tmp/x.sqlite, retention_days: 7, max_bytes: 64M, reconcile_interval: 600}\n"
                            "  points_per_usd: 30000\n"
                            "  budget: {daily: 50, monthly: 800}\n"
                            "  budgets:\n"
                            "    alice@example.com: {daily: 5.5}\n"
                            "    bob@example.com: {monthly: 150000, unit: points}\n"
                            "  keys:\n"
                            "    - {name: a, key: x, budget: {daily: 5.00, monthly: 80.00}}\n"),
           0);
    ok(!conf.ledger_enabled);
    is_str(conf.ledger_path, "/tmp/x.sqlite");
    is_int(conf.ledger_retention_days, 7);
    is_int(conf.ledger_max_bytes, 64 * 1024 * 1024);
    ok(conf.reconcile_interval == 600 && conf.points_per_usd == 30000);
    ok(conf.team_budget.daily == 50 && conf.team_budget.monthly == 800 && !conf.team_budget.in_points);
    is_int(conf.num_budgets, 2);
    if (conf.num_budgets == 2) {
        is_str(conf.budgets[0].name, "alice@example.com");
        ok(conf.budgets[0].budget.daily == 5.5 && conf.budgets[0].budget.monthly == 0);
        ok(conf.budgets[1].budget.monthly == 150000 && conf.budgets[1].budget.in_points);
    }
    ok(conf.keys[0].budget.daily == 5 && conf.keys[0].budget.monthly == 80);
    pgw_config_dispose(&conf);

    ok(strstr(load_error("gateway:\n  budget: {daily: -1}\n"), "gateway.budget.daily must be a positive number") != NULL);
    ok(strstr(load_error("gateway:\n  budget: {daily: 1, unit: euro}\n"), "gateway.budget.unit must be usd or points") != NULL);
    ok(strstr(load_error("gateway:\n  budget: 5\n"), "gateway.budget") != NULL);
    ok(strstr(load_error("gateway:\n  points_per_usd: 0\n"), "gateway.points_per_usd must be a positive number") != NULL);
    ok(strstr(load_error("gateway:\n  ledger: {retention_days: 0}\n"), "retention_days") != NULL);
    ok(strstr(load_error("gateway:\n  ledger: {max_bytes: 1K}\n"), "at least 1M") != NULL);
    ok(strstr(load_error("gateway:\n  keys:\n    - {name: a, key: x, budget: {daily: x}}\n"), "gateway.keys.budget.daily") !=
       NULL);
}

void test_src__config_c(void)
{
    subtest("redis", test_redis);
    subtest("upstream_client", test_upstream_client);
    subtest("cost control", test_cost_control);
    subtest("keys", test_keys);
    subtest("route options", test_route_options);
    subtest("seed file", test_seed_file);
    subtest("shipped config", test_shipped_config);
    subtest("defaults", test_defaults);
    subtest("shadowed wildcard", test_shadowed_wildcard);
    subtest("router settings", test_router_settings);
    subtest("fallbacks", test_fallbacks);
    subtest("litellm_params", test_litellm_params);
    subtest("litellm_params table", test_params_table);
    subtest("unknown keys", test_unknown_keys);
    subtest("errors", test_errors);
}
