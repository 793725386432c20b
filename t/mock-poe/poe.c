/* poe-gateway: MIT licence. The mock's default answers, shaped like Poe: catalog, chat/completions, messages, count_tokens. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "plan.h"
#include "poe.h"

#define MODULE_NAME "mock-poe/poe"

/* The catalog served at GET /v1/models (docs/peers.md#poes-catalog), and the source of each model's declared parameters. */
static const char catalog_json[] =
    "{\"object\":\"list\",\"data\":["
    "{\"id\":\"claude-sonnet-4.5\",\"object\":\"model\",\"created\":1759161600000,\"owned_by\":\"Anthropic\","
    "\"root\":\"claude-sonnet-4.5\",\"description\":\"Anthropic's Claude Sonnet 4.5 (mock catalog entry).\","
    "\"architecture\":{\"input_modalities\":[\"text\",\"image\"],\"output_modalities\":[\"text\"],\"modality\":\"text,"
    "image->text\"},\"supported_features\":[\"web_search\",\"tools\"],\"supported_endpoints\":[\"/v1/messages\","
    "\"/v1/chat/completions\"],\"pricing\":{\"prompt\":\"0.0000026\",\"completion\":\"0.000013\",\"image\":null,"
    "\"request\":null,\"input_cache_read\":\"0.00000026\",\"input_cache_write\":\"0.0000033\"},"
    "\"context_window\":{\"context_length\":200000,\"max_output_tokens\":32768},"
    "\"metadata\":{\"display_name\":\"Claude-Sonnet-4.5\",\"url\":\"https://poe.com/Claude-Sonnet-4.5\","
    "\"image\":{\"url\":\"https://example.invalid/claude-sonnet-4.5.png\",\"width\":512,\"height\":512}},"
    "\"reasoning\":{\"budget\":{\"min_tokens\":0,\"max_tokens\":31999},\"required\":false,"
    "\"supports_reasoning_effort\":false},\"parameters\":[{\"name\":\"thinking_budget\","
    "\"schema\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":31999},\"default_value\":0,"
    "\"description\":\"Extended thinking budget in tokens (0 disables thinking).\"},{\"name\":\"web_search\","
    "\"schema\":{\"type\":\"boolean\"},\"default_value\":false,\"description\":\"Let the model search the web.\"}]},"
    "{\"id\":\"claude-haiku-4.5\",\"object\":\"model\",\"created\":1760572800000,\"owned_by\":\"Anthropic\","
    "\"root\":\"claude-haiku-4.5\",\"description\":\"Anthropic's Claude Haiku 4.5 (mock catalog entry).\","
    "\"architecture\":{\"input_modalities\":[\"text\",\"image\"],\"output_modalities\":[\"text\"],\"modality\":\"text,"
    "image->text\"},\"supported_features\":[\"web_search\",\"tools\"],\"supported_endpoints\":[\"/v1/messages\","
    "\"/v1/chat/completions\"],\"pricing\":{\"prompt\":\"0.00000085\",\"completion\":\"0.0000043\",\"image\":null,"
    "\"request\":null,\"input_cache_read\":\"0.000000085\",\"input_cache_write\":\"0.0000011\"},"
    "\"context_window\":{\"context_length\":200000,\"max_output_tokens\":64000},"
    "\"metadata\":{\"display_name\":\"Claude-Haiku-4.5\",\"url\":\"https://poe.com/Claude-Haiku-4.5\","
    "\"image\":{\"url\":\"https://example.invalid/claude-haiku-4.5.png\",\"width\":512,\"height\":512}},"
    "\"reasoning\":{\"budget\":{\"min_tokens\":0,\"max_tokens\":63999},\"required\":false,"
    "\"supports_reasoning_effort\":false},\"parameters\":[{\"name\":\"thinking_budget\","
    "\"schema\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":63999},\"default_value\":0,"
    "\"description\":\"Extended thinking budget in tokens (0 disables thinking).\"},{\"name\":\"web_search\","
    "\"schema\":{\"type\":\"boolean\"},\"default_value\":false,\"description\":\"Let the model search the web.\"}]},"
    "{\"id\":\"claude-opus-4.5\",\"object\":\"model\",\"created\":1763942400000,\"owned_by\":\"Anthropic\","
    "\"root\":\"claude-opus-4.5\",\"description\":\"Anthropic's Claude Opus 4.5 (mock catalog entry).\","
    "\"architecture\":{\"input_modalities\":[\"text\",\"image\"],\"output_modalities\":[\"text\"],\"modality\":\"text,"
    "image->text\"},\"supported_features\":[\"web_search\",\"tools\"],\"supported_endpoints\":[\"/v1/messages\","
    "\"/v1/chat/completions\"],\"pricing\":{\"prompt\":\"0.0000043\",\"completion\":\"0.000021\",\"image\":null,"
    "\"request\":null,\"input_cache_read\":\"0.00000043\",\"input_cache_write\":\"0.0000054\"},"
    "\"context_window\":{\"context_length\":200000,\"max_output_tokens\":64000},"
    "\"metadata\":{\"display_name\":\"Claude-Opus-4.5\",\"url\":\"https://poe.com/Claude-Opus-4.5\","
    "\"image\":{\"url\":\"https://example.invalid/claude-opus-4.5.png\",\"width\":512,\"height\":512}},"
    "\"reasoning\":{\"budget\":{\"min_tokens\":0,\"max_tokens\":63999},\"required\":false,"
    "\"supports_reasoning_effort\":true},\"parameters\":[{\"name\":\"thinking_budget\","
    "\"schema\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":63999},\"default_value\":0,"
    "\"description\":\"Extended thinking budget in tokens (0 disables thinking).\"},{\"name\":\"output_effort\","
    "\"schema\":{\"type\":\"string\",\"enum\":[\"low\",\"medium\",\"high\"]},\"default_value\":\"high\","
    "\"description\":\"How much effort the model spends on its answer.\"},{\"name\":\"web_search\","
    "\"schema\":{\"type\":\"boolean\"},\"default_value\":false,\"description\":\"Let the model search the web.\"}]},"
    "{\"id\":\"claude-sonnet-4.6\",\"object\":\"model\",\"created\":1771286400000,\"owned_by\":\"Anthropic\","
    "\"root\":\"claude-sonnet-4.6\",\"description\":\"Anthropic's Claude Sonnet 4.6 (mock catalog entry).\","
    "\"architecture\":{\"input_modalities\":[\"text\",\"image\"],\"output_modalities\":[\"text\"],\"modality\":\"text,"
    "image->text\"},\"supported_features\":[\"web_search\",\"tools\"],\"supported_endpoints\":[\"/v1/messages\","
    "\"/v1/chat/completions\"],\"pricing\":{\"prompt\":\"0.0000026\",\"completion\":\"0.000013\",\"image\":null,"
    "\"request\":null,\"input_cache_read\":\"0.00000026\",\"input_cache_write\":\"0.0000033\"},"
    "\"context_window\":{\"context_length\":200000,\"max_output_tokens\":128000},"
    "\"metadata\":{\"display_name\":\"Claude-Sonnet-4.6\",\"url\":\"https://poe.com/Claude-Sonnet-4.6\","
    "\"image\":{\"url\":\"https://example.invalid/claude-sonnet-4.6.png\",\"width\":512,\"height\":512}},"
    "\"reasoning\":{\"budget\":null,\"required\":false,\"supports_reasoning_effort\":true},"
    "\"parameters\":[{\"name\":\"output_effort\",\"schema\":{\"type\":\"string\",\"enum\":[\"none\",\"low\",\"medium\",\"high\",\"max\"]},"
    "\"default_value\":\"high\",\"description\":\"How much effort the model spends on its answer.\"},"
    "{\"name\":\"web_search\",\"schema\":{\"type\":\"boolean\"},\"default_value\":false,"
    "\"description\":\"Let the model search the web.\"}]},"
    "{\"id\":\"claude-opus-4.8\",\"object\":\"model\",\"created\":1780272000000,\"owned_by\":\"Anthropic\","
    "\"root\":\"claude-opus-4.8\",\"description\":\"Anthropic's Claude Opus 4.8 (mock catalog entry).\","
    "\"architecture\":{\"input_modalities\":[\"text\",\"image\"],\"output_modalities\":[\"text\"],\"modality\":\"text,"
    "image->text\"},\"supported_features\":[\"web_search\",\"tools\"],\"supported_endpoints\":[\"/v1/messages\","
    "\"/v1/chat/completions\"],\"pricing\":{\"prompt\":\"0.0000043\",\"completion\":\"0.000021\",\"image\":null,"
    "\"request\":null,\"input_cache_read\":\"0.00000043\",\"input_cache_write\":\"0.0000054\"},"
    "\"context_window\":{\"context_length\":200000,\"max_output_tokens\":128000},"
    "\"metadata\":{\"display_name\":\"Claude-Opus-4.8\",\"url\":\"https://poe.com/Claude-Opus-4.8\","
    "\"image\":{\"url\":\"https://example.invalid/claude-opus-4.8.png\",\"width\":512,\"height\":512}},"
    "\"reasoning\":{\"budget\":null,\"required\":false,\"supports_reasoning_effort\":true},"
    "\"parameters\":[{\"name\":\"output_effort\",\"schema\":{\"type\":\"string\",\"enum\":[\"none\",\"low\",\"medium\",\"high\",\"xhigh\",\"max\"]},"
    "\"default_value\":\"high\",\"description\":\"How much effort the model spends on its answer.\"},"
    "{\"name\":\"web_search\",\"schema\":{\"type\":\"boolean\"},\"default_value\":false,"
    "\"description\":\"Let the model search the web.\"}]},"
    "{\"id\":\"gpt-5\",\"object\":\"model\",\"created\":1754524800000,\"owned_by\":\"OpenAI\",\"root\":\"gpt-5\","
    "\"description\":\"OpenAI's GPT-5 (mock catalog entry).\",\"architecture\":{\"input_modalities\":[\"text\","
    "\"image\"],\"output_modalities\":[\"text\"],\"modality\":\"text,image->text\"},"
    "\"supported_features\":[\"web_search\",\"tools\"],\"supported_endpoints\":[\"/v1/responses\","
    "\"/v1/chat/completions\"],\"pricing\":{\"prompt\":\"0.0000011\",\"completion\":\"0.0000090\",\"image\":null,"
    "\"request\":null,\"input_cache_read\":\"0.00000011\",\"input_cache_write\":null},"
    "\"context_window\":{\"context_length\":400000,\"max_output_tokens\":128000},"
    "\"metadata\":{\"display_name\":\"GPT-5\",\"url\":\"https://poe.com/GPT-5\","
    "\"image\":{\"url\":\"https://example.invalid/gpt-5.png\",\"width\":512,\"height\":512}},"
    "\"reasoning\":{\"budget\":null,\"required\":true,\"supports_reasoning_effort\":true},"
    "\"parameters\":[{\"name\":\"reasoning_effort\",\"schema\":{\"type\":\"string\",\"enum\":[\"minimal\",\"low\","
    "\"medium\",\"high\"]},\"default_value\":\"minimal\",\"description\":\"Reasoning effort.\"},"
    "{\"name\":\"websearch_reasoning_effort\",\"schema\":{\"type\":\"string\",\"enum\":[\"low\",\"medium\",\"high\"]},"
    "\"default_value\":\"low\",\"description\":\"Reasoning effort when searching the web.\"},{\"name\":\"web_search\","
    "\"schema\":{\"type\":\"boolean\"},\"default_value\":false,\"description\":\"Let the model search the web.\"}]},"
    "{\"id\":\"gemini-2.5-pro\",\"object\":\"model\",\"created\":1750118400000,\"owned_by\":\"Google\","
    "\"root\":\"gemini-2.5-pro\",\"description\":\"Google's Gemini 2.5 Pro (mock catalog entry).\","
    "\"architecture\":{\"input_modalities\":[\"text\",\"image\",\"video\",\"audio\"],\"output_modalities\":[\"text\"],"
    "\"modality\":\"text,image,video,audio->text\"},\"supported_features\":[\"web_search\",\"tools\"],"
    "\"supported_endpoints\":[\"/v1/chat/completions\"],\"pricing\":{\"prompt\":\"0.00000087\","
    "\"completion\":\"0.0000070\",\"image\":null,\"request\":null,\"input_cache_read\":null,"
    "\"input_cache_write\":null},\"context_window\":{\"context_length\":1065000,\"max_output_tokens\":65536},"
    "\"metadata\":{\"display_name\":\"Gemini-2.5-Pro\",\"url\":\"https://poe.com/Gemini-2.5-Pro\","
    "\"image\":{\"url\":\"https://example.invalid/gemini-2.5-pro.png\",\"width\":512,\"height\":512}},"
    "\"reasoning\":{\"budget\":{\"min_tokens\":128,\"max_tokens\":32768},\"required\":true,"
    "\"supports_reasoning_effort\":false},\"parameters\":[{\"name\":\"thinking_budget\","
    "\"schema\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":32768},\"default_value\":8192,"
    "\"description\":\"Thinking budget in tokens.\"},{\"name\":\"web_search\",\"schema\":{\"type\":\"boolean\"},"
    "\"default_value\":false,\"description\":\"Let the model search the web.\"}]},"
    "{\"id\":\"grok-4\",\"object\":\"model\",\"created\":1752105600000,\"owned_by\":\"XAI\",\"root\":\"grok-4\","
    "\"description\":\"xAI's Grok 4, declaring no custom parameters (mock catalog entry).\","
    "\"architecture\":{\"input_modalities\":[\"text\",\"image\"],\"output_modalities\":[\"text\"],\"modality\":\"text,"
    "image->text\"},\"supported_features\":[\"tools\"],\"supported_endpoints\":[\"/v1/chat/completions\"],"
    "\"pricing\":{\"prompt\":\"0.0000030\",\"completion\":\"0.000015\",\"image\":null,\"request\":null,"
    "\"input_cache_read\":null,\"input_cache_write\":null},\"context_window\":{\"context_length\":256000,"
    "\"max_output_tokens\":null},\"metadata\":{\"display_name\":\"Grok-4\",\"url\":\"https://poe.com/Grok-4\","
    "\"image\":{\"url\":\"https://example.invalid/grok-4.png\",\"width\":512,\"height\":512}},\"reasoning\":null,"
    "\"parameters\":[]}"
    "]}";

