/* poe-gateway: MIT licence. The state replicas share through Redis: each Poe key's shaped rate with fair lanes, the rpm
 * limits of keys and routes, Poe's 429 pauses, and the count of replicas alive.
 *
 * How it works. Every decision is one Lua script, run by Redis atomically, on Redis's clock (TIME), so replicas with
 * skewed clocks still share one bucket: one round trip per decision, and nothing for Redis to keep but a few small
 * hashes per Poe key (docs/threading.md#shared-state-across-replicas says why this over leases of tokens).
 *
 * SHAPE is the Poe key's token bucket (the same arithmetic as src/common/ratelimit.c: `burst` at once, refilled at
 * `rpm` a minute, nothing before `blocked`) plus fairness across replicas: each call names the caller's waiting
 * developers; Redis keeps who waits (a sorted set of names by when they last asked, forgotten after 2 s of silence)
 * and when each was last served (a hash). A token goes to the waiting developer served longest ago; a caller without
 * that developer gets one only if two or more are there (one stays for the developer whose turn it is), else it is told
 * to come back when the next one will be. So a burst queued on replica A takes turns with a developer queued on replica
 * B, as lanes take turns within one worker (src/serve/shaper.c).
 *
 * LIMITS takes a token from each rpm bucket named (a key's and a route's), all or none. BLOCK records Poe's 429 pause.
 * HEARTBEAT adds this process to a sorted set by time, drops those silent for 5 s, and counts the rest: the number the
 * local share divides by when Redis goes away.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <h2o/memory.h>
#include "common/log.h"
#include "serve/shared.h"

#define MODULE_NAME "shared"
#define HEARTBEAT_MS 1000
#define HEARTBEAT_STALE_MS 5000

atomic_uint pgw_shared_replicas = 1;

#define NOW_MS                                                                                                                     \
    "local t = redis.call('TIME')\n"                                                                                               \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/* KEYS: bucket, waiting, served. ARGV: rpm, burst, lanes... Returns {lane index or -1, wait ms}. */
static const char shape_lua[] =
    NOW_MS "local per_ms, cap = tonumber(ARGV[1]) / 60000, tonumber(ARGV[2])\n"
           "local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'blocked')\n"
           "local tokens, ts, blocked = tonumber(b[1]) or cap, tonumber(b[2]) or now, tonumber(b[3]) or 0\n"
           "if tokens > cap then tokens = cap end\n"
           "if now > ts then tokens = math.min(cap, tokens + (now - ts) * per_ms); ts = now end\n"
           "for i = 3, #ARGV do redis.call('ZADD', KEYS[2], now, ARGV[i]) end\n"
           "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 2000)\n"
           "redis.call('PEXPIRE', KEYS[2], 60000)\n"
           "local function save()\n"
           "  redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', ts)\n"
           "  redis.call('PEXPIRE', KEYS[1], 3600000)\n"
           "end\n"
           "if now < blocked then save() return {-1, blocked - now} end\n"
           "if tokens < 1 then save() return {-1, math.ceil((1 - tokens) / per_ms)} end\n"
           "local best_at\n"
           "for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do\n"
           "  local at = tonumber(redis.call('HGET', KEYS[3], m)) or 0\n"
           "  if best_at == nil or at < best_at then best_at = at end\n"
           "end\n"
           "local mine, mine_at\n"
           "for i = 3, #ARGV do\n"
           "  local at = tonumber(redis.call('HGET', KEYS[3], ARGV[i])) or 0\n"
           "  if mine_at == nil or at < mine_at then mine, mine_at = i, at end\n"
           "end\n"
           "if mine == nil or (mine_at > best_at and tokens < 2) then\n"
           "  save() return {-1, math.max(1, math.ceil((2 - tokens) / per_ms))}\n"
           "end\n"
           "tokens = tokens - 1\n"
           "save()\n"
           "redis.call('HSET', KEYS[3], ARGV[mine], now)\n"
           "redis.call('PEXPIRE', KEYS[3], 3600000)\n"
           "redis.call('ZREM', KEYS[2], ARGV[mine])\n"
           "return {mine - 3, 0}\n";

