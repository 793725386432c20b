/* poe-gateway: MIT licence. `poe-gateway doctor`: checks a setup end to end and says how to fix what is wrong. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <curl/curl.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>
#include "upstream/catalog.h"
#include "cli/cmd.h"
#include "common/log.h"
#include "config/masterkey.h"
#include "config/route_match.h"

/*
 * The checks run in the order a setup is built: the file, the variables it names, the master key, the listen address,
 * then, per distinct upstream origin, reachability (GET /v1/models, which needs no key), the Poe key and its points
 * (GET /usage/current_balance, which costs nothing), and every bot the routes name against that origin's catalog. A
 * check that cannot run because an earlier one failed is left out rather than failed twice. Nothing here spends points.
 */

#define CHECK_OK "\xe2\x9c\x94"   /* U+2714 */
#define CHECK_FAIL "\xe2\x9c\x98" /* U+2718 */
#define MIN_MASTER_KEY_LEN 16

struct st_check_t {
    char *name;
    int ok;
    char *message;
    char *fix; /* NULL when ok */
};

static struct {
    int json;
    struct st_check_t *items;
    size_t num, failed;
} report;

/* An upstream origin (scheme://host:port) and what GET /v1/models said there. */
struct st_origin_t {
    char origin[512];
    int insecure; /* some route to it has ssl_verify: false */
    int reachable;
    pgw_catalog_t *catalog; /* one reference; NULL when unreachable or not a model list */
};

static char *vformat(const char *fmt, va_list args)
{
    char *s;
    if (vasprintf(&s, fmt, args) < 0)
        abort();
    return s;
}

/* Records one check and, in text mode, prints it at once so a slow network shows where it is. */
__attribute__((format(printf, 4, 5))) static void add_check(const char *name, int ok, const char *fix, const char *fmt, ...)
{
    va_list args;
    struct st_check_t *c;

    if ((report.items = realloc(report.items, (report.num + 1) * sizeof(*report.items))) == NULL)
        abort();
    c = report.items + report.num++;
    c->name = strdup(name);
    c->ok = ok;
    va_start(args, fmt);
    c->message = vformat(fmt, args);
    va_end(args);
    c->fix = ok || fix == NULL ? NULL : strdup(fix);
    if (!ok)
        ++report.failed;
    if (!report.json) {
        printf("%s %s\n", ok ? CHECK_OK : CHECK_FAIL, c->message);
        if (c->fix != NULL)
            printf("    fix: %s\n", c->fix);
        fflush(stdout);
    }
}

static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    char *s = vformat(fmt, args);
    va_end(args);
    return s;
}

static void print_json_report(void)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    const unsigned char *out;
    size_t outlen;
#define STR(s) yajl_gen_string(g, (const unsigned char *)(s), strlen(s))
    yajl_gen_config(g, yajl_gen_beautify, 1);
    yajl_gen_map_open(g);
    STR("ok");
    yajl_gen_bool(g, report.failed == 0);
    STR("checks");
    yajl_gen_array_open(g);
    for (size_t i = 0; i != report.num; ++i) {
        struct st_check_t *c = report.items + i;
        yajl_gen_map_open(g);
        STR("check");
        STR(c->name);
        STR("ok");
        yajl_gen_bool(g, c->ok);
        STR("message");
        STR(c->message);
        STR("fix");
        if (c->fix != NULL)
            STR(c->fix);
        else
            yajl_gen_null(g);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
#undef STR
    yajl_gen_get_buf(g, &out, &outlen);
    fwrite(out, 1, outlen, stdout);
    yajl_gen_free(g);
}

static void free_report(void)
{
    for (size_t i = 0; i != report.num; ++i) {
        free(report.items[i].name);
        free(report.items[i].message);
        free(report.items[i].fix);
    }
    free(report.items);
    report.items = NULL;
    report.num = report.failed = 0;
}

