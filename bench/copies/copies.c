/* poe-gateway: MIT licence. Counts the copies of request bodies that a process makes: an LD_PRELOAD shim for the
 * benchmark (bench/run.mjs, section `copies`; bench/README.md, "Copies of the request body").
 *
 * How it attributes. The benchmark sends bodies whose text is a marker (PGW_COPIES_MARK, 16 bytes that occur nowhere
 * else) repeated: the bytes of the body are then recognisable wherever they go. The shim defines the C library's
 * copying functions (memcpy, memmove, mempcpy, their _FORTIFY_SOURCE forms __*_chk, and realloc), which the program
 * and every shared library it loads (libh2o, libcurl, nghttp2, OpenSSL, yajl) reach through their PLT; each call passes
 * on to the C library's own definition (dlsym RTLD_NEXT), and a copy of 64 bytes or more first has its source searched
 * for the marker. Every whole marker found counts 16 bytes of body copied, to the shared object that made the call
 * (dladdr of the return address): so the figure is "bytes of body moved from one place of memory to another", and what
 * only reads the body (a parser, a hash, a send from the buffer it lies in) costs nothing. realloc counts when it
 * moves the block: its source is searched before the call (the old block is gone after).
 *
 * What it does not see: copies inside the C library itself (glibc calls its own memcpy directly), copies written as
 * loops or inlined by the compiler (a memcpy of a constant size under 64 bytes never matters here), and the kernel's.
 * A marker cut by the edge of a copy is not counted, so a body copied in pieces of n bytes is undercounted by up to
 * 16/n (0.2% for 8 KB pieces).
 *
 * The counts go to PGW_COPIES_OUT, a file the benchmark creates (at least sizeof(struct copies_file) bytes), mapped
 * shared: the benchmark reads it before and after each scenario while the process runs. Without the two variables the
 * shim only passes calls on.
 *
 * Build: cc -O2 -shared -fPIC -o copies.so copies.c -ldl (bench/lib.mjs, buildCopies).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MARK_LEN 16
#define MIN_COPY 64
#define MAX_LIBS 30
#define NAME_LEN 48
#define MAGIC 0x31736569706f63ULL /* "copies1" */

/* The file's layout (little-endian, what bench/run.mjs reads): a header, then one slot per shared object seen. */
struct copies_file {
    uint64_t magic;
    uint64_t num_libs;
    struct {
        char name[NAME_LEN]; /* the object's file name, without its directory */
        uint64_t marks;      /* markers copied by its calls */
        uint64_t copies;     /* calls that copied at least one marker */
        uint64_t largest;    /* the largest such call, in markers */
    } libs[MAX_LIBS];
};

static struct copies_file *out;
static char mark[MARK_LEN];
static void *(*real_memcpy)(void *, const void *, size_t);
static void *(*real_memmove)(void *, const void *, size_t);
static void *(*real_mempcpy)(void *, const void *, size_t);
static void *(*real_realloc)(void *, size_t);
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static __thread int busy; /* inside the shim's own bookkeeping: calls made from there are not counted */

/* before the real functions are known (dlsym itself may copy) */
static void *bytewise(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (d < s) {
        for (size_t i = 0; i != n; ++i)
            d[i] = s[i];
    } else {
        for (size_t i = n; i != 0; --i)
            d[i - 1] = s[i - 1];
    }
    return dst;
}

