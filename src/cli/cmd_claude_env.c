/* poe-gateway: MIT licence. `poe-gateway claude-env`: prints the environment Claude Code needs to use this gateway. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>
#include "cli/cmd.h"
#include "common/log.h"
#include "config/masterkey.h"
#include "config/route_match.h"

/*
 * The base URL is, in order: gateway.public_url; the Tailscale name of this machine (`tailscale status --json`, or
 * tailscaled's LocalAPI socket when there is no CLI, as in the compose setup where the socket is shared with the
 * gateway's container) with the configured port; else http://host:port from the configuration, with a wildcard host
 * replaced by this machine's name. The master key is printed only with --with-key.
 *
 * The model variables make every model Claude Code asks for one that a route serves. Each family's variable
 * (ANTHROPIC_DEFAULT_OPUS_MODEL, ...) names the newest exact route of that family. Where no wildcard route would take
 * an id of a family (no `claude-*` catch-all), Claude Code's own choice for it, which changes with each release, would
 * get a 404 ("There's an issue with the selected model"), so that family's variable is always set, to a route of
 * another family when it has none of its own, and so are ANTHROPIC_SMALL_FAST_MODEL (its background jobs) and, without
 * a catch-all, ANTHROPIC_MODEL (its default).
 */

#define KEY_PLACEHOLDER "<master key>"
#define TAILSCALE_TIMEOUT_MS 5000
#define TAILSCALE_DEFAULT_SOCKET "/var/run/tailscale/tailscaled.sock"
#define MAX_STATUS_BYTES (16 * 1024 * 1024)

enum { OPT_SHELL, OPT_JSON, OPT_WITH_KEY, OPT_PORT }; /* indexes in options[] */
static const pgw_cmd_option_t options[] = {
    {"shell", 0, NULL, "export lines for a shell (the default)"},
    {"json", 0, NULL, "the \"env\" block of a .claude/settings.json"},
    {"with-key", 0, NULL, "print the master key itself"},
    {"port", 'p', "N", "the port the gateway was started with, when its command line gave one\n(default: gateway.port)"},
    {NULL},
};
static const pgw_cmd_line_t command_line = {
    .name = "claude-env",
    .synopsis = "Usage: poe-gateway claude-env [--shell | --json] [--with-key] [--port N] [--config FILE] [--env-file FILE]\n"
                "\n"
                "Prints what Claude Code needs to use this gateway: export lines for a shell (--shell, the default), or the\n"
                "\"env\" block of a .claude/settings.json (--json). The master key is printed only with --with-key.\n",
    .shared = PGW_CMD_CONFIG | PGW_CMD_ENV_FILE,
    .options = options,
};

struct settings {
    int json;
    int with_key;
    long port; /* -1: gateway.port */
};

static int on_option(void *ctx, size_t index, const char *arg)
{
    struct settings *set = ctx;
    char *end;
    if (index == OPT_PORT) {
        set->port = strtol(arg, &end, 10);
        if (*arg == '\0' || *end != '\0' || set->port < 1 || set->port > 65535) {
            fprintf(stderr, "claude-env: --port: expected 1 to 65535, got %s\n", arg);
            return PGW_CMD_EXIT_USAGE;
        }
    } else if (index == OPT_WITH_KEY) {
        set->with_key = 1;
    } else {
        set->json = index == OPT_JSON;
    }
    return -1;
}

/* Runs `tailscale status --json` and returns its output (owned), or NULL when it is not installed, fails or hangs. */
static char *tailscale_cli_status(int *not_installed)
{
    int out[2];
    char *buf = NULL;
    size_t len = 0;
    pid_t pid;

    *not_installed = 0;
    if (pipe2(out, O_CLOEXEC) != 0)
        return NULL;
    if ((pid = fork()) < 0) {
        close(out[0]);
        close(out[1]);
        return NULL;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(out[1], 1);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 2);
        }
        execlp("tailscale", "tailscale", "status", "--json", (char *)NULL);
        _exit(127);
    }
    close(out[1]);

    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        struct pollfd pfd = {.fd = out[0], .events = POLLIN};
        int n = elapsed < TAILSCALE_TIMEOUT_MS ? poll(&pfd, 1, (int)(TAILSCALE_TIMEOUT_MS - elapsed)) : 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            kill(pid, SIGKILL);
            free(buf);
            buf = NULL;
            break;
        }
        char chunk[8192];
        ssize_t r = read(out[0], chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (len + (size_t)r > MAX_STATUS_BYTES) {
            kill(pid, SIGKILL);
            free(buf);
            buf = NULL;
            break;
        }
        char *grown = realloc(buf, len + (size_t)r + 1);
        if (grown == NULL)
            abort();
        buf = grown;
        memcpy(buf + len, chunk, (size_t)r);
        len += (size_t)r;
        buf[len] = '\0';
    }
    close(out[0]);

    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        *not_installed = WIFEXITED(status) && WEXITSTATUS(status) == 127;
        free(buf);
        return NULL;
    }
    return buf;
}

