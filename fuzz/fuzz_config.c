/* poe-gateway: MIT licence. libFuzzer target: the configuration loader (src/config*.c) and the lookups (src/config/route_match.c).
 *
 * Input: the YAML file, written to a memfd and loaded through /proc/self/fd/N (pgw_config_load takes a path). A few
 * environment variables are set so that os.environ/ references resolve or not. A loaded config is exercised the way
 * the server does: routes found for some names, upstream names built, suggestions, key allow lists. A failure must say
 * "file:line:column: ..." in one line. */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>
#include "config/config.h"
#include "config/route_match.h"
#include "fuzz.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_logs();
    setenv("POE_API_KEY", "fuzz-poe-key", 1);
    setenv("LITELLM_MASTER_KEY", "sk-fuzz-master-0123456789", 1);
    setenv("ALICE_KEY", "sk-alice-0123456789", 1);
    unsetenv("UNSET_KEY");
    if ((fd = memfd_create("gateway.yaml", 0)) < 0) {
        perror("memfd_create");
        abort();
    }
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();

    pgw_config_t conf;
    char err[512];
    if (pgw_config_load(&conf, path, err, sizeof(err)) != 0) {
        FUZZ_ASSERT(err[0] != '\0', "an error without a message");
        /* config.h: "err holding one line"; a value quoted in the message must not break it (FUZZ_ALLOW=config-newline) */
        FUZZ_ASSERT(strchr(err, '\n') == NULL || fuzz_allowed("config-newline"), "a message of more than one line: '%s'", err);
        FUZZ_ASSERT(strncmp(err, path, strlen(path)) == 0, "the message does not start with the file: '%s'", err);
        pgw_config_dispose(&conf); /* already disposed: a second time is documented as safe */
        return 0;
    }
    static const char *names[] = {"claude-sonnet-4-5-20250929", "gpt-5", "", "claude-x", "*", ("a-name-that-is-rather-long-"
                                                                                             "and-matches-nothing-at-all")};
    for (size_t i = 0; i != sizeof(names) / sizeof(names[0]); ++i) {
        const char *n = names[i];
        const pgw_route_t *route = pgw_config_find_route(&conf, n, strlen(n));
        if (route != NULL) {
            char buf[256];
            int len = pgw_route_upstream_model(route, n, strlen(n), buf, sizeof(buf));
            FUZZ_ASSERT(len < 0 || (size_t)len == strlen(buf), "upstream model length %d for '%s'", len, buf);
            /* api_base may be NULL (os.environ/ of an unset variable: the handler answers 503), the model may not */
            FUZZ_ASSERT(route->upstream_model != NULL, "a route without a model");
        }
        const char *sugg[3];
        size_t ns = pgw_config_suggest(&conf, n, strlen(n), sugg, 3);
        FUZZ_ASSERT(ns <= 3, "%zu suggestions", ns);
        for (size_t k = 0; k != conf.num_keys; ++k)
            (void)pgw_key_allows_model(&conf.keys[k], n, strlen(n));
    }
    for (size_t r = 0; r != conf.num_routes; ++r) {
        const pgw_route_t *route = &conf.routes[r];
        FUZZ_ASSERT(route->model_name != NULL, "a route without model_name");
        /* parsed once at load for the translator: members exactly when there is text */
        FUZZ_ASSERT((route->extra_body != NULL) == (route->extra_body_members != NULL), "extra_body %s but members %s",
                    route->extra_body != NULL ? "set" : "unset", route->extra_body_members != NULL ? "set" : "unset");
        if (route->extra_body != NULL) {
            /* members without braces: wrapped, they must be one JSON object */
            size_t n = strlen(route->extra_body);
            char *obj = malloc(n + 3);
            obj[0] = '{';
            memcpy(obj + 1, route->extra_body, n);
            obj[n + 1] = '}';
            /* a plain scalar like 1. or 01 passes for a number but is not JSON (FUZZ_ALLOW=config-extra-body-number) */
            FUZZ_ASSERT(fuzz_json_valid(obj, n + 2) || fuzz_allowed("config-extra-body-number"), "extra_body is not JSON members: %s",
                        route->extra_body);
            /* without aliases the JSON is at most 6 times the YAML (\u00XX escapes); aliases may multiply it only up to
             * the loader's cap of 64 KB ("billion laughs": 9 levels of 9 aliases would load for minutes into gigabytes)
             * (FUZZ_ALLOW=config-alias-amplification) */
            FUZZ_ASSERT(n <= 6 * size + 64 || n <= 64 * 1024 || fuzz_allowed("config-alias-amplification"),
                        "extra_body of %zu bytes from %zu bytes of YAML", n, size);
            free(obj);
        }
        (void)pgw_config_find_route(&conf, route->model_name, strlen(route->model_name));
    }
    pgw_config_dispose(&conf);
    pgw_config_dispose(&conf);
    return 0;
}
