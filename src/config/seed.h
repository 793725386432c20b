/* poe-gateway: MIT licence. A user's own configuration file, made from the shipped template on first start. */
#ifndef PGW_SEED_H
#define PGW_SEED_H

#include <stddef.h>

#define PGW_TEMPLATE_SUFFIX ".template"

/**
 * When `path` does not exist and `path`.template does (conf/gateway.yaml beside the tracked conf/gateway.yaml.template),
 * copies the template to `path`, never over a file that appears meanwhile, and returns 1. Returns 0 when there is
 * nothing to do (`path` exists, or there is no template), -1 with `err` set when the copy fails (a partial file is
 * removed). Logs nothing: the caller says what happened.
 */
int pgw_config_seed(const char *path, char *err, size_t errsz);

#endif