/* Top-level chat/completions keys Poe's strict validation always accepts; the model's declared parameters come on top. */
static const char *const chat_standard_keys[] = {
    "model", "messages", "max_tokens",  "max_completion_tokens", "stream", "stream_options", "temperature", "top_p",
    "stop",  "tools",    "tool_choice", "parallel_tool_calls",   "n",      "user",           NULL};

static const char *api_key;
static yajl_val catalog;
/* The account /usage/current_balance and /usage/points_history describe (POST /_mock/account sets it). */
static long long balance = 1000000;
static yajl_val history; /* an array of entries, newest first, as Poe sends them; NULL: none */

static yajl_val catalog_find(const char *model)
{
    yajl_val data = mock_json_get(catalog, "data");
    for (size_t i = 0; YAJL_IS_ARRAY(data) && i != data->u.array.len; ++i) {
        const char *id = YAJL_GET_STRING(mock_json_get(data->u.array.values[i], "id"));
        if (id != NULL && strcasecmp(id, model) == 0)
            return data->u.array.values[i];
    }
    return NULL;
}

static int catalog_declares(yajl_val entry, const char *name)
{
    yajl_val params = mock_json_get(entry, "parameters");
    for (size_t i = 0; YAJL_IS_ARRAY(params) && i != params->u.array.len; ++i) {
        const char *n = YAJL_GET_STRING(mock_json_get(params->u.array.values[i], "name"));
        if (n != NULL && strcmp(n, name) == 0)
            return 1;
    }
    return 0;
}

