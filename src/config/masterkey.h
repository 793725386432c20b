/* poe-gateway: MIT licence. The master key when none is configured: generated once, kept in the state directory. */
#ifndef PGW_MASTERKEY_H
#define PGW_MASTERKEY_H

#include "config/config.h"

/**
 * Returns 1 when `host` is a loopback address or name (127.0.0.0/8, ::1, localhost).
 */
int pgw_host_is_loopback(const char *host);

/**
 * Returns the state directory for `conf` in `buf`: gateway.state_dir, else $XDG_STATE_HOME/poe-gateway, else
 * $HOME/.local/state/poe-gateway. Returns 0, or -1 when it cannot be determined or does not fit.
 */
int pgw_state_dir(const pgw_config_t *conf, char *buf, size_t bufsz);

/**
 * Ensures conf->master_key is set. A configured key is kept. Without one, on a loopback host, the key stored in
 * `<state_dir>/master_key` is read, or a new random one is generated and stored there (directory 0700, file 0600), and
 * the file's path is logged (never the key). On a non-loopback host, or when the file cannot be read or written, returns
 * -1 with a message in `err`.
 */
int pgw_masterkey_ensure(pgw_config_t *conf, char *err, size_t errsz);

#endif