/* The environment variables the configuration names, each once: those that are set, then those that are not. */
static void check_environment(const pgw_config_t *conf, const char *env_file)
{
    const char *seen[256];
    size_t num_seen = 0, checked = 0;

    for (size_t i = 0; i <= conf->num_routes; ++i) {
        const char *name = i < conf->num_routes ? conf->routes[i].api_key_env : conf->master_key_env;
        int missing = 0;
        if (name == NULL)
            continue;
        for (size_t j = 0; j != conf->num_missing_env; ++j)
            if (strcmp(conf->missing_env[j], name) == 0)
                missing = 1;
        for (size_t j = 0; j != num_seen; ++j)
            if (strcmp(seen[j], name) == 0)
                missing = -1;
        if (missing != 0 || num_seen == sizeof(seen) / sizeof(seen[0]))
            continue;
        seen[num_seen++] = name;
        add_check("environment", 1, NULL, "environment variable %s is set", name);
        ++checked;
    }
    for (size_t i = 0; i != conf->num_missing_env; ++i) {
        const char *name = conf->missing_env[i];
        int is_poe_key = 0;
        for (size_t j = 0; j != conf->num_routes; ++j)
            if (conf->routes[j].api_key_env != NULL && strcmp(conf->routes[j].api_key_env, name) == 0)
                is_poe_key = 1;
        char *fix = format("add %s=... to %s (see .env.template) or export it, then restart the gateway%s", name, env_file,
                           is_poe_key ? "; Poe keys are at https://poe.com/api/keys" : "");
        add_check("environment", 0, fix, "environment variable %s is referenced by the configuration but not set", name);
        free(fix);
        ++checked;
    }
    if (checked == 0)
        add_check("environment", 1, NULL, "the configuration names no environment variables");
}

/* The values people leave in by mistake: empty, the usual examples, and the templates' own placeholders. */
static int is_placeholder(const char *key)
{
    static const char *const placeholders[] = {"changeme", "change-me", "change_me",  "sk-1234",         "sk-...", "sk-xxx",
                                               "secret",   "password",  "master-key", "your-master-key", "todo",   NULL};
    if (key[0] == '\0' || key[0] == '<' || strstr(key, "...") != NULL || strstr(key, "\xe2\x80\xa6") != NULL)
        return 1;
    for (size_t i = 0; placeholders[i] != NULL; ++i)
        if (strcasecmp(key, placeholders[i]) == 0)
            return 1;
    return 0;
}

static void check_master_key(const pgw_config_t *conf)
{
    static const char fix_generate[] = "set it to a random key, e.g. LITELLM_MASTER_KEY=sk-$(openssl rand -hex 24) in the "
                                       "env file, and give the same key to Claude Code";
    const char *from = conf->master_key_env != NULL ? conf->master_key_env : "general_settings.master_key";
    char state_dir[4096];

    if (conf->master_key != NULL) {
        if (is_placeholder(conf->master_key)) {
            add_check("master key", 0, fix_generate, "the master key (%s) is a placeholder", from);
        } else if (strlen(conf->master_key) < MIN_MASTER_KEY_LEN) {
            add_check("master key", 0, fix_generate, "the master key (%s) is shorter than %d characters", from, MIN_MASTER_KEY_LEN);
        } else {
            add_check("master key", 1, NULL, "the master key is set (%s)", from);
        }
    } else if (pgw_host_is_loopback(conf->host)) {
        if (pgw_state_dir(conf, state_dir, sizeof(state_dir)) == 0)
            add_check("master key", 1, NULL,
                      "no master key is configured; on %s the gateway uses the one it generates in %s/master_key", conf->host,
                      state_dir);
        else
            add_check("master key", 0, "set LITELLM_MASTER_KEY, or HOME or gateway.state_dir for a generated key",
                      "no master key is configured, and there is no state directory to keep a generated one in");
    } else {
        add_check("master key", 0, fix_generate,
                  "no master key is configured and gateway.host %s is not loopback: the gateway refuses to start", conf->host);
    }
}