/* Poe's chat/completions error envelope (docs/peers.md#poes-errors). */
static void poe_error(mock_resp_t *resp, int status, const char *type, const char *message, const char *param)
{
    yajl_gen g = mock_gen_new();
    yajl_gen_map_open(g);
    mock_gen_str(g, "error");
    yajl_gen_map_open(g);
    mock_gen_kv_int(g, "code", status);
    mock_gen_kv_str(g, "type", type);
    mock_gen_kv_str(g, "message", message);
    if (param != NULL)
        mock_gen_kv_str(g, "param", param);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    mock_resp_json(resp, status, mock_gen_finish(g, &resp->req->pool));
}

/* Anthropic-shaped error, as /v1/messages answers. */
static void anthropic_error(mock_resp_t *resp, int status, const char *type, const char *message)
{
    yajl_gen g = mock_gen_new();
    yajl_gen_map_open(g);
    mock_gen_kv_str(g, "type", "error");
    mock_gen_str(g, "error");
    yajl_gen_map_open(g);
    mock_gen_kv_str(g, "type", type);
    mock_gen_kv_str(g, "message", message);
    yajl_gen_map_close(g);
    mock_gen_kv_str(g, "request_id", "req_poe_mock");
    yajl_gen_map_close(g);
    mock_resp_json(resp, status, mock_gen_finish(g, &resp->req->pool));
}

