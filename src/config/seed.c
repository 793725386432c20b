/* poe-gateway: MIT licence. A user's own configuration file, made from the shipped template on first start. */

/*
 * The repository tracks conf/gateway.yaml.template and ignores conf/gateway.yaml, so the file people edit is theirs and
 * `git pull` never has to merge into it (README, "Upgrading"). The first start from a clone makes it: the template is
 * copied with O_EXCL, so two gateways starting at once cannot both write it, and an existing file is never touched.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "config/seed.h"

int pgw_config_seed(const char *path, char *err, size_t errsz)
{
    char template[4096], buf[65536];
    struct stat st;
    int in = -1, out = -1, ret = -1;
    ssize_t n;

    if (lstat(path, &st) == 0 || errno != ENOENT)
        return 0;
    if ((size_t)snprintf(template, sizeof(template), "%s" PGW_TEMPLATE_SUFFIX, path) >= sizeof(template))
        return 0;
    if ((in = open(template, O_RDONLY | O_CLOEXEC)) < 0)
        return 0;
    if ((out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
        if (errno == EEXIST) { /* made meanwhile by another start: theirs stands */
            ret = 0;
            goto Exit;
        }
        snprintf(err, errsz, "%s: cannot create it from %s: %s", path, template, strerror(errno));
        goto Exit;
    }
    while ((n = read(in, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errsz, "%s: cannot read: %s", template, strerror(errno));
            goto Fail;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                snprintf(err, errsz, "%s: cannot write: %s", path, strerror(errno));
                goto Fail;
            }
            off += w;
        }
    }
    if (close(out) != 0) {
        out = -1;
        snprintf(err, errsz, "%s: cannot write: %s", path, strerror(errno));
        goto Fail;
    }
    out = -1;
    ret = 1;
    goto Exit;

Fail:
    unlink(path);
Exit:
    if (out >= 0)
        close(out);
    close(in);
    return ret;
}