/* Whether what listens on the port is a poe-gateway: its readiness probe names a version. */
static int gateway_answers(const pgw_config_t *conf)
{
    char url[512];
    int yes = 0;
    const char *host = pgw_host_is_loopback(conf->host) || strcmp(conf->host, "0.0.0.0") == 0 || strcmp(conf->host, "::") == 0
                           ? "127.0.0.1"
                           : conf->host;
    snprintf(url, sizeof(url), "%s://%s%s%s:%u/health/readiness", conf->tls_cert_file != NULL ? "https" : "http",
             strchr(host, ':') != NULL ? "[" : "", host, strchr(host, ':') != NULL ? "]" : "", conf->port);
    pgw_cmd_http_t res;
    pgw_cmd_http_opts_t opts = {.insecure = 1, .timeout = 3};
    if (pgw_cmd_http_get(url, &opts, &res) == 0 && strstr(res.body, "\"version\"") != NULL)
        yes = 1;
    pgw_cmd_http_dispose(&res);
    return yes;
}

static void check_listen(const pgw_config_t *conf)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
    char port[16];
    int gai, err = 0;

    if (conf->port == 0) {
        add_check("listen", 1, NULL, "port 0: the gateway picks a free port when it starts");
        return;
    }
    snprintf(port, sizeof(port), "%u", conf->port);
    if ((gai = getaddrinfo(conf->host, port, &hints, &ai)) != 0) {
        add_check("listen", 0, "set gateway.host (or --host) to an address of this machine, e.g. 127.0.0.1",
                  "gateway.host %s does not resolve: %s", conf->host, gai_strerror(gai));
        return;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0)
        err = errno;
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);

    if (err == 0) {
        add_check("listen", 1, NULL, "%s:%u is free to listen on", conf->host, conf->port);
    } else if (err == EADDRINUSE && gateway_answers(conf)) {
        add_check("listen", 1, NULL, "%s:%u is in use by a running poe-gateway", conf->host, conf->port);
    } else if (err == EADDRINUSE) {
        char *fix = format("stop what listens there (ss -ltnp 'sport = :%u' shows it), or choose another gateway.port", conf->port);
        add_check("listen", 0, fix, "%s:%u is in use by another program", conf->host, conf->port);
        free(fix);
    } else if (err == EACCES) {
        add_check("listen", 0, "use a port above 1023 (gateway.port), or run with CAP_NET_BIND_SERVICE",
                  "%s:%u needs privileges to listen on", conf->host, conf->port);
    } else {
        add_check("listen", 0, "set gateway.host to an address of this machine (127.0.0.1, 0.0.0.0, or its tailnet address)",
                  "cannot listen on %s:%u: %s", conf->host, conf->port, strerror(err));
    }
}

static struct st_origin_t *collect_origins(const pgw_config_t *conf, size_t *num)
{
    struct st_origin_t *origins = calloc(conf->num_routes + 1, sizeof(*origins));
    if (origins == NULL)
        abort();
    *num = 0;
    for (size_t i = 0; i != conf->num_routes; ++i) {
        char origin[512];
        size_t j;
        if (pgw_cmd_url_origin(conf->routes[i].api_base, origin, sizeof(origin)) != 0)
            continue;
        for (j = 0; j != *num; ++j)
            if (strcmp(origins[j].origin, origin) == 0)
                break;
        if (j == *num)
            snprintf(origins[(*num)++].origin, sizeof(origins[0].origin), "%s", origin);
        if (!conf->routes[i].ssl_verify)
            origins[j].insecure = 1;
    }
    return origins;
}

static struct st_origin_t *find_origin(struct st_origin_t *origins, size_t num, const char *api_base)
{
    char origin[512];
    if (pgw_cmd_url_origin(api_base, origin, sizeof(origin)) != 0)
        return NULL;
    for (size_t i = 0; i != num; ++i)
        if (strcmp(origins[i].origin, origin) == 0)
            return origins + i;
    return NULL;
}