static h2o_iovec_t header_value(h2o_req_t *req, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    return i == -1 ? h2o_iovec_init(NULL, 0) : req->headers.entries[i].value;
}

static int bearer_ok(h2o_req_t *req)
{
    h2o_iovec_t v = header_value(req, "authorization");
    size_t keylen = strlen(api_key);
    return v.len == 7 + keylen && strncasecmp(v.base, "bearer ", 7) == 0 && memcmp(v.base + 7, api_key, keylen) == 0;
}

static int x_api_key_ok(h2o_req_t *req)
{
    h2o_iovec_t v = header_value(req, "x-api-key");
    return v.base != NULL && mock_iovec_is(v, api_key);
}

/* Default, Poe-shaped behaviour */

static void buf_append(h2o_buffer_t **buf, const char *s, size_t len)
{
    h2o_iovec_t dst = h2o_buffer_reserve(buf, len);
    memcpy(dst.base, s, len);
    (*buf)->size += len;
}

/* "mock reply to: " and the text of the last user message: string content, or its text parts joined with "\n". */
static h2o_iovec_t reply_text(h2o_mem_pool_t *pool, yajl_val messages)
{
    static const char prefix[] = "mock reply to: ";
    yajl_val last = NULL, content;
    h2o_buffer_t *buf;
    int first = 1;

    for (size_t i = 0; YAJL_IS_ARRAY(messages) && i != messages->u.array.len; ++i) {
        const char *role = YAJL_GET_STRING(mock_json_get(messages->u.array.values[i], "role"));
        if (role != NULL && strcmp(role, "user") == 0)
            last = messages->u.array.values[i];
    }
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);
    buf_append(&buf, prefix, sizeof(prefix) - 1);
    content = mock_json_get(last, "content");
    if (YAJL_IS_STRING(content)) {
        buf_append(&buf, content->u.string, strlen(content->u.string));
    } else if (YAJL_IS_ARRAY(content)) {
        for (size_t i = 0; i != content->u.array.len; ++i) {
            yajl_val part = content->u.array.values[i];
            const char *type = YAJL_GET_STRING(mock_json_get(part, "type")), *text = YAJL_GET_STRING(mock_json_get(part, "text"));
            if (type == NULL || strcmp(type, "text") != 0 || text == NULL)
                continue;
            if (!first)
                buf_append(&buf, "\n", 1);
            buf_append(&buf, text, strlen(text));
            first = 0;
        }
    }
    h2o_iovec_t ret = h2o_strdup(pool, buf->bytes, buf->size);
    h2o_buffer_dispose(&buf);
    return ret;
}

/* Splits text into three pieces at UTF-8 character boundaries (some may be empty for very short text). */
static void split3(h2o_iovec_t text, h2o_iovec_t parts[3])
{
    size_t cut[4] = {0, text.len / 3, text.len * 2 / 3, text.len};

    for (size_t i = 1; i != 3; ++i) {
        if (cut[i] < cut[i - 1])
            cut[i] = cut[i - 1];
        while (cut[i] < text.len && ((unsigned char)text.base[cut[i]] & 0xc0) == 0x80)
            ++cut[i];
    }
    for (size_t i = 0; i != 3; ++i)
        parts[i] = h2o_iovec_init(text.base + cut[i], cut[i + 1] - cut[i]);
}

static long long token_estimate(size_t len)
{
    return len / 4 == 0 ? 1 : (long long)(len / 4);
}

static h2o_iovec_t sse_data(h2o_mem_pool_t *pool, yajl_gen g)
{
    h2o_iovec_t json = mock_gen_finish(g, pool);
    return mock_pool_printf(pool, "data: %.*s\n\n", (int)json.len, json.base);
}

static h2o_iovec_t sse_event(h2o_mem_pool_t *pool, const char *name, yajl_gen g)
{
    h2o_iovec_t json = mock_gen_finish(g, pool);
    return mock_pool_printf(pool, "event: %s\ndata: %.*s\n\n", name, (int)json.len, json.base);
}

/* Opens a chat.completion.chunk object, up to and including the "choices" key. */
static yajl_gen chat_chunk_open(h2o_iovec_t id, long long created, const char *model)
{
    yajl_gen g = mock_gen_new();
    yajl_gen_map_open(g);
    mock_gen_str(g, "id");
    mock_gen_strn(g, id.base, id.len);
    mock_gen_kv_str(g, "object", "chat.completion.chunk");
    mock_gen_kv_int(g, "created", created);
    mock_gen_kv_str(g, "model", model);
    mock_gen_str(g, "choices");
    return g;
}

