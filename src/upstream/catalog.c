/* poe-gateway: MIT licence. Poe's model catalog (GET /v1/models): each bot's names, declared knobs, output limit and
 * features, fetched at start and every hour, shared read-only by the workers; `doctor` reads a catalog the same way.
 *
 * The catalog is small and read once an hour, so it is parsed as a yajl tree into an immutable snapshot. Workers take a
 * reference to the current snapshot per request (a mutex guards only the pointer swap); a refresh publishes a new
 * snapshot and drops the registry's reference to the old one, which goes when its last request ends.
 */
#include <assert.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_tree.h>
#include <h2o/socket.h>
#include "common/json.h"
#include "common/log.h"
#include "upstream/catalog.h"

#define MODULE_NAME "catalog"
#define MAX_CATALOG_BYTES (16 * 1024 * 1024)

/* What the catalog says of a bot beyond what the translator reads (pgw_bot_t). */
struct bot_listing {
    char *display_name; /* or NULL */
    char **features;    /* supported_features */
    size_t num_features;
};

struct st_pgw_catalog_t {
    atomic_size_t refs;
    uint64_t serial; /* distinct for every snapshot the process parses */
    pgw_bot_t *bots;
    struct bot_listing *listings; /* parallel to bots */
    size_t num_bots;
};

static const char *tree_string(yajl_val v, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val s = yajl_tree_get(v, path, yajl_t_string);
    return s != NULL ? s->u.string : NULL;
}

/* One pricing field: Poe writes the USD amounts as strings ("0.0000026"); a number is taken too, null or absent is -1. */
static double price_field(yajl_val pricing, const char *name)
{
    const char *path[] = {name, NULL};
    yajl_val v = pricing != NULL ? yajl_tree_get(pricing, path, yajl_t_any) : NULL;
    char *end;
    double d;
    if (v == NULL)
        return -1;
    if (YAJL_IS_NUMBER(v))
        return YAJL_GET_DOUBLE(v) >= 0 ? YAJL_GET_DOUBLE(v) : -1;
    if (!YAJL_IS_STRING(v) || *v->u.string == '\0')
        return -1;
    d = strtod(v->u.string, &end);
    return *end == '\0' && d >= 0 && d < 1e6 ? d : -1;
}

static void parse_price(yajl_val model, pgw_price_t *price)
{
    const char *path[] = {"pricing", NULL};
    yajl_val pricing = yajl_tree_get(model, path, yajl_t_object);
    price->prompt = price_field(pricing, "prompt");
    price->completion = price_field(pricing, "completion");
    price->cache_read = price_field(pricing, "input_cache_read");
    price->cache_write = price_field(pricing, "input_cache_write");
    price->request = price_field(pricing, "request");
}

static void parse_knob(yajl_val param, pgw_knob_t *knob)
{
    const char *schema_path[] = {"schema", NULL};
    yajl_val schema = yajl_tree_get(param, schema_path, yajl_t_object);
    knob->type = PGW_KNOB_OTHER;
    knob->min = LLONG_MIN;
    knob->max = LLONG_MAX;
    if (schema == NULL)
        return;
    const char *enum_path[] = {"enum", NULL};
    yajl_val values = yajl_tree_get(schema, enum_path, yajl_t_array);
    const char *type = tree_string(schema, "type");
    if (values != NULL) {
        knob->type = PGW_KNOB_ENUM;
        knob->values = h2o_mem_alloc(sizeof(char *) * (values->u.array.len + 1));
        for (size_t i = 0; i != values->u.array.len; ++i)
            if (YAJL_IS_STRING(values->u.array.values[i]))
                knob->values[knob->num_values++] = strdup(values->u.array.values[i]->u.string);
    } else if (type != NULL && (strcmp(type, "integer") == 0 || strcmp(type, "number") == 0)) {
        knob->type = PGW_KNOB_INTEGER;
        const char *min_path[] = {"minimum", NULL}, *max_path[] = {"maximum", NULL};
        yajl_val min = yajl_tree_get(schema, min_path, yajl_t_number), max = yajl_tree_get(schema, max_path, yajl_t_number);
        if (min != NULL)
            knob->min = (long long)YAJL_GET_DOUBLE(min);
        if (max != NULL)
            knob->max = (long long)YAJL_GET_DOUBLE(max);
    } else if (type != NULL && strcmp(type, "boolean") == 0) {
        knob->type = PGW_KNOB_BOOLEAN;
    }
}