static void check_upstream(const pgw_config_t *conf, struct st_origin_t *o)
{
    static const char fix[] = "check this machine's DNS, firewall and proxy (HTTPS_PROXY), the routes' api_base, and for "
                              "a private CA gateway.ssl_ca_file or SSL_CERT_FILE";
    char url[600], err[256];
    pgw_cmd_http_t res;
    pgw_cmd_http_opts_t opts = {.ca_file = pgw_cmd_ca_file(conf), .insecure = o->insecure};

    snprintf(url, sizeof(url), "%s/v1/models", o->origin);
    if (pgw_cmd_http_get(url, &opts, &res) != 0) {
        add_check("upstream", 0, fix, "%s is not reachable: %s", o->origin, res.error);
    } else if (res.status != 200) {
        add_check("upstream", 0, fix, "%s answered GET /v1/models with %ld", o->origin, res.status);
    } else {
        o->reachable = 1;
        /* read as the gateway reads it (src/upstream/catalog.c), so that the bot checks find what the gateway finds */
        if ((o->catalog = pgw_catalog_parse(res.body, res.len, err, sizeof(err))) != NULL) {
            add_check("upstream", 1, NULL, "%s is reachable (%zu models in its catalog)", o->origin, pgw_catalog_size(o->catalog));
        } else {
            add_check("upstream", 0, "api_base must point at Poe (https://api.poe.com)",
                      "%s answered GET /v1/models, but not with a model list", o->origin);
        }
    }
    pgw_cmd_http_dispose(&res);
}

static void check_key(const pgw_config_t *conf, const struct st_origin_t *o, const pgw_route_t *route)
{
    static const char *balance_path[] = {"current_point_balance", NULL};
    char url[600], from[600];
    pgw_cmd_http_t res;
    pgw_cmd_http_opts_t opts = {.ca_file = pgw_cmd_ca_file(conf), .insecure = o->insecure, .bearer = route->api_key};
    const char *name = route->api_key_env != NULL ? route->api_key_env : "api_key";

    snprintf(from, sizeof(from), "%s for %s", name, o->origin);
    snprintf(url, sizeof(url), "%s/usage/current_balance", o->origin);
    if (pgw_cmd_http_get(url, &opts, &res) != 0) {
        add_check("poe key", 0, "check the network from this machine", "cannot check the key (%s): %s", from, res.error);
    } else if (res.status == 401 || res.status == 403) {
        char *fix = format("create a key at https://poe.com/api/keys and set %s to it", name);
        add_check("poe key", 0, fix, "Poe refused the key (%s): %ld", from, res.status);
        free(fix);
    } else if (res.status != 200) {
        add_check("poe key", 0, "api_base must point at Poe (https://api.poe.com)", "GET /usage/current_balance answered %ld (%s)",
                  res.status, from);
    } else {
        yajl_val tree = yajl_tree_parse(res.body, NULL, 0);
        yajl_val balance = yajl_tree_get(tree, balance_path, yajl_t_number);
        if (balance == NULL) {
            add_check("poe key", 1, NULL, "the key is valid (%s); the balance was not in the answer", from);
        } else if (YAJL_GET_DOUBLE(balance) <= 0) {
            add_check("poe key", 0, "buy points, or wait for the subscription's next grant, at https://poe.com",
                      "the key is valid but has no points left (%s)", from);
        } else {
            add_check("poe key", 1, NULL, "the key is valid (%s): %.0f points left", from, YAJL_GET_DOUBLE(balance));
        }
        yajl_tree_free(tree);
    }
    pgw_cmd_http_dispose(&res);
}

/*
 * The newest bot Poe lists of the family `model` belongs to: the ids that share its name up to the first digit
 * ("claude-sonnet-" for claude-sonnet-4.5 and claude-sonnet-4-5-20250929), newest by their version numbers. NULL when
 * `model` has no version or the catalog lists none of its family.
 */
static const pgw_bot_t *newest_of_family(const pgw_catalog_t *catalog, const char *model, size_t *family_len)
{
    const pgw_bot_t *best = NULL;
    size_t len = strcspn(model, "0123456789");

    *family_len = len;
    if (len == 0 || model[len] == '\0')
        return NULL;
    for (size_t i = 0; i != pgw_catalog_size(catalog); ++i) {
        const pgw_bot_t *bot = pgw_catalog_bot(catalog, i);
        if (strncasecmp(bot->id, model, len) == 0 && isdigit((unsigned char)bot->id[len]) &&
            (best == NULL || pgw_cmd_compare_versions(bot->id, best->id) > 0))
            best = bot;
    }
    return best;
}