/* Asks tailscaled's LocalAPI over its Unix socket (what the CLI does); returns the status JSON (owned) or NULL. */
static char *tailscale_socket_status(void)
{
    const char *path = getenv("TS_SOCKET");
    struct stat st;
    if (path == NULL || path[0] == '\0')
        path = TAILSCALE_DEFAULT_SOCKET;
    if (stat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
        return NULL;
    pgw_cmd_http_t res;
    pgw_cmd_http_opts_t opts = {.unix_socket = path, .timeout = TAILSCALE_TIMEOUT_MS / 1000.0};
    char *ret = NULL;
    if (pgw_cmd_http_get("http://local-tailscaled.sock/localapi/v0/status", &opts, &res) == 0 && res.status == 200) {
        ret = res.body;
        res.body = NULL;
    }
    pgw_cmd_http_dispose(&res);
    return ret;
}

/* This machine's Tailscale DNS name without the trailing dot, into `buf`; 0 on success, -1 when Tailscale does not say. */
static int tailscale_dns_name(char *buf, size_t bufsz)
{
    static const char *self_dns[] = {"Self", "DNSName", NULL};
    static const char *backend_state[] = {"BackendState", NULL};
    int not_installed, ret = -1;
    char *json = tailscale_cli_status(&not_installed);
    if (json == NULL && not_installed)
        json = tailscale_socket_status();
    if (json == NULL)
        return -1;
    yajl_val tree = yajl_tree_parse(json, NULL, 0);
    free(json);
    if (tree == NULL)
        return -1;
    const char *state = YAJL_GET_STRING(yajl_tree_get(tree, backend_state, yajl_t_string));
    const char *name = YAJL_GET_STRING(yajl_tree_get(tree, self_dns, yajl_t_string));
    if ((state == NULL || strcmp(state, "Running") == 0) && name != NULL && name[0] != '\0') {
        size_t len = strlen(name);
        if (name[len - 1] == '.')
            --len;
        if (len != 0 && len < bufsz) {
            memcpy(buf, name, len);
            buf[len] = '\0';
            ret = 0;
        }
    }
    yajl_tree_free(tree);
    return ret;
}

/* The URL Claude Code uses and a note on where it came from. */
static void base_url(const pgw_config_t *conf, char *buf, size_t bufsz, const char **source)
{
    const char *scheme = conf->tls_cert_file != NULL ? "https" : "http";
    char name[256];

    if (conf->public_url != NULL) {
        size_t len = strlen(conf->public_url);
        while (len > 0 && conf->public_url[len - 1] == '/')
            --len;
        snprintf(buf, bufsz, "%.*s", (int)len, conf->public_url);
        *source = "gateway.public_url";
        return;
    }
    if (tailscale_dns_name(name, sizeof(name)) == 0) {
        snprintf(buf, bufsz, "%s://%s:%u", scheme, name, conf->port);
        *source = "this machine's Tailscale name";
        return;
    }
    const char *host = conf->host;
    if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0) {
        if (gethostname(name, sizeof(name)) != 0 || name[0] == '\0')
            snprintf(name, sizeof(name), "127.0.0.1");
        name[sizeof(name) - 1] = '\0';
        host = name;
    }
    if (strchr(host, ':') != NULL)
        snprintf(buf, bufsz, "%s://[%s]:%u", scheme, host, conf->port);
    else
        snprintf(buf, bufsz, "%s://%s:%u", scheme, host, conf->port);
    *source = "gateway.host and gateway.port (no public_url, no Tailscale)";
}

