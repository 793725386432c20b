/* poe-gateway: MIT licence. What claude-env, doctor and healthcheck share: default paths, a blocking GET, the order of
 * model versions. (Which subcommand runs is src/main.c's choice, so that the subcommands depend on this file and never
 * the other way.) */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include "cli/cmd.h"

#ifndef PGW_SYSCONFDIR
#define PGW_SYSCONFDIR "/usr/local/etc" /* CMake passes CMAKE_INSTALL_FULL_SYSCONFDIR */
#endif
#define INSTALLED_CONFIG PGW_SYSCONFDIR "/poe-gateway/gateway.yaml"
#define INSTALLED_ENV_FILE PGW_SYSCONFDIR "/poe-gateway/env"
#define MAX_BODY_BYTES (64 * 1024 * 1024)


const char *pgw_cmd_default_config(void)
{
    if (access(PGW_DEFAULT_CONFIG_PATH, F_OK) != 0 && access(INSTALLED_CONFIG, F_OK) == 0)
        return INSTALLED_CONFIG;
    return PGW_DEFAULT_CONFIG_PATH;
}

const char *pgw_cmd_default_env_file(void)
{
    if (access(".env", F_OK) != 0 && access(INSTALLED_ENV_FILE, R_OK) == 0)
        return INSTALLED_ENV_FILE;
    return ".env";
}

const char *pgw_cmd_ca_file(const pgw_config_t *conf)
{
    return conf->ssl_ca_file != NULL ? conf->ssl_ca_file : getenv("SSL_CERT_FILE");
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    pgw_cmd_http_t *res = userdata;
    size_t n = size * nmemb, take = n;
    if (res->len + take > MAX_BODY_BYTES)
        take = MAX_BODY_BYTES - res->len;
    if (take != 0) {
        char *grown = realloc(res->body, res->len + take + 1);
        if (grown == NULL)
            abort();
        res->body = grown;
        memcpy(res->body + res->len, data, take);
        res->len += take;
        res->body[res->len] = '\0';
    }
    return n;
}

int pgw_cmd_http_get(const char *url, const pgw_cmd_http_opts_t *opts, pgw_cmd_http_t *res)
{
    static const pgw_cmd_http_opts_t defaults;
    struct curl_slist *headers = NULL;
    char auth[1024];
    CURLcode result;
    CURL *e;

    if (opts == NULL)
        opts = &defaults;
    memset(res, 0, sizeof(*res));
    if ((res->body = calloc(1, 1)) == NULL)
        abort();
    if ((e = curl_easy_init()) == NULL) {
        snprintf(res->error, sizeof(res->error), "cannot create a libcurl handle");
        return -1;
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)((opts->timeout > 0 ? opts->timeout : 10.0) * 1000));
    curl_easy_setopt(e, CURLOPT_USERAGENT, "poe-gateway/" PGW_VERSION);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, res);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, res->error);
    if (opts->ca_file != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, opts->ca_file);
    if (opts->insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (opts->unix_socket != NULL)
        curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, opts->unix_socket);
    if (opts->bearer != NULL) {
        if ((size_t)snprintf(auth, sizeof(auth), "Authorization: Bearer %s", opts->bearer) >= sizeof(auth)) {
            snprintf(res->error, sizeof(res->error), "the key is too long");
            curl_easy_cleanup(e);
            return -1;
        }
        headers = curl_slist_append(headers, auth);
    }
    if (opts->header != NULL)
        headers = curl_slist_append(headers, opts->header);
    if (headers != NULL)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);

    result = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &res->status);
    if (result != CURLE_OK && res->error[0] == '\0')
        snprintf(res->error, sizeof(res->error), "%s", curl_easy_strerror(result));
    curl_easy_cleanup(e);
    curl_slist_free_all(headers);
    explicit_bzero(auth, sizeof(auth));
    if (result != CURLE_OK) {
        res->status = 0;
        return -1;
    }
    return 0;
}

void pgw_cmd_http_dispose(pgw_cmd_http_t *res)
{
    free(res->body);
    res->body = NULL;
    res->len = 0;
}

int pgw_cmd_compare_versions(const char *a, const char *b)
{
    for (;;) {
        while (*a != '\0' && !isdigit((unsigned char)*a))
            ++a;
        while (*b != '\0' && !isdigit((unsigned char)*b))
            ++b;
        if (*a == '\0' || *b == '\0')
            return (*a != '\0') - (*b != '\0');
        char *ea, *eb;
        unsigned long long va = strtoull(a, &ea, 10), vb = strtoull(b, &eb, 10);
        if (va != vb)
            return va > vb ? 1 : -1;
        a = ea;
        b = eb;
    }
}

int pgw_cmd_url_origin(const char *url, char *buf, size_t bufsz)
{
    const char *p = strstr(url, "://");
    if (p == NULL)
        return -1;
    p += 3;
    size_t len = (size_t)(p - url) + strcspn(p, "/?#");
    if (len >= bufsz)
        return -1;
    memcpy(buf, url, len);
    buf[len] = '\0';
    return 0;
}