static void check_bot(const pgw_route_t *route, const struct st_origin_t *o)
{
    const char *kind = route->kind == PGW_ROUTE_ANTHROPIC ? "anthropic" : "openai";
    char poe_name[256], as[300] = "";
    const pgw_bot_t *bot = pgw_catalog_find(o->catalog, route->upstream_model, strlen(route->upstream_model));

    if (bot == NULL && route->kind == PGW_ROUTE_ANTHROPIC) {
        pgw_poe_claude_name(route->upstream_model, poe_name, sizeof(poe_name));
        bot = pgw_catalog_find(o->catalog, poe_name, strlen(poe_name));
    }
    if (bot != NULL && strcasecmp(bot->id, route->upstream_model) != 0)
        snprintf(as, sizeof(as), " as %s", bot->id); /* found by its display name, or by Poe's form of an Anthropic id */
    if (bot == NULL) {
        size_t family_len;
        const pgw_bot_t *newest = newest_of_family(o->catalog, route->upstream_model, &family_len);
        while (family_len > 1 && strchr("-._ ", route->upstream_model[family_len - 1]) != NULL)
            --family_len; /* "claude-sonnet", not "claude-sonnet-" */
        /* a model Poe retired: its family's current one is the likely fix (Claude Code's own ids move on too) */
        char *fix = newest != NULL
                        ? format("Poe no longer lists it: change litellm_params.model of route %s (line %u) to %s/%s, "
                                 "the newest %.*s Poe lists",
                                 route->model_name, route->line, kind, newest->id, (int)family_len, route->upstream_model)
                        : format("change litellm_params.model of route %s (line %u) to a bot Poe lists (GET %s/v1/models)",
                                 route->model_name, route->line, o->origin);
        add_check("bot", 0, fix, "%s/%s (route %s) is not in Poe's catalog", kind, route->upstream_model, route->model_name);
        free(fix);
    } else if (route->kind == PGW_ROUTE_OPENAI && !pgw_catalog_supports(o->catalog, bot, "tools")) {
        char *fix = format("Claude Code always sends tools: route %s to a bot that supports them", route->model_name);
        add_check("bot", 0, fix, "%s/%s (route %s) does not list tools among its features", kind, route->upstream_model,
                  route->model_name);
        free(fix);
    } else {
        add_check("bot", 1, NULL, "%s/%s (route %s) is in Poe's catalog%s%s", kind, route->upstream_model, route->model_name, as,
                  route->kind == PGW_ROUTE_OPENAI ? " and supports tools" : "");
    }
}

/* Claude through chat/completions works, but without prompt caching: each turn of Claude Code costs about ten times what
 * a cached turn through /v1/messages does (docs/config.md#claude-on-openai-routes). */
static void check_caching(const pgw_config_t *conf)
{
    char hint[300];
    for (size_t i = 0; i != conf->num_routes; ++i) {
        const pgw_route_t *r = conf->routes + i;
        if (!pgw_route_caching_hint(r, hint, sizeof(hint)))
            continue;
        char *fix = format("for prompt caching (a cached turn costs about a tenth), change route %s (line %u) to\n"
                           "         model: %s",
                           r->model_name, r->line, hint);
        add_check("caching", 0, fix, "route %s sends Claude (openai/%s) through chat/completions: no prompt caching", r->model_name,
                  r->upstream_model);
        free(fix);
    }
}

static const pgw_cmd_option_t options[] = {{"json", 0, NULL, "one JSON object instead of lines"}, {NULL}};
static const pgw_cmd_line_t command_line = {
    .name = "doctor",
    .synopsis = "Usage: poe-gateway doctor [--json] [--config FILE] [--env-file FILE]\n"
                "\n"
                "Checks the configuration, its environment variables, the master key, the listen address, that Poe is\n"
                "reachable, that the Poe key is valid and has points, and that every configured bot exists. Prints one line\n"
                "per check, with a fix for each failure; exits 0 only when every check passes. Spends no points.\n",
    .shared = PGW_CMD_CONFIG | PGW_CMD_ENV_FILE,
    .options = options,
};

