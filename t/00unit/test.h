/* poe-gateway: MIT licence. A tiny TAP producer for the unit tests, modelled on h2o's picotest. */
#ifndef PGW_TEST_H
#define PGW_TEST_H

#include <stddef.h>

/**
 * Records one test: prints "ok N - file:line" or "not ok N - file:line" followed by a diagnostic naming the condition.
 */
#define ok(cond) ok_at(!!(cond), #cond, __FILE__, __LINE__)
/**
 * Like ok(), comparing two strings (either may be NULL); on failure both are printed.
 */
#define is_str(got, expected) is_str_at((got), (expected), #got, __FILE__, __LINE__)
/**
 * Like ok(), comparing two integers; on failure both are printed.
 */
#define is_int(got, expected) is_int_at((long long)(got), (long long)(expected), #got, __FILE__, __LINE__)

void ok_at(int cond, const char *expr, const char *file, int line);
void is_str_at(const char *got, const char *expected, const char *expr, const char *file, int line);
void is_int_at(long long got, long long expected, const char *expr, const char *file, int line);

/**
 * Prints a "# ..." diagnostic line at the current nesting level.
 */
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/**
 * Runs `cb` as a nested TAP subtest; the subtest counts as one test of the enclosing level, failed if any of its tests
 * failed.
 */
void subtest(const char *name, void (*cb)(void));

/**
 * Prints the plan ("1..N") of the current level. Returns 0 when every test passed, 1 otherwise: main returns it.
 */
int done_testing(void);

/* helpers shared by the test files */

/**
 * Creates a file under /tmp holding `content` and writes its path into `path` (at least 32 bytes). The caller unlinks
 * it.
 */
void make_temp_file(char *path, size_t pathsz, const char *content);

/**
 * Reads the file at `path` (relative to the source tree) whole into a malloc'd buffer with a NUL after its `*len`
 * bytes; NULL when it cannot be opened. The caller frees it.
 */
char *read_whole_file(const char *path, size_t *len);

/**
 * Fills `names` with the names of the files in `dir` (dot files left out), sorted, at most `max`; returns how many.
 * Each name is malloc'd: the caller frees them.
 */
size_t list_fixtures(const char *dir, char **names, size_t max);

/**
 * Starts sending stderr (where pgw_log writes) to a temporary file; stderr_capture_end restores it and returns what
 * was written, NUL-terminated and truncated to bufsz - 1 bytes.
 */
void stderr_capture_begin(void);
const char *stderr_capture_end(char *buf, size_t bufsz);

#endif