/* The newest-looking exact model_name that contains `family`, or NULL. */
static const char *pick_model(const pgw_config_t *conf, const char *family)
{
    const char *best = NULL;
    for (size_t i = 0; i != conf->num_routes; ++i) {
        const pgw_route_t *r = conf->routes + i;
        if (r->is_wildcard || strcasestr(r->model_name, family) == NULL)
            continue;
        if (best == NULL || pgw_cmd_compare_versions(r->model_name, best) > 0)
            best = r->model_name;
    }
    return best;
}

/* Whether a wildcard route would take a Claude id that no route names: "claude-" `family` and a version from the future. */
static int wildcard_takes(const pgw_config_t *conf, const char *family)
{
    char probe[64];
    int n = snprintf(probe, sizeof(probe), "claude-%s%s99-9", family, family[0] != '\0' ? "-" : "");
    const pgw_route_t *r = pgw_config_find_route(conf, probe, (size_t)n);
    return r != NULL && r->is_wildcard;
}

/* What the model variables say (NULL: leave it unset, Claude Code's choice reaches a route). */
struct models {
    const char *model, *opus, *sonnet, *haiku, *small_fast;
};

static void pick_models(const pgw_config_t *conf, struct models *m)
{
    static const char *const preference[] = {"sonnet", "opus", "haiku", "claude"};
    const char *fallback = NULL;

    m->opus = pick_model(conf, "opus");
    m->sonnet = pick_model(conf, "sonnet");
    m->haiku = pick_model(conf, "haiku");
    m->model = m->small_fast = NULL;
    /* a route for a family that has none: the best Claude route there is, else the first exact route of any kind */
    for (size_t i = 0; fallback == NULL && i != sizeof(preference) / sizeof(preference[0]); ++i)
        fallback = pick_model(conf, preference[i]);
    for (size_t i = 0; fallback == NULL && i != conf->num_routes; ++i)
        if (!conf->routes[i].is_wildcard)
            fallback = conf->routes[i].model_name;
    if (m->opus == NULL && !wildcard_takes(conf, "opus"))
        m->opus = fallback;
    if (m->sonnet == NULL && !wildcard_takes(conf, "sonnet"))
        m->sonnet = fallback;
    if (m->haiku == NULL && !wildcard_takes(conf, "haiku"))
        m->haiku = fallback;
    if (!wildcard_takes(conf, "haiku"))
        m->small_fast = m->haiku;
    if (!wildcard_takes(conf, ""))
        m->model = m->opus != NULL ? m->opus : fallback;
}

/* Writes `s` in single quotes for a POSIX shell. */
static void print_shell_quoted(const char *s)
{
    putchar('\'');
    for (; *s != '\0'; ++s) {
        if (*s == '\'')
            fputs("'\\''", stdout);
        else
            putchar(*s);
    }
    putchar('\'');
}