pgw_catalog_t *pgw_catalog_parse(const char *json, size_t len, char *err, size_t errsz)
{
    char *text = h2o_mem_alloc(len + 1), yerr[256];
    memcpy(text, json, len);
    text[len] = '\0';
    yajl_val root = yajl_tree_parse(text, yerr, sizeof(yerr));
    free(text);
    if (root == NULL) {
        snprintf(err, errsz, "not JSON: %s", yerr);
        return NULL;
    }
    const char *data_path[] = {"data", NULL};
    yajl_val data = yajl_tree_get(root, data_path, yajl_t_array);
    if (data == NULL) {
        snprintf(err, errsz, "no \"data\" array");
        yajl_tree_free(root);
        return NULL;
    }

    pgw_catalog_t *c = h2o_mem_alloc(sizeof(*c));
    memset(c, 0, sizeof(*c));
    atomic_init(&c->refs, 1);
    static atomic_uint_fast64_t serials;
    c->serial = atomic_fetch_add(&serials, 1) + 1;
    c->bots = h2o_mem_alloc(sizeof(*c->bots) * (data->u.array.len + 1));
    c->listings = h2o_mem_alloc(sizeof(*c->listings) * (data->u.array.len + 1));
    for (size_t i = 0; i != data->u.array.len; ++i) {
        yajl_val m = data->u.array.values[i];
        const char *id = tree_string(m, "id");
        if (id == NULL)
            continue;
        pgw_bot_t *bot = c->bots + c->num_bots;
        struct bot_listing *listing = c->listings + c->num_bots;
        memset(bot, 0, sizeof(*bot));
        memset(listing, 0, sizeof(*listing));
        bot->id = strdup(id);
        const char *dn_path[] = {"metadata", "display_name", NULL}, *features_path[] = {"supported_features", NULL};
        yajl_val dn = yajl_tree_get(m, dn_path, yajl_t_string), features = yajl_tree_get(m, features_path, yajl_t_array);
        listing->display_name = dn != NULL ? strdup(dn->u.string) : NULL;
        if (features != NULL) {
            listing->features = h2o_mem_alloc(sizeof(char *) * (features->u.array.len + 1));
            for (size_t j = 0; j != features->u.array.len; ++j)
                if (YAJL_IS_STRING(features->u.array.values[j]))
                    listing->features[listing->num_features++] = strdup(features->u.array.values[j]->u.string);
        }
        const char *mot_path[] = {"context_window", "max_output_tokens", NULL};
        yajl_val mot = yajl_tree_get(m, mot_path, yajl_t_number);
        if (mot != NULL && YAJL_GET_DOUBLE(mot) > 0)
            bot->max_output_tokens = (long long)YAJL_GET_DOUBLE(mot);
        const char *cl_path[] = {"context_window", "context_length", NULL};
        yajl_val cl = yajl_tree_get(m, cl_path, yajl_t_number);
        if (cl != NULL && YAJL_GET_DOUBLE(cl) > 0)
            bot->context_length = (long long)YAJL_GET_DOUBLE(cl);
        parse_price(m, &bot->price);
        const char *params_path[] = {"parameters", NULL};
        yajl_val params = yajl_tree_get(m, params_path, yajl_t_array);
        if (params != NULL) {
            bot->knobs = h2o_mem_alloc(sizeof(*bot->knobs) * (params->u.array.len + 1));
            for (size_t j = 0; j != params->u.array.len; ++j) {
                const char *name = tree_string(params->u.array.values[j], "name");
                if (name == NULL)
                    continue;
                pgw_knob_t *knob = bot->knobs + bot->num_knobs++;
                memset(knob, 0, sizeof(*knob));
                knob->name = strdup(name);
                parse_knob(params->u.array.values[j], knob);
            }
        }
        ++c->num_bots;
    }
    yajl_tree_free(root);
    return c;
}

void pgw_catalog_retain(pgw_catalog_t *c)
{
    atomic_fetch_add(&c->refs, 1);
}

