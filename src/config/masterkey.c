/* poe-gateway: MIT licence. The master key when none is configured: generated once, kept in the state directory. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/rand.h>
#include "common/log.h"
#include "config/masterkey.h"

#define MODULE_NAME "masterkey"
#define KEY_PREFIX "sk-pgw-"
#define KEY_RANDOM_BYTES 24

int pgw_host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcasecmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return 0;
}

int pgw_state_dir(const pgw_config_t *conf, char *buf, size_t bufsz)
{
    int n;
    const char *env;
    if (conf->state_dir != NULL) {
        n = snprintf(buf, bufsz, "%s", conf->state_dir);
    } else if ((env = getenv("XDG_STATE_HOME")) != NULL && env[0] == '/') {
        n = snprintf(buf, bufsz, "%s/poe-gateway", env);
    } else if ((env = getenv("HOME")) != NULL && env[0] != '\0') {
        n = snprintf(buf, bufsz, "%s/.local/state/poe-gateway", env);
    } else {
        return -1;
    }
    return n > 0 && (size_t)n < bufsz ? 0 : -1;
}

/* mkdir -p with mode 0700 for the directories it creates. */
static int mkdir_p(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return -1;
    for (char *p = tmp + 1; *p != '\0'; ++p) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static int read_key(const char *path, char **key)
{
    char buf[512];
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return errno == ENOENT ? 0 : -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    while (n != 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    if (n == 0)
        return 0;
    *key = strdup(buf);
    return 1;
}

static int write_new_key(const char *path, char **key)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[KEY_RANDOM_BYTES];
    char text[sizeof(KEY_PREFIX) + KEY_RANDOM_BYTES * 2 + 1];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return -1;
    char *p = text + sprintf(text, "%s", KEY_PREFIX);
    for (size_t i = 0; i != sizeof(rnd); ++i) {
        *p++ = hex[rnd[i] >> 4];
        *p++ = hex[rnd[i] & 15];
    }
    *p = '\0';

    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return -1;
    size_t len = p - text;
    text[len] = '\n';
    if (write(fd, text, len + 1) != (ssize_t)(len + 1)) {
        close(fd);
        unlink(path);
        return -1;
    }
    close(fd);
    text[len] = '\0';
    *key = strdup(text);
    return 0;
}

int pgw_masterkey_ensure(pgw_config_t *conf, char *err, size_t errsz)
{
    char dir[4096], path[4200];
    char *key = NULL;

    if (conf->master_key != NULL)
        return 0;
    if (!pgw_host_is_loopback(conf->host)) {
        snprintf(err, errsz,
                 "no master key is configured and the gateway would listen on %s, beyond this machine; set "
                 "general_settings.master_key or LITELLM_MASTER_KEY (e.g. LITELLM_MASTER_KEY=sk-$(openssl rand -hex 24))",
                 conf->host);
        return -1;
    }
    if (pgw_state_dir(conf, dir, sizeof(dir)) != 0) {
        snprintf(err, errsz, "no master key is configured and no state directory is known: set gateway.state_dir or HOME");
        return -1;
    }
    snprintf(path, sizeof(path), "%s/master_key", dir);
    /* names the variable the configuration asked for, which pgw_config_warn_missing_env leaves to this step */
    char unset[300] = "no master key configured";
    if (conf->master_key_env != NULL)
        snprintf(unset, sizeof(unset), "%s is not set", conf->master_key_env);

    switch (read_key(path, &key)) {
    case 1:
        pgw_log_info(MODULE_NAME, "%s; using the master key kept in %s", unset, path);
        break;
    case 0:
        if (mkdir_p(dir) != 0 || write_new_key(path, &key) != 0) {
            snprintf(err, errsz, "cannot create the master key file %s: %s", path, strerror(errno));
            return -1;
        }
        pgw_log_info(MODULE_NAME, "%s; generated a master key and kept it in %s (mode 0600)", unset, path);
        break;
    default:
        snprintf(err, errsz, "cannot read the master key file %s: %s", path, strerror(errno));
        return -1;
    }
    conf->master_key = key;
    return 0;
}