__attribute__((constructor)) static void init(void)
{
    busy = 1;
    *(void **)&real_memcpy = dlsym(RTLD_NEXT, "memcpy");
    *(void **)&real_memmove = dlsym(RTLD_NEXT, "memmove");
    *(void **)&real_mempcpy = dlsym(RTLD_NEXT, "mempcpy");
    *(void **)&real_realloc = dlsym(RTLD_NEXT, "realloc");
    const char *path = getenv("PGW_COPIES_OUT"), *m = getenv("PGW_COPIES_MARK");
    if (path != NULL && m != NULL && strlen(m) == MARK_LEN) {
        int fd = open(path, O_RDWR);
        if (fd >= 0) {
            void *p = mmap(NULL, sizeof(*out), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            close(fd);
            if (p != MAP_FAILED) {
                bytewise(mark, m, MARK_LEN);
                out = p;
                out->magic = MAGIC;
            }
        }
    }
    busy = 0;
}

/* The markers wholly inside src[0..n). */
static uint64_t count_marks(const char *src, size_t n)
{
    uint64_t found = 0;
    const char *p = src, *end = src + n, *hit;
    while ((size_t)(end - p) >= MARK_LEN && (hit = memmem(p, end - p, mark, MARK_LEN)) != NULL) {
        ++found;
        p = hit + MARK_LEN;
    }
    return found;
}

static void note(uint64_t marks, void *caller)
{
    Dl_info info;
    const char *name = "?";
    if (dladdr(caller, &info) != 0 && info.dli_fname != NULL) {
        name = strrchr(info.dli_fname, '/') != NULL ? strrchr(info.dli_fname, '/') + 1 : info.dli_fname;
        if (*name == '\0')
            name = "(program)";
    }
    pthread_mutex_lock(&lock);
    uint64_t i = 0;
    while (i != out->num_libs && strncmp(out->libs[i].name, name, NAME_LEN - 1) != 0)
        ++i;
    if (i == out->num_libs && i != MAX_LIBS - 1) {
        strncpy(out->libs[i].name, name, NAME_LEN - 1);
        ++out->num_libs;
    } else if (i == out->num_libs) {
        strncpy(out->libs[i].name, "(others)", NAME_LEN - 1); /* the last slot takes what does not fit */
        out->num_libs = MAX_LIBS;
    }
    out->libs[i].marks += marks;
    out->libs[i].copies += 1;
    if (marks > out->libs[i].largest)
        out->libs[i].largest = marks;
    pthread_mutex_unlock(&lock);
}

static inline void watch(const void *src, size_t n, void *caller)
{
    if (out == NULL || n < MIN_COPY || busy)
        return;
    busy = 1;
    uint64_t marks = count_marks(src, n);
    if (marks != 0)
        note(marks, caller);
    busy = 0;
}

#define CALLER __builtin_extract_return_addr(__builtin_return_address(0))

void *memcpy(void *dst, const void *src, size_t n)
{
    watch(src, n, CALLER);
    return real_memcpy != NULL ? real_memcpy(dst, src, n) : bytewise(dst, src, n);
}

void *memmove(void *dst, const void *src, size_t n)
{
    watch(src, n, CALLER);
    return real_memmove != NULL ? real_memmove(dst, src, n) : bytewise(dst, src, n);
}

void *mempcpy(void *dst, const void *src, size_t n)
{
    watch(src, n, CALLER);
    return real_mempcpy != NULL ? real_mempcpy(dst, src, n) : (char *)bytewise(dst, src, n) + n;
}

void *__memcpy_chk(void *dst, const void *src, size_t n, size_t dstlen)
{
    if (n > dstlen)
        abort();
    watch(src, n, CALLER);
    return real_memcpy != NULL ? real_memcpy(dst, src, n) : bytewise(dst, src, n);
}

void *__memmove_chk(void *dst, const void *src, size_t n, size_t dstlen)
{
    if (n > dstlen)
        abort();
    watch(src, n, CALLER);
    return real_memmove != NULL ? real_memmove(dst, src, n) : bytewise(dst, src, n);
}

void *__mempcpy_chk(void *dst, const void *src, size_t n, size_t dstlen)
{
    if (n > dstlen)
        abort();
    watch(src, n, CALLER);
    return real_mempcpy != NULL ? real_mempcpy(dst, src, n) : (char *)bytewise(dst, src, n) + n;
}

void *realloc(void *p, size_t n)
{
    if (real_realloc == NULL) /* dlsym has not answered yet: nothing of the program's runs this early */
        *(void **)&real_realloc = dlsym(RTLD_NEXT, "realloc");
    uint64_t marks = 0;
    if (p != NULL && out != NULL && !busy && n >= MIN_COPY) {
        busy = 1;
        size_t old = malloc_usable_size(p);
        marks = count_marks(p, old < n ? old : n);
        busy = 0;
    }
    void *q = real_realloc(p, n);
    if (marks != 0 && q != NULL && q != p) {
        busy = 1;
        note(marks, CALLER);
        busy = 0;
    }
    return q;
}