void pgw_catalog_release(pgw_catalog_t *c)
{
    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    for (size_t i = 0; i != c->num_bots; ++i) {
        pgw_bot_t *bot = c->bots + i;
        for (size_t j = 0; j != bot->num_knobs; ++j) {
            for (size_t k = 0; k != bot->knobs[j].num_values; ++k)
                free(bot->knobs[j].values[k]);
            free(bot->knobs[j].values);
            free(bot->knobs[j].name);
        }
        free(bot->knobs);
        free(bot->id);
        free(c->listings[i].display_name);
        for (size_t j = 0; j != c->listings[i].num_features; ++j)
            free(c->listings[i].features[j]);
        free(c->listings[i].features);
    }
    free(c->bots);
    free(c->listings);
    free(c);
}

uint64_t pgw_catalog_serial(const pgw_catalog_t *c)
{
    return c->serial;
}

size_t pgw_catalog_size(const pgw_catalog_t *c)
{
    return c->num_bots;
}

const pgw_bot_t *pgw_catalog_bot(const pgw_catalog_t *c, size_t i)
{
    assert(i < c->num_bots);
    return c->bots + i;
}

const pgw_bot_t *pgw_catalog_find(const pgw_catalog_t *c, const char *name, size_t len)
{
    for (size_t i = 0; i != c->num_bots; ++i)
        if (strlen(c->bots[i].id) == len && strncasecmp(c->bots[i].id, name, len) == 0)
            return c->bots + i;
    for (size_t i = 0; i != c->num_bots; ++i) {
        const char *dn = c->listings[i].display_name;
        if (dn != NULL && strlen(dn) == len && strncasecmp(dn, name, len) == 0)
            return c->bots + i;
    }
    return NULL;
}

const char *pgw_catalog_display_name(const pgw_catalog_t *c, const pgw_bot_t *bot)
{
    const char *dn = c->listings[bot - c->bots].display_name;
    return dn != NULL ? dn : bot->id;
}

int pgw_catalog_supports(const pgw_catalog_t *c, const pgw_bot_t *bot, const char *feature)
{
    const struct bot_listing *listing = c->listings + (bot - c->bots);
    for (size_t i = 0; i != listing->num_features; ++i)
        if (strcmp(listing->features[i], feature) == 0)
            return 1;
    return 0;
}

/* ---- the process-wide registry ---- */

struct registry_entry {
    char *url; /* the catalog's: what identifies the entry */
    pgw_catalog_t *current; /* guarded by registry_mutex */
    int ssl_verify;
    int h2c;
    h2o_buffer_t *body; /* the fetch in progress */
    uv_timer_t timer;
    pgw_upstream_t *up; /* set when fetching starts */
};

static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct registry_entry **registry; /* entries are never freed or moved: fetch callbacks hold them */
static size_t registry_size;

/* The catalog's URL for a route: an openai/ api_base ends in /v1 (or gets it), an anthropic/ one is the host. */
static char *catalog_url(const pgw_route_t *route)
{
    size_t len = strlen(route->api_base);
    int has_v1 = len >= 3 && strcmp(route->api_base + len - 3, "/v1") == 0;
    char *url = h2o_mem_alloc(len + sizeof("/v1/models"));
    sprintf(url, "%s%s", route->api_base, has_v1 ? "/models" : "/v1/models");
    return url;
}

size_t pgw_catalogs_init(const pgw_config_t *conf, int with_anthropic)
{
    size_t added = 0;
    pthread_mutex_lock(&registry_mutex);
    for (size_t i = 0; i != conf->num_routes; ++i) {
        const pgw_route_t *route = conf->routes + i;
        if ((route->kind != PGW_ROUTE_OPENAI && !with_anthropic) || route->api_base == NULL)
            continue;
        char *url = catalog_url(route);
        size_t j;
        for (j = 0; j != registry_size; ++j)
            if (strcmp(registry[j]->url, url) == 0)
                break;
        if (j != registry_size) {
            free(url);
            continue;
        }
        struct registry_entry *e = h2o_mem_alloc(sizeof(*e));
        memset(e, 0, sizeof(*e));
        e->url = url;
        e->ssl_verify = route->ssl_verify;
        e->h2c = route->h2c;
        registry = realloc(registry, sizeof(*registry) * (registry_size + 1));
        registry[registry_size++] = e;
        ++added;
    }
    pthread_mutex_unlock(&registry_mutex);
    return added;
}

static void fetch(struct registry_entry *e);

static void on_timer(uv_timer_t *timer)
{
    fetch(timer->data);
}