static int on_option(void *ctx, size_t index, const char *arg)
{
    report.json = 1; /* --json, the only one */
    return -1;
}

int pgw_cmd_doctor_main(int argc, char **argv)
{
    pgw_cmd_shared_t shared;
    static pgw_config_t conf;
    char err[1024];
    int loaded = 0, exit_now;

    if ((exit_now = pgw_cmd_parse(&command_line, argc, argv, &shared, on_option, NULL)) >= 0)
        return exit_now;
    const char *config_path = shared.config, *env_file = shared.env_file;
    curl_global_init(CURL_GLOBAL_DEFAULT);

    if (pgw_dotenv_load(env_file, err, sizeof(err)) < 0) {
        add_check("config", 0, "fix that line: KEY=value, one per line", "%s", err);
    } else if (pgw_config_load(&conf, config_path, err, sizeof(err)) != 0) {
        char *fix = format("correct the place named, then run: poe-gateway --check-config --config %s", config_path);
        add_check("config", 0, fix, "the configuration does not load: %s", err);
        free(fix);
    } else {
        loaded = 1;
        add_check("config", 1, NULL, "%s loads (%zu routes)", config_path, conf.num_routes);
    }

    if (loaded) {
        check_environment(&conf, env_file);
        check_master_key(&conf);
        check_listen(&conf);
        check_caching(&conf);

        size_t num_origins;
        struct st_origin_t *origins = collect_origins(&conf, &num_origins);
        for (size_t i = 0; i != num_origins; ++i)
            check_upstream(&conf, origins + i);
        /* One balance request per distinct key and origin. */
        for (size_t i = 0; i != conf.num_routes; ++i) {
            const pgw_route_t *r = conf.routes + i;
            struct st_origin_t *o = find_origin(origins, num_origins, r->api_base);
            int seen = 0;
            if (r->api_key == NULL && r->api_key_env == NULL) {
                char *fix = format("add api_key: os.environ/POE_API_KEY to route %s (line %u)", r->model_name, r->line);
                add_check("poe key", 0, fix, "route %s has no api_key: it answers 503", r->model_name);
                free(fix);
            }
            if (o == NULL || !o->reachable || r->api_key == NULL)
                continue;
            for (size_t j = 0; j != i; ++j) {
                const pgw_route_t *e = conf.routes + j;
                if (e->api_key != NULL && strcmp(e->api_key, r->api_key) == 0 &&
                    find_origin(origins, num_origins, e->api_base) == o)
                    seen = 1;
            }
            if (!seen)
                check_key(&conf, o, r);
        }
        for (size_t i = 0; i != conf.num_routes; ++i) {
            const pgw_route_t *r = conf.routes + i;
            struct st_origin_t *o = find_origin(origins, num_origins, r->api_base);
            int seen = 0;
            if (o == NULL || o->catalog == NULL || strchr(r->upstream_model, '*') != NULL)
                continue;
            for (size_t j = 0; j != i; ++j) {
                const pgw_route_t *e = conf.routes + j;
                if (e->kind == r->kind && strcmp(e->upstream_model, r->upstream_model) == 0 &&
                    find_origin(origins, num_origins, e->api_base) == o)
                    seen = 1;
            }
            if (!seen)
                check_bot(r, o);
        }
        for (size_t i = 0; i != num_origins; ++i)
            pgw_catalog_release(origins[i].catalog);
        free(origins);
        pgw_config_dispose(&conf);
    }

    int ok = report.failed == 0;
    if (report.json)
        print_json_report();
    else if (ok)
        printf("doctor: all %zu checks passed\n", report.num);
    else
        printf("doctor: %zu of %zu checks failed\n", report.failed, report.num);
    free_report();
    curl_global_cleanup();
    return ok ? 0 : 1;
}