/*
 * The pages a searching answer cites, as OpenAI-compatible APIs report them: url_citation annotations on the message (or
 * on a stream's delta), each with the span of the text it supports. The mock's "search" finds these two for any query.
 */
static const struct {
    const char *url, *title;
} mock_search_results[] = {
    {"https://search.example/results/1", "Mock search result 1"},
    {"https://search.example/results/2", "Mock search result 2"},
};

static void gen_annotations(yajl_gen g, size_t text_len)
{
    size_t n = sizeof(mock_search_results) / sizeof(mock_search_results[0]);
    mock_gen_str(g, "annotations");
    yajl_gen_array_open(g);
    for (size_t i = 0; i != n; ++i) {
        yajl_gen_map_open(g);
        mock_gen_kv_str(g, "type", "url_citation");
        mock_gen_str(g, "url_citation");
        yajl_gen_map_open(g);
        mock_gen_kv_str(g, "url", mock_search_results[i].url);
        mock_gen_kv_str(g, "title", mock_search_results[i].title);
        mock_gen_kv_int(g, "start_index", (long long)(text_len * i / n));
        mock_gen_kv_int(g, "end_index", (long long)(text_len * (i + 1) / n));
        yajl_gen_map_close(g);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
}

/* One choice chunk: delta with an optional role, optional content and its annotations (the whole text's length, or
 * SIZE_MAX for none), and the finish reason or null. */
static h2o_iovec_t chat_chunk(h2o_mem_pool_t *pool, h2o_iovec_t id, long long created, const char *model, const char *role,
                              const h2o_iovec_t *content, size_t annotated_len, const char *finish_reason)
{
    yajl_gen g = chat_chunk_open(id, created, model);
    yajl_gen_array_open(g);
    yajl_gen_map_open(g);
    mock_gen_kv_int(g, "index", 0);
    mock_gen_str(g, "delta");
    yajl_gen_map_open(g);
    if (role != NULL)
        mock_gen_kv_str(g, "role", role);
    if (content != NULL) {
        mock_gen_str(g, "content");
        mock_gen_strn(g, content->base, content->len);
    }
    if (annotated_len != SIZE_MAX)
        gen_annotations(g, annotated_len);
    yajl_gen_map_close(g);
    if (finish_reason != NULL) {
        mock_gen_kv_str(g, "finish_reason", finish_reason);
    } else {
        mock_gen_kv_null(g, "finish_reason");
    }
    yajl_gen_map_close(g);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    return sse_data(pool, g);
}

static void gen_chat_usage(yajl_gen g, long long prompt, long long completion)
{
    mock_gen_str(g, "usage");
    yajl_gen_map_open(g);
    mock_gen_kv_int(g, "prompt_tokens", prompt);
    mock_gen_kv_int(g, "completion_tokens", completion);
    mock_gen_kv_int(g, "total_tokens", prompt + completion);
    yajl_gen_map_close(g);
}

static void chat_completions(mock_resp_t *resp, uint64_t seq)
{
    h2o_req_t *req = resp->req;
    h2o_mem_pool_t *pool = &req->pool;
    yajl_val body = NULL, model, messages, entry;

    if (!bearer_ok(req)) {
        poe_error(resp, 401, "authentication_error", "Invalid API key", NULL);
        goto Exit;
    }
    body = mock_parse_body(req);
    if (!YAJL_IS_OBJECT(body)) {
        poe_error(resp, 400, "invalid_request_error", "Request body must be a JSON object", NULL);
        goto Exit;
    }
    if (!YAJL_IS_STRING(model = mock_json_get(body, "model"))) {
        poe_error(resp, 400, "invalid_request_error", "Missing required parameter: 'model'", "model");
        goto Exit;
    }
    if (!YAJL_IS_ARRAY(messages = mock_json_get(body, "messages"))) {
        poe_error(resp, 400, "invalid_request_error", "Missing required parameter: 'messages'", "messages");
        goto Exit;
    }
    if ((entry = catalog_find(model->u.string)) == NULL) {
        h2o_iovec_t msg = mock_pool_printf(pool, "Model '%s' not found", model->u.string);
        poe_error(resp, 404, "not_found_error", msg.base, "model");
        goto Exit;
    }
    /* Strict validation: standard keys plus the parameters the catalog declares for this model
     * (docs/peers.md#strict-validation). */
    for (size_t i = 0; i != body->u.object.len; ++i) {
        const char *key = body->u.object.keys[i];
        size_t j;
        for (j = 0; chat_standard_keys[j] != NULL; ++j)
            if (strcmp(chat_standard_keys[j], key) == 0)
                break;
        if (chat_standard_keys[j] == NULL && !catalog_declares(entry, key)) {
            h2o_iovec_t msg = mock_pool_printf(pool, "Unrecognized request argument supplied: %s", key);
            poe_error(resp, 400, "invalid_request_error", msg.base, h2o_strdup(pool, key, strlen(key)).base);
            goto Exit;
        }
    }

    h2o_iovec_t text = reply_text(pool, messages), id = mock_pool_printf(pool, "chatcmpl-mock%" PRIu64, seq);
    const char *model_name = h2o_strdup(pool, model->u.string, strlen(model->u.string)).base;
    long long created = (long long)(mock_now_ms() / 1000), prompt_tokens = token_estimate(req->entity.len),
              completion_tokens = token_estimate(text.len);
    yajl_val stream_options = mock_json_get(body, "stream_options");
    /* a bot asked to search (its web_search knob) cites what it found */
    int searched = YAJL_IS_TRUE(mock_json_get(body, "web_search"));

    mock_resp_header(resp, "x-request-id", mock_pool_printf(pool, "req_poe_mock%" PRIu64, seq));
    if (YAJL_IS_TRUE(mock_json_get(body, "stream"))) {
        h2o_iovec_t parts[3];
        mock_resp_header(resp, "content-type", h2o_iovec_init(H2O_STRLIT("text/event-stream")));
        mock_resp_header(resp, "cache-control", h2o_iovec_init(H2O_STRLIT("no-cache")));
        mock_resp_chunk(resp, chat_chunk(pool, id, created, model_name, "assistant", NULL, SIZE_MAX, NULL));
        split3(text, parts);
        /* annotations come with the last piece of the text they annotate */
        for (size_t i = 0; i != 3; ++i) {
            size_t annotated = searched && i == 2 ? text.len : SIZE_MAX;
            mock_resp_chunk(resp, chat_chunk(pool, id, created, model_name, NULL, parts + i, annotated, NULL));
        }
        mock_resp_chunk(resp, chat_chunk(pool, id, created, model_name, NULL, NULL, SIZE_MAX, "stop"));
        if (YAJL_IS_TRUE(mock_json_get(stream_options, "include_usage"))) {
            yajl_gen g = chat_chunk_open(id, created, model_name);
            yajl_gen_array_open(g);
            yajl_gen_array_close(g);
            gen_chat_usage(g, prompt_tokens, completion_tokens);
            yajl_gen_map_close(g);
            mock_resp_chunk(resp, sse_data(pool, g));
        }
        mock_resp_chunk(resp, h2o_iovec_init(H2O_STRLIT("data: [DONE]\n\n")));
    } else {
        yajl_gen g = mock_gen_new();
        yajl_gen_map_open(g);
        mock_gen_str(g, "id");
        mock_gen_strn(g, id.base, id.len);
        mock_gen_kv_str(g, "object", "chat.completion");
        mock_gen_kv_int(g, "created", created);
        mock_gen_kv_str(g, "model", model_name);
        mock_gen_str(g, "choices");
        yajl_gen_array_open(g);
        yajl_gen_map_open(g);
        mock_gen_kv_int(g, "index", 0);
        mock_gen_str(g, "message");
        yajl_gen_map_open(g);
        mock_gen_kv_str(g, "role", "assistant");
        mock_gen_str(g, "content");
        mock_gen_strn(g, text.base, text.len);
        if (searched)
            gen_annotations(g, text.len);
        yajl_gen_map_close(g);
        mock_gen_kv_str(g, "finish_reason", "stop");
        yajl_gen_map_close(g);
        yajl_gen_array_close(g);
        gen_chat_usage(g, prompt_tokens, completion_tokens);
        yajl_gen_map_close(g);
        mock_resp_json(resp, 200, mock_gen_finish(g, pool));
    }

Exit:
    if (body != NULL)
        yajl_tree_free(body);
}

static void gen_anthropic_usage(yajl_gen g, long long input_tokens, long long output_tokens)
{
    mock_gen_str(g, "usage");
    yajl_gen_map_open(g);
    mock_gen_kv_int(g, "input_tokens", input_tokens);
    mock_gen_kv_int(g, "output_tokens", output_tokens);
    mock_gen_kv_int(g, "cache_read_input_tokens", 0);
    mock_gen_kv_int(g, "cache_creation_input_tokens", 0);
    yajl_gen_map_close(g);
}

/* The message object; `text` NULL gives the empty content and null stop_reason of message_start. */
static void gen_anthropic_message(yajl_gen g, h2o_iovec_t id, const char *model, const h2o_iovec_t *text, long long input_tokens,
                                  long long output_tokens)
{
    yajl_gen_map_open(g);
    mock_gen_str(g, "id");
    mock_gen_strn(g, id.base, id.len);
    mock_gen_kv_str(g, "type", "message");
    mock_gen_kv_str(g, "role", "assistant");
    mock_gen_kv_str(g, "model", model);
    mock_gen_str(g, "content");
    yajl_gen_array_open(g);
    if (text != NULL) {
        yajl_gen_map_open(g);
        mock_gen_kv_str(g, "type", "text");
        mock_gen_str(g, "text");
        mock_gen_strn(g, text->base, text->len);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    if (text != NULL) {
        mock_gen_kv_str(g, "stop_reason", "end_turn");
    } else {
        mock_gen_kv_null(g, "stop_reason");
    }
    mock_gen_kv_null(g, "stop_sequence");
    gen_anthropic_usage(g, input_tokens, output_tokens);
    yajl_gen_map_close(g);
}

static int messages_auth_ok(h2o_req_t *req)
{
    return x_api_key_ok(req) || bearer_ok(req);
}

static void messages(mock_resp_t *resp, uint64_t seq)
{
    h2o_req_t *req = resp->req;
    h2o_mem_pool_t *pool = &req->pool;
    yajl_val body = NULL, model;

    mock_resp_header(resp, "request-id", mock_pool_printf(pool, "req_poe_mock%" PRIu64, seq));
    mock_resp_header(resp, "anthropic-ratelimit-requests-limit", h2o_iovec_init(H2O_STRLIT("500")));
    mock_resp_header(resp, "anthropic-ratelimit-requests-remaining", h2o_iovec_init(H2O_STRLIT("499")));
    if (!messages_auth_ok(req)) {
        anthropic_error(resp, 401, "authentication_error", "invalid x-api-key");
        goto Exit;
    }
    if (header_value(req, "anthropic-version").base == NULL) {
        anthropic_error(resp, 400, "invalid_request_error", "anthropic-version: header is required");
        goto Exit;
    }
    body = mock_parse_body(req);
    if (!YAJL_IS_OBJECT(body)) {
        anthropic_error(resp, 400, "invalid_request_error", "There was an error parsing the body of your request");
        goto Exit;
    }
    if (!YAJL_IS_STRING(model = mock_json_get(body, "model"))) {
        anthropic_error(resp, 400, "invalid_request_error", "model: Field required");
        goto Exit;
    }
    if (!YAJL_IS_ARRAY(mock_json_get(body, "messages"))) {
        anthropic_error(resp, 400, "invalid_request_error", "messages: Field required");
        goto Exit;
    }
    if (!YAJL_IS_INTEGER(mock_json_get(body, "max_tokens"))) {
        anthropic_error(resp, 400, "invalid_request_error", "max_tokens: Field required");
        goto Exit;
    }

    h2o_iovec_t text = reply_text(pool, mock_json_get(body, "messages")), id = mock_pool_printf(pool, "msg_mock%" PRIu64, seq);
    const char *model_name = h2o_strdup(pool, model->u.string, strlen(model->u.string)).base;
    long long input_tokens = token_estimate(req->entity.len), output_tokens = token_estimate(text.len);
    yajl_gen g;

    if (YAJL_IS_TRUE(mock_json_get(body, "stream"))) {
        h2o_iovec_t parts[3];
        mock_resp_header(resp, "content-type", h2o_iovec_init(H2O_STRLIT("text/event-stream")));
        mock_resp_header(resp, "cache-control", h2o_iovec_init(H2O_STRLIT("no-cache")));

        g = mock_gen_new();
        yajl_gen_map_open(g);
        mock_gen_kv_str(g, "type", "message_start");
        mock_gen_str(g, "message");
        gen_anthropic_message(g, id, model_name, NULL, input_tokens, 1);
        yajl_gen_map_close(g);
        mock_resp_chunk(resp, sse_event(pool, "message_start", g));

        g = mock_gen_new();
        yajl_gen_map_open(g);
        mock_gen_kv_str(g, "type", "content_block_start");
        mock_gen_kv_int(g, "index", 0);
        mock_gen_str(g, "content_block");
        yajl_gen_map_open(g);
        mock_gen_kv_str(g, "type", "text");
        mock_gen_kv_str(g, "text", "");
        yajl_gen_map_close(g);
        yajl_gen_map_close(g);
        mock_resp_chunk(resp, sse_event(pool, "content_block_start", g));

        mock_resp_chunk(resp, h2o_iovec_init(H2O_STRLIT("event: ping\ndata: {\"type\":\"ping\"}\n\n")));

        split3(text, parts);
        for (size_t i = 0; i != 3; ++i) {
            g = mock_gen_new();
            yajl_gen_map_open(g);
            mock_gen_kv_str(g, "type", "content_block_delta");
            mock_gen_kv_int(g, "index", 0);
            mock_gen_str(g, "delta");
            yajl_gen_map_open(g);
            mock_gen_kv_str(g, "type", "text_delta");
            mock_gen_str(g, "text");
            mock_gen_strn(g, parts[i].base, parts[i].len);
            yajl_gen_map_close(g);
            yajl_gen_map_close(g);
            mock_resp_chunk(resp, sse_event(pool, "content_block_delta", g));
        }

        mock_resp_chunk(
            resp, h2o_iovec_init(H2O_STRLIT("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n")));

        g = mock_gen_new();
        yajl_gen_map_open(g);
        mock_gen_kv_str(g, "type", "message_delta");
        mock_gen_str(g, "delta");
        yajl_gen_map_open(g);
        mock_gen_kv_str(g, "stop_reason", "end_turn");
        mock_gen_kv_null(g, "stop_sequence");
        yajl_gen_map_close(g);
        gen_anthropic_usage(g, input_tokens, output_tokens);
        yajl_gen_map_close(g);
        mock_resp_chunk(resp, sse_event(pool, "message_delta", g));

        mock_resp_chunk(resp, h2o_iovec_init(H2O_STRLIT("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")));
    } else {
        g = mock_gen_new();
        gen_anthropic_message(g, id, model_name, &text, input_tokens, output_tokens);
        mock_resp_json(resp, 200, mock_gen_finish(g, pool));
    }

Exit:
    if (body != NULL)
        yajl_tree_free(body);
}

static void count_tokens(mock_resp_t *resp, uint64_t seq)
{
    h2o_req_t *req = resp->req;

    mock_resp_header(resp, "request-id", mock_pool_printf(&req->pool, "req_poe_mock%" PRIu64, seq));
    if (!messages_auth_ok(req)) {
        anthropic_error(resp, 401, "authentication_error", "invalid x-api-key");
        return;
    }
    mock_resp_json(resp, 200, mock_pool_printf(&req->pool, "{\"input_tokens\":%lld}", token_estimate(req->entity.len)));
}

/* The value of query parameter `name`, NUL-terminated in the pool, or NULL. */
static const char *query_param(h2o_req_t *req, const char *name)
{
    if (req->query_at == SIZE_MAX)
        return NULL;
    size_t nlen = strlen(name);
    const char *p = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    while (p < end) {
        const char *amp = memchr(p, '&', end - p), *stop = amp != NULL ? amp : end;
        if ((size_t)(stop - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=')
            return mock_pool_printf(&req->pool, "%.*s", (int)(stop - p - nlen - 1), p + nlen + 1).base;
        p = stop + 1;
    }
    return NULL;
}

/* GET /usage/points_history: the account's entries, newest first, `limit` (1..100, default 20) from after `starting_after`. */
static void points_history(mock_resp_t *resp)
{
    h2o_req_t *req = resp->req;
    const char *limit_s = query_param(req, "limit"), *after = query_param(req, "starting_after");
    long limit = limit_s != NULL ? strtol(limit_s, NULL, 10) : 20;
    size_t start = 0, n = YAJL_IS_ARRAY(history) ? history->u.array.len : 0;

    if (limit < 1 || limit > 100) {
        poe_error(resp, 400, "invalid_request_error", "limit must be between 1 and 100", "limit");
        return;
    }
    if (after != NULL) {
        for (start = 0; start != n; ++start) {
            const char *q = YAJL_GET_STRING(mock_json_get(history->u.array.values[start], "query_id"));
            if (q != NULL && strcmp(q, after) == 0)
                break;
        }
        start = start == n ? n : start + 1;
    }
    size_t end = start + (size_t)limit < n ? start + (size_t)limit : n;
    yajl_gen g = mock_gen_new();
    yajl_gen_map_open(g);
    mock_gen_str(g, "has_more");
    yajl_gen_bool(g, end < n);
    mock_gen_kv_int(g, "length", (long long)(end - start));
    mock_gen_str(g, "data");
    yajl_gen_array_open(g);
    for (size_t i = start; i != end; ++i) {
        yajl_val e = history->u.array.values[i];
        yajl_gen_map_open(g);
        for (size_t k = 0; YAJL_IS_OBJECT(e) && k != e->u.object.len; ++k) {
            yajl_val v = e->u.object.values[k];
            mock_gen_str(g, e->u.object.keys[k]);
            if (YAJL_IS_STRING(v))
                mock_gen_str(g, v->u.string);
            else if (YAJL_IS_NUMBER(v))
                yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
            else
                yajl_gen_null(g);
        }
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    mock_resp_json(resp, 200, mock_gen_finish(g, &req->pool));
}

int mock_poe_set_account(yajl_val body)
{
    yajl_val b = mock_json_get(body, "balance"), h = mock_json_get(body, "history");
    if ((b != NULL && !YAJL_IS_INTEGER(b)) || (h != NULL && !YAJL_IS_ARRAY(h)))
        return -1;
    if (b != NULL)
        balance = YAJL_GET_INTEGER(b);
    if (h != NULL) {
        /* keep a copy: the request's tree goes with the request */
        yajl_gen g = mock_gen_new();
        h2o_mem_pool_t pool;
        h2o_mem_init_pool(&pool);
        yajl_gen_array_open(g);
        for (size_t i = 0; i != h->u.array.len; ++i) {
            yajl_val e = h->u.array.values[i];
            yajl_gen_map_open(g);
            for (size_t k = 0; YAJL_IS_OBJECT(e) && k != e->u.object.len; ++k) {
                yajl_val v = e->u.object.values[k];
                mock_gen_str(g, e->u.object.keys[k]);
                if (YAJL_IS_STRING(v))
                    mock_gen_str(g, v->u.string);
                else if (YAJL_IS_NUMBER(v))
                    yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
                else
                    yajl_gen_null(g);
            }
            yajl_gen_map_close(g);
        }
        yajl_gen_array_close(g);
        h2o_iovec_t text = mock_gen_finish(g, &pool);
        yajl_tree_free(history);
        history = yajl_tree_parse(text.base, NULL, 0);
        h2o_mem_clear_pool(&pool);
    }
    return 0;
}

void mock_poe_respond(mock_resp_t *resp, h2o_iovec_t path, uint64_t seq)
{
    h2o_req_t *req = resp->req;
    int is_get = mock_iovec_is(req->method, "GET"), is_post = mock_iovec_is(req->method, "POST");

    if (is_get && mock_iovec_is(path, "/v1/models")) {
        mock_resp_json(resp, 200, h2o_iovec_init(catalog_json, sizeof(catalog_json) - 1));
    } else if (is_post && mock_iovec_is(path, "/v1/chat/completions")) {
        chat_completions(resp, seq);
    } else if (is_post && mock_iovec_is(path, "/v1/messages/count_tokens")) {
        count_tokens(resp, seq);
    } else if (is_post && mock_iovec_is(path, "/v1/messages")) {
        messages(resp, seq);
    } else if (is_get && mock_iovec_is(path, "/usage/current_balance")) {
        if (bearer_ok(req)) {
            mock_resp_json(resp, 200, mock_pool_printf(&req->pool, "{\"current_point_balance\":%lld}", balance));
        } else {
            poe_error(resp, 401, "authentication_error", "Invalid API key", NULL);
        }
    } else if (is_get && mock_iovec_is(path, "/usage/points_history")) {
        if (bearer_ok(req))
            points_history(resp);
        else
            poe_error(resp, 401, "authentication_error", "Invalid API key", NULL);
    } else {
        h2o_iovec_t msg =
            mock_pool_printf(&req->pool, "Not found: %.*s %.*s", (int)req->method.len, req->method.base, (int)path.len, path.base);
        poe_error(resp, 404, "not_found_error", msg.base, NULL);
    }
}

void mock_poe_init(const char *key)
{
    api_key = key;
    if ((catalog = yajl_tree_parse(catalog_json, NULL, 0)) == NULL)
        h2o_fatal("the built-in catalog is not valid JSON");
}

void mock_poe_dispose(void)
{
    yajl_tree_free(history);
    history = NULL;
    yajl_tree_free(catalog);
    catalog = NULL;
}