static void on_fetch_head(pgw_upstream_transfer_t *t, int status)
{
    struct registry_entry *e = pgw_upstream_data(t);
    if (status != 200) {
        pgw_log_warn(MODULE_NAME, "%s answered %d", e->url, status);
        pgw_upstream_cancel(t);
        uv_timer_start(&e->timer, on_timer, e->current != NULL ? PGW_CATALOG_REFRESH_MS : PGW_CATALOG_RETRY_MS, 0);
    }
}

static int on_fetch_body(pgw_upstream_transfer_t *t, const char *bytes, size_t len)
{
    struct registry_entry *e = pgw_upstream_data(t);
    if (e->body->size + len > MAX_CATALOG_BYTES)
        return 0; /* dropped: the parse will fail and say so */
    pgw_buf_append(&e->body, bytes, len);
    return 0;
}

static void on_fetch_complete(pgw_upstream_transfer_t *t, pgw_upstream_error_t err, const char *errstr)
{
    struct registry_entry *e = pgw_upstream_data(t);
    char msg[256];
    pgw_catalog_t *c = NULL;

    if (err != PGW_UPSTREAM_OK)
        pgw_log_warn(MODULE_NAME, "cannot fetch %s: %s", e->url, errstr);
    else if ((c = pgw_catalog_parse(e->body->bytes, e->body->size, msg, sizeof(msg))) == NULL)
        pgw_log_warn(MODULE_NAME, "%s: %s", e->url, msg);
    if (c != NULL) {
        pthread_mutex_lock(&registry_mutex);
        pgw_catalog_t *old = e->current;
        e->current = c;
        pthread_mutex_unlock(&registry_mutex);
        pgw_catalog_release(old);
        pgw_log_info(MODULE_NAME, "loaded %zu bots from %s", pgw_catalog_size(c), e->url);
    }
    e->body->size = 0;
    uv_timer_start(&e->timer, on_timer, e->current != NULL ? PGW_CATALOG_REFRESH_MS : PGW_CATALOG_RETRY_MS, 0);
}

static const pgw_upstream_callbacks_t fetch_callbacks = {on_fetch_head, on_fetch_body, on_fetch_complete};

static void fetch(struct registry_entry *e)
{
    /* Poe serves the catalog without a key: none is sent, so this never spends points */
    pgw_upstream_request_t req = {e->url, "GET", h2o_iovec_init(NULL, 0), NULL, 30, 30, 1, e->ssl_verify, e->h2c};
    e->body->size = 0;
    pgw_upstream_start(e->up, &req, &fetch_callbacks, e);
}

void pgw_catalogs_start(uv_loop_t *loop, pgw_upstream_t *up)
{
    /* the lock covers the walk (a reload may grow the array); fetch() never calls back before it returns */
    pthread_mutex_lock(&registry_mutex);
    for (size_t i = 0; i != registry_size; ++i) {
        struct registry_entry *e = registry[i];
        if (e->up != NULL)
            continue; /* already fetching (this is a reload) */
        e->up = up;
        h2o_buffer_init(&e->body, &h2o_socket_buffer_prototype);
        uv_timer_init(loop, &e->timer);
        e->timer.data = e;
        fetch(e);
    }
    pthread_mutex_unlock(&registry_mutex);
}

static pgw_catalog_t *get_by_url(const char *url)
{
    pgw_catalog_t *c = NULL;
    pthread_mutex_lock(&registry_mutex);
    for (size_t i = 0; i != registry_size; ++i) {
        if (strcmp(registry[i]->url, url) == 0) {
            if ((c = registry[i]->current) != NULL)
                pgw_catalog_retain(c);
            break;
        }
    }
    pthread_mutex_unlock(&registry_mutex);
    return c;
}

pgw_catalog_t *pgw_catalogs_get(const char *api_base)
{
    char buf[1024];
    size_t len = strlen(api_base);
    int has_v1 = len >= 3 && strcmp(api_base + len - 3, "/v1") == 0;
    if (len + sizeof("/v1/models") > sizeof(buf))
        return NULL; /* catalog_url would have made the same long URL: no route has one that long in practice */
    sprintf(buf, "%s%s", api_base, has_v1 ? "/models" : "/v1/models");
    return get_by_url(buf);
}

pgw_catalog_t *pgw_catalogs_get_for_route(const pgw_route_t *route)
{
    return route->api_base != NULL ? pgw_catalogs_get(route->api_base) : NULL;
}