int pgw_cmd_claude_env_main(int argc, char **argv)
{
    pgw_cmd_shared_t shared;
    struct settings set = {.port = -1};
    const char *url_source, *key = NULL;
    int ret = 1, exit_now;
    char err[1024], url[1024], state_dir[4096], key_path[4200], hint[4400];
    char *stored_key = NULL;
    static pgw_config_t conf;

    if ((exit_now = pgw_cmd_parse(&command_line, argc, argv, &shared, on_option, &set)) >= 0)
        return exit_now;
    const char *config_path = shared.config, *env_file = shared.env_file;
    int json = set.json, with_key = set.with_key;

    pgw_log_level = PGW_LOG_ERROR; /* the output is for pasting: keep the config's warnings out of it */
    if (pgw_dotenv_load(env_file, err, sizeof(err)) < 0 || pgw_config_load(&conf, config_path, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (set.port > 0)
        conf.port = (unsigned)set.port; /* as the server's --port overrides gateway.port */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    base_url(&conf, url, sizeof(url), &url_source);

    /* Where the key lives, for the hint; and the key itself when asked for. */
    key_path[0] = '\0';
    if (pgw_state_dir(&conf, state_dir, sizeof(state_dir)) == 0)
        snprintf(key_path, sizeof(key_path), "%s/master_key", state_dir);
    if (conf.master_key != NULL) {
        key = conf.master_key;
        if (conf.master_key_env != NULL)
            snprintf(hint, sizeof(hint), "the master key is the value of %s (in %s or the environment)", conf.master_key_env,
                     env_file);
        else
            snprintf(hint, sizeof(hint), "the master key is general_settings.master_key in %s", config_path);
    } else if (key_path[0] != '\0' && (stored_key = malloc(512)) != NULL) {
        FILE *fp = fopen(key_path, "r");
        size_t n = 0;
        if (fp != NULL) {
            n = fread(stored_key, 1, 511, fp);
            fclose(fp);
        }
        while (n != 0 && isspace((unsigned char)stored_key[n - 1]))
            --n;
        stored_key[n] = '\0';
        if (n != 0) {
            key = stored_key;
            snprintf(hint, sizeof(hint), "the master key was generated by the gateway and is kept in %s", key_path);
        } else {
            snprintf(hint, sizeof(hint),
                     "no master key yet: set %s, or start the gateway once on a loopback address to generate one in %s",
                     conf.master_key_env != NULL ? conf.master_key_env : "LITELLM_MASTER_KEY", key_path);
        }
    } else {
        snprintf(hint, sizeof(hint), "no master key is configured: set LITELLM_MASTER_KEY");
    }
    if (with_key && key == NULL) {
        fprintf(stderr, "claude-env: %s\n", hint);
        goto Exit;
    }

    struct models models;
    pick_models(&conf, &models);
    const char *names[] = {"ANTHROPIC_BASE_URL",           "ANTHROPIC_AUTH_TOKEN",           "ANTHROPIC_MODEL",
                           "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL", "ANTHROPIC_DEFAULT_HAIKU_MODEL",
                           "ANTHROPIC_SMALL_FAST_MODEL",   "CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY"};
    /* discovery puts every route in the /model picker, the ones under their claude-via-poe- alias included
     * (docs/request-path.md#models) */
    const char *values[] = {url,           with_key ? key : KEY_PLACEHOLDER, models.model, models.opus, models.sonnet,
                            models.haiku, models.small_fast,                "1"};
    size_t num = sizeof(names) / sizeof(names[0]);

    if (json) {
        yajl_gen g = yajl_gen_alloc(NULL);
        const unsigned char *out;
        size_t outlen;
        yajl_gen_config(g, yajl_gen_beautify, 1);
        yajl_gen_config(g, yajl_gen_indent_string, "  ");
        yajl_gen_map_open(g);
        yajl_gen_string(g, (const unsigned char *)"env", 3);
        yajl_gen_map_open(g);
        for (size_t i = 0; i != num; ++i) {
            if (values[i] == NULL)
                continue;
            yajl_gen_string(g, (const unsigned char *)names[i], strlen(names[i]));
            yajl_gen_string(g, (const unsigned char *)values[i], strlen(values[i]));
        }
        yajl_gen_map_close(g);
        yajl_gen_map_close(g);
        yajl_gen_get_buf(g, &out, &outlen);
        fwrite(out, 1, outlen, stdout);
        yajl_gen_free(g);
        fprintf(stderr, "claude-env: put the \"env\" block in ~/.claude/settings.json or a project's .claude/settings.json\n");
        fprintf(stderr, "claude-env: URL from %s\n", url_source);
        if (!with_key)
            fprintf(stderr, "claude-env: replace %s: %s; or run again with --with-key\n", KEY_PLACEHOLDER, hint);
    } else {
        printf("# Claude Code settings for this poe-gateway (URL from %s)\n", url_source);
        for (size_t i = 0; i != num; ++i) {
            if (values[i] == NULL)
                continue;
            printf("export %s=", names[i]);
            print_shell_quoted(values[i]);
            putchar('\n');
        }
        if (!with_key)
            printf("# replace %s: %s; or run again with --with-key\n", KEY_PLACEHOLDER, hint);
    }
    ret = fflush(stdout) == 0 ? 0 : 1;

Exit:
    if (stored_key != NULL) {
        explicit_bzero(stored_key, 512);
        free(stored_key);
    }
    pgw_config_dispose(&conf);
    curl_global_cleanup();
    return ret;
}