/* KEYS: the limits' buckets. ARGV: their rpm. Returns {0, 0} when each gave a token, else {the 1-based refuser, wait}. */
static const char limits_lua[] = NOW_MS "local took = {}\n"
                                        "for i = 1, #KEYS do\n"
                                        "  local rpm = tonumber(ARGV[i])\n"
                                        "  local per_ms = rpm / 60000\n"
                                        "  local b = redis.call('HMGET', KEYS[i], 'tokens', 'ts')\n"
                                        "  local tokens, ts = tonumber(b[1]) or rpm, tonumber(b[2]) or now\n"
                                        "  if tokens > rpm then tokens = rpm end\n"
                                        "  if now > ts then tokens = math.min(rpm, tokens + (now - ts) * per_ms) end\n"
                                        "  if tokens < 1 then return {i, math.ceil((1 - tokens) / per_ms)} end\n"
                                        "  took[i] = tokens - 1\n"
                                        "end\n"
                                        "for i = 1, #KEYS do\n"
                                        "  redis.call('HSET', KEYS[i], 'tokens', took[i], 'ts', now)\n"
                                        "  redis.call('PEXPIRE', KEYS[i], 3600000)\n"
                                        "end\n"
                                        "return {0, 0}\n";

/* KEYS: the Poe key's bucket. ARGV: ms. */
static const char block_lua[] = NOW_MS "local until_ms = now + tonumber(ARGV[1])\n"
                                       "local cur = tonumber(redis.call('HGET', KEYS[1], 'blocked')) or 0\n"
                                       "if until_ms > cur then\n"
                                       "  redis.call('HSET', KEYS[1], 'blocked', until_ms, 'tokens', 0, 'ts', now)\n"
                                       "  redis.call('PEXPIRE', KEYS[1], 3600000)\n"
                                       "end\n"
                                       "return 0\n";

/* KEYS: the replicas' set. ARGV: this process, ms until one is forgotten. Returns how many are alive. */
static const char heartbeat_lua[] = NOW_MS "redis.call('ZADD', KEYS[1], now, ARGV[1])\n"
                                           "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))\n"
                                           "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                                           "return redis.call('ZCARD', KEYS[1])\n";

const char *const pgw_shared_scripts[] = {shape_lua, limits_lua, block_lua, heartbeat_lua, NULL};

static pthread_once_t shas_once = PTHREAD_ONCE_INIT;
static char shape_sha[41], limits_sha[41], block_sha[41], heartbeat_sha[41];

static void make_shas(void)
{
    pgw_redis_script_sha(shape_lua, shape_sha);
    pgw_redis_script_sha(limits_lua, limits_sha);
    pgw_redis_script_sha(block_lua, block_sha);
    pgw_redis_script_sha(heartbeat_lua, heartbeat_sha);
}

/* The Poe key's name in Redis: a prefix of its SHA-256 (the key itself never leaves the process). */
static void key_name(char *out, size_t size, const unsigned char *digest, const char *what)
{
    char hex[33];
    for (size_t i = 0; i != 16; ++i)
        snprintf(hex + i * 2, 3, "%02x", digest[i]);
    snprintf(out, size, "pgw:{%s}:%s", hex, what);
}

struct ask {
    pgw_shared_cb cb;
    void *data;
};

/* {index, wait} from SHAPE or LIMITS, else "no answer". */
static void on_answer(void *p, redisReply *reply)
{
    struct ask *a = p;
    pgw_shared_cb cb = a->cb;
    void *data = a->data;
    free(a);
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER || reply->element[1]->type != REDIS_REPLY_INTEGER) {
        if (reply != NULL)
            pgw_log_warn(MODULE_NAME, "unexpected answer from Redis (type %d%s%s); deciding locally", reply->type,
                         reply->type == REDIS_REPLY_ERROR ? ": " : "", reply->type == REDIS_REPLY_ERROR ? reply->str : "");
        cb(data, 0, -1, 0);
        return;
    }
    long long index = reply->element[0]->integer, wait = reply->element[1]->integer;
    cb(data, 1, (int)index, wait > 0 ? (uint64_t)wait : 0);
}

static int eval(pgw_redis_t *r, const char *sha, int argc, const char **argv, pgw_redis_cb cb, void *data)
{
    pthread_once(&shas_once, make_shas);
    argv[0] = "EVALSHA";
    argv[1] = sha;
    return pgw_redis_command(r, argc, argv, NULL, cb, data);
}

static int ask(pgw_redis_t *r, const char *sha, int argc, const char **argv, pgw_shared_cb cb, void *data)
{
    struct ask *a = h2o_mem_alloc(sizeof(*a));
    a->cb = cb;
    a->data = data;
    if (eval(r, sha, argc, argv, on_answer, a) != 0) {
        free(a);
        return -1;
    }
    return 0;
}

