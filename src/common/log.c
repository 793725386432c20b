/* poe-gateway: MIT licence. Leveled logging to stderr. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "common/log.h"

pgw_log_level_t pgw_log_level = PGW_LOG_INFO;

static const char *level_names[] = {"error", "warn", "info", "debug"};

int pgw_log_parse_level(const char *s, pgw_log_level_t *level)
{
    for (size_t i = 0; i != sizeof(level_names) / sizeof(level_names[0]); ++i) {
        if (strcmp(s, level_names[i]) == 0) {
            *level = (pgw_log_level_t)i;
            return 0;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *level = PGW_LOG_WARN;
        return 0;
    }
    return -1;
}

void pgw_log(pgw_log_level_t level, const char *module, const char *fmt, ...)
{
    if (level > pgw_log_level)
        return;

    char line[4096];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int off = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    off += snprintf(line + off, sizeof(line) - off, ".%03ldZ %s [%s] ", ts.tv_nsec / 1000000, level_names[level], module);

    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(line + off, sizeof(line) - off, fmt, args);
    va_end(args);
    if (n < 0)
        n = 0;
    /* one line per message: control characters from request or file content cannot forge log lines */
    for (int i = off; i < off + n && i < (int)sizeof(line); ++i)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            line[i] = '?';
    off += n;
    if (off > (int)sizeof(line) - 2)
        off = (int)sizeof(line) - 2;
    line[off++] = '\n';
    ssize_t unused = write(2, line, off);
    (void)unused;
}

const char *pgw_log_mask_key(const char *key, char *buf, size_t bufsz)
{
    if (key == NULL) {
        snprintf(buf, bufsz, "(unset)");
    } else {
        size_t len = strlen(key);
        if (len >= 16)
            snprintf(buf, bufsz, "%.3s...%s", key, key + len - 4);
        else
            snprintf(buf, bufsz, "****");
    }
    return buf;
}
