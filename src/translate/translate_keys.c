/* poe-gateway: MIT licence. The object keys the request reader understands (translate_keys.h). */
#include <string.h>
#include "translate/translate_keys.h"

static const struct {
    const char *name;
    size_t len;
} table[] = {{"", 0},
             {"", 0},
#define X(e, s) {s, sizeof(s) - 1},
             PGW_REQUEST_KEYS(X)
#undef X
};

pgw_request_key_t pgw_request_key_find(const char *k, size_t len)
{
    /* about thirty keys, most a few bytes long, compared by length first: a scan is as fast as a hash here */
    for (size_t i = K_OTHER + 1; i != sizeof(table) / sizeof(table[0]); ++i)
        if (table[i].len == len && memcmp(table[i].name, k, len) == 0)
            return (pgw_request_key_t)i;
    return K_OTHER;
}

const char *pgw_request_key_name(pgw_request_key_t key)
{
    return table[key].name;
}
