/* poe-gateway: MIT licence. libFuzzer target: the vector paths of the first look at a client body (src/serve/reqbody.c,
 * skip_plain) against its scalar path, the scanner as it was before them.
 *
 * Input: the body; also read with its first byte as a shift (0-31) that moves the body that far into its buffer, so that
 * its strings cross 16- and 32-byte blocks at every alignment. Oracle: the AVX2 path (when the CPU has it), the SSE2 path
 * and the scalar path give the same verdict, the same fields and offsets, and the same message, byte for byte. */
#include <stdlib.h>
#include <string.h>
#include "fuzz.h"
#include "serve/reqbody.h"

int pgw_reqbody_inspect_sse2(const char *body, size_t len, pgw_reqbody_t *info, char *err, size_t errsz);
int pgw_reqbody_inspect_scalar(const char *body, size_t len, pgw_reqbody_t *info, char *err, size_t errsz);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_logs();
    return 0;
}

static void same(const char *body, size_t len)
{
    int (*const variants[])(const char *, size_t, pgw_reqbody_t *, char *, size_t) = {pgw_reqbody_inspect, pgw_reqbody_inspect_sse2,
                                                                                      pgw_reqbody_inspect_scalar};
    pgw_reqbody_t info[3];
    char err[3][512];
    int ret[3];
    for (int i = 0; i != 3; ++i) {
        memset(&info[i], 0xa5, sizeof(info[i]));
        memset(err[i], 0, sizeof(err[i]));
        ret[i] = variants[i](body, len, &info[i], err[i], sizeof(err[i]));
    }
    for (int i = 1; i != 3; ++i) {
        const char *which = i == 1 ? "sse2" : "scalar";
        FUZZ_ASSERT(ret[i] == ret[0], "verdicts differ: %d (default) against %d (%s)", ret[0], ret[i], which);
        FUZZ_ASSERT(ret[0] != 0 || memcmp(&info[i], &info[0], sizeof(info[0])) == 0, "fields differ (%s)", which);
        FUZZ_ASSERT(ret[0] == 0 || strcmp(err[i], err[0]) == 0, "messages differ: \"%s\" against \"%s\" (%s)", err[0], err[i], which);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    same((const char *)data, size);
    if (size != 0) {
        /* again, moved by the first byte's low five bits, in a buffer exactly as long (ASan sees any read past it) */
        size_t shift = data[0] & 31, len = size - 1;
        char *buf = malloc(shift + len);
        memcpy(buf + shift, data + 1, len);
        same(buf + shift, len);
        free(buf);
    }
    return 0;
}