int pgw_shared_shape(pgw_redis_t *r, const unsigned char *digest, int rpm, int burst, const char *const *lanes, size_t num_lanes,
                     pgw_shared_cb cb, void *data)
{
    char bucket[64], waiting[64], served[64], rpm_s[16], burst_s[16];
    const char *argv[8 + PGW_SHARED_MAX_LANES];
    int argc = 0;

    if (!pgw_redis_up(r))
        return -1;
    if (num_lanes > PGW_SHARED_MAX_LANES)
        num_lanes = PGW_SHARED_MAX_LANES;
    key_name(bucket, sizeof(bucket), digest, "bucket");
    key_name(waiting, sizeof(waiting), digest, "waiting");
    key_name(served, sizeof(served), digest, "served");
    snprintf(rpm_s, sizeof(rpm_s), "%d", rpm);
    snprintf(burst_s, sizeof(burst_s), "%d", burst > 0 ? burst : rpm);
    argc = 2;
    argv[argc++] = "3";
    argv[argc++] = bucket;
    argv[argc++] = waiting;
    argv[argc++] = served;
    argv[argc++] = rpm_s;
    argv[argc++] = burst_s;
    for (size_t i = 0; i != num_lanes; ++i)
        argv[argc++] = lanes[i];
    return ask(r, shape_sha, argc, argv, cb, data);
}

int pgw_shared_limits(pgw_redis_t *r, const char *const *names, const int *rpms, size_t n, pgw_shared_cb cb, void *data)
{
    char keys[2][192], rpm_s[2][16], num[4];
    const char *argv[3 + 4];
    int argc = 2;

    if (!pgw_redis_up(r) || n == 0 || n > 2)
        return -1;
    snprintf(num, sizeof(num), "%zu", n);
    argv[argc++] = num;
    for (size_t i = 0; i != n; ++i) {
        snprintf(keys[i], sizeof(keys[i]), "pgw:limit:%s", names[i]);
        argv[argc++] = keys[i];
    }
    for (size_t i = 0; i != n; ++i) {
        snprintf(rpm_s[i], sizeof(rpm_s[i]), "%d", rpms[i]);
        argv[argc++] = rpm_s[i];
    }
    return ask(r, limits_sha, argc, argv, cb, data);
}

void pgw_shared_block(pgw_redis_t *r, const unsigned char *digest, uint64_t ms)
{
    char bucket[64], ms_s[24];
    const char *argv[5];
    if (!pgw_redis_up(r))
        return;
    key_name(bucket, sizeof(bucket), digest, "bucket");
    snprintf(ms_s, sizeof(ms_s), "%llu", (unsigned long long)ms);
    argv[2] = "1";
    argv[3] = bucket;
    argv[4] = ms_s;
    eval(r, block_sha, 5, argv, NULL, NULL);
}

/* the heartbeat */

static struct {
    uv_timer_t timer;
    pgw_redis_t *redis;
    char id[160]; /* host name, process id and start time: one per process */
} heartbeat;

static void on_heartbeat_answer(void *data, redisReply *reply)
{
    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER && reply->integer >= 1)
        atomic_store(&pgw_shared_replicas, (unsigned)reply->integer);
}

static void on_heartbeat(uv_timer_t *t)
{
    char stale[16];
    const char *argv[6];
    snprintf(stale, sizeof(stale), "%d", HEARTBEAT_STALE_MS);
    argv[2] = "1";
    argv[3] = "pgw:replicas";
    argv[4] = heartbeat.id;
    argv[5] = stale;
    eval(heartbeat.redis, heartbeat_sha, 6, argv, on_heartbeat_answer, NULL);
}

void pgw_shared_heartbeat_start(uv_loop_t *loop, pgw_redis_t *r)
{
    char host[64] = "";
    if (r == NULL)
        return;
    gethostname(host, sizeof(host) - 1);
    heartbeat.redis = r;
    snprintf(heartbeat.id, sizeof(heartbeat.id), "%s:%d:%llu", host, (int)getpid(), (unsigned long long)uv_hrtime());
    uv_timer_init(loop, &heartbeat.timer);
    uv_unref((uv_handle_t *)&heartbeat.timer);
    uv_timer_start(&heartbeat.timer, on_heartbeat, 0, HEARTBEAT_MS);
}
