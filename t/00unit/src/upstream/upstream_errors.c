/* poe-gateway: MIT licence. Unit tests for src/upstream/upstream_errors.c: every row of the table in docs/errors.md#upstream-errors,
 * the message sources, the context-overflow rewrite, and what the routes answer to an error status. */
#include <string.h>
#include "../../../../src/upstream/upstream_errors.c"
#include "../../test.h"

static pgw_upstream_failure_t f;

static const pgw_upstream_failure_t *map(int status, const char *body)
{
    memset(&f, 0, sizeof(f));
    pgw_map_upstream_error(status, body, strlen(body), "gpt-5.4", NULL, &f);
    return &f;
}

#define POE(code, type, msg) "{\"error\":{\"code\":" code ",\"type\":\"" type "\",\"message\":\"" msg "\",\"metadata\":{}}}"

static void test_statuses(void)
{
    /* 400 and other 4xx: invalid_request_error; Poe's string code is appended when the message lacks it */
    map(400, "{\"error\":{\"message\":\"Model gpt-5.4 does not support tools\",\"type\":\"invalid_request_error\",\"param\":"
             "\"model\",\"code\":\"unsupported_feature_for_model\"}}");
    is_int(f.status, 400);
    is_str(f.type, "invalid_request_error");
    is_str(f.message, "Model gpt-5.4 does not support tools (unsupported_feature_for_model)");
    map(422, "{\"detail\":{\"message\":\"messages.3.role: unexpected value\"}}");
    is_int(f.status, 400);
    is_str(f.type, "invalid_request_error");
    is_str(f.message, "messages.3.role: unexpected value");

    /* 401: the gateway's own key, so 502 naming the route; never 401 */
    map(401, POE("401", "authentication_error", "Invalid API key"));
    is_int(f.status, 502);
    is_str(f.type, "api_error");
    is_str(f.message,
           "Poe refused the API key configured for route gpt-5.4; check the route's api_key (Poe said: Invalid API key)");

    map(402, POE("402", "insufficient_credits", "Insufficient points"));
    is_int(f.status, 402);
    is_str(f.type, "billing_error");
    ok(strncmp(f.message, "Poe points exhausted", 20) == 0);

    map(403, POE("403", "moderation_error", "Flagged by moderation"));
    is_int(f.status, 403);
    is_str(f.type, "permission_error");
    is_str(f.message, "Flagged by moderation");

    map(404, "{\"error\":{\"code\":\"model_not_found\",\"type\":\"not_found_error\",\"message\":\"Unknown bot\"}}");
    is_int(f.status, 404);
    is_str(f.type, "not_found_error");
    is_str(f.message, "Unknown bot (model_not_found)");

    map(408, POE("408", "timeout_error", "Model did not start in time"));
    is_int(f.status, 504);
    is_str(f.type, "timeout_error");
    map(504, "upstream timed out");
    is_int(f.status, 504);
    is_str(f.type, "timeout_error");

    map(413, POE("413", "request_too_large", "Request body too large"));
    is_int(f.status, 413);
    is_str(f.type, "request_too_large");

    map(429, POE("429", "rate_limit_error", "Too many requests"));
    is_int(f.status, 429);
    is_str(f.type, "rate_limit_error");
    is_str(f.message, "Too many requests");

    map(500, POE("500", "provider_error", "Provider failed"));
    is_int(f.status, 500);
    is_str(f.type, "api_error"); /* never Poe's type */
    map(501, "{}");
    is_int(f.status, 501);
    is_str(f.type, "api_error");
    map(502, POE("502", "upstream_error", "Bad upstream"));
    is_int(f.status, 502);
    is_str(f.type, "api_error");

    map(503, "");
    is_int(f.status, 529);
    is_str(f.type, "overloaded_error");
    is_str(f.message, "Poe answered HTTP 503 with no error message");
    map(529, POE("529", "overloaded_error", "Overloaded"));
    is_int(f.status, 529);
    is_str(f.type, "overloaded_error");

    /* odd statuses */
    map(302, "<html>moved</html>");
    is_int(f.status, 502);
    is_str(f.type, "api_error");
    map(600, "x");
    is_int(f.status, 502);
}

static void test_messages(void)
{
    /* sources in order: error.message, detail.message, message, Message, a bare string, the raw body */
    map(400, "{\"error\":{\"message\":\"first\"},\"detail\":{\"message\":\"second\"},\"message\":\"third\"}");
    is_str(f.message, "first");
    map(400, "{\"error\":{\"message\":\"\"},\"detail\":{\"message\":\"second\"},\"message\":\"third\"}");
    is_str(f.message, "second");
    map(400, "{\"message\":\"third\",\"Message\":\"fourth\"}");
    is_str(f.message, "third");
    map(400, "{\"Message\":\"fourth\"}");
    is_str(f.message, "fourth");
    map(400, "{\"error\":\"bare string\"}");
    is_str(f.message, "bare string");
    map(400, "{\"detail\":\"FastAPI detail\"}");
    is_str(f.message, "FastAPI detail");
    map(502, "<html>\n  <body>\n\n  Bad   Gateway</body></html>");
    is_str(f.message, "<html> <body> Bad Gateway</body></html>");

    /* a long raw body is cut to 200 bytes, never inside a UTF-8 character */
    char body[1024];
    memset(body, 'a', 199);
    strcpy(body + 199, "\xc3\xa9 tail");
    map(500, body);
    is_int(strlen(f.message), 199);
    /* a long message fits the 512-byte field, cut at a character boundary */
    char big[2048] = "{\"error\":{\"message\":\"";
    size_t n = strlen(big);
    for (size_t i = 0; i != 300; ++i, n += 2)
        memcpy(big + n, "\xc3\xa9", 2);
    strcpy(big + n, "\"}}");
    map(400, big);
    is_int(strlen(f.message), 510);

    /* an integer code that says more than the status is kept */
    map(500, "{\"error\":{\"code\":1234,\"message\":\"Provider said no\"}}");
    is_str(f.message, "Provider said no (code 1234)");
}

static void test_context_overflow(void)
{
    /* OpenAI's wording, in a 400 */
    map(400, "{\"error\":{\"message\":\"This model's maximum context length is 128000 tokens. However, your messages resulted in "
             "130532 tokens. Please reduce the length of the messages.\",\"type\":\"invalid_request_error\",\"code\":"
             "\"context_length_exceeded\"}}");
    is_int(f.status, 400);
    is_str(f.type, "invalid_request_error");
    is_str(f.message, "prompt is too long: 130532 tokens > 128000 maximum");
    /* vLLM's, with the completion counted apart */
    map(400, "{\"message\":\"This model's maximum context length is 32,768 tokens. However, you requested 40,000 tokens (35,904 in "
             "the messages, 4,096 in the completion).\"}");
    is_str(f.message, "prompt is too long: 35904 tokens > 32768 maximum");
    /* Poe's 413 "tokens > context window" */
    map(413, POE("413", "request_too_large", "Request has 250123 tokens > context window 200000"));
    is_int(f.status, 400);
    is_str(f.type, "invalid_request_error");
    is_str(f.message, "prompt is too long: 250123 tokens > 200000 maximum");
    /* Anthropic's own wording passes through */
    map(400, "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"prompt is too long: 210000 tokens > "
             "200000 maximum\"}}");
    is_str(f.message, "prompt is too long: 210000 tokens > 200000 maximum");
    /* Poe's 500 for an invalid request */
    map(500, POE("500", "provider_error", "Input exceeds the context window of this model"));
    is_int(f.status, 400);
    is_str(f.message, "prompt is too long: Input exceeds the context window of this model");
    /* the code alone is enough; without numbers the message is kept behind the marker */
    map(400, "{\"error\":{\"code\":\"context_length_exceeded\",\"message\":\"Too long\"}}");
    is_str(f.message, "prompt is too long: Too long (context_length_exceeded)");
    /* not an overflow: a 429 that mentions a context window stays a 429 */
    map(429, POE("429", "rate_limit_error", "Too many tokens in the context window per minute"));
    is_int(f.status, 429);
}

static void test_in_stream(void)
{
    /* an error object inside a 2xx body takes its status from the code, else the type */
    map(200, POE("429", "rate_limit_error", "Slow down"));
    is_int(f.status, 429);
    is_str(f.type, "rate_limit_error");
    is_str(f.message, "Slow down");
    map(200, "{\"error\":{\"type\":\"overloaded_error\",\"message\":\"Busy\"}}");
    is_int(f.status, 529);
    is_str(f.type, "overloaded_error");
    map(200, "{\"error\":{\"code\":\"503\",\"message\":\"Unavailable\"}}");
    is_int(f.status, 529);
    map(200, "{\"error\":{\"type\":\"provider_error\",\"message\":\"Boom\"}}");
    is_int(f.status, 500);
    is_str(f.type, "api_error");
    map(200, "{\"error\":{\"message\":\"Something\"}}");
    is_int(f.status, 502);
    is_str(f.type, "api_error");
    map(200, "{\"error\":{\"type\":\"insufficient_credits\",\"message\":\"No points\"}}");
    is_int(f.status, 402);
    is_str(f.type, "billing_error");
    map(200, "{\"error\":{\"code\":\"context_length_exceeded\",\"message\":\"This model's maximum context length is 1000 tokens. "
             "However, your messages resulted in 1001 tokens.\"}}");
    is_int(f.status, 400);
    is_str(f.message, "prompt is too long: 1001 tokens > 1000 maximum");
    /* no route name */
    memset(&f, 0, sizeof(f));
    pgw_map_upstream_error(401, "", 0, NULL, NULL, &f);
    is_int(f.status, 502);
    is_str(f.message, "Poe refused the API key configured for route (unnamed); check the route's api_key");
    /* an authentication error inside an answer is the same refusal, worded the same */
    map(200, "{\"error\":{\"type\":\"authentication_error\",\"message\":\"Invalid API key\"}}");
    is_int(f.status, 502);
    is_str(f.type, "api_error");
    is_str(f.message,
           "Poe refused the API key configured for route gpt-5.4; check the route's api_key (Poe said: Invalid API key)");
}

/* What either route answers to an error status (pgw_upstream_error_answer, less the request and the transfer). */
static h2o_iovec_t retry_after;
static int own;

static void answer(const pgw_route_t *route, int status, const char *body, const char *location, const char *poe_retry_after)
{
    memset(&f, 0, sizeof(f));
    retry_after = poe_retry_after != NULL ? h2o_iovec_init(poe_retry_after, strlen(poe_retry_after)) : h2o_iovec_init(NULL, 0);
    own = answer_error(route, status, body, strlen(body),
                       location != NULL ? h2o_iovec_init(location, strlen(location)) : h2o_iovec_init(NULL, 0), &retry_after, &f);
}

static void test_answer(void)
{
    pgw_route_t from_env = {.model_name = "claude-sonnet", .api_key = "sk-poe-0123456789abcdef", .api_key_env = "POE_API_KEY"},
                literal = {.model_name = "gpt-5", .api_key = "sk-poe-0123456789abcdef"};

    /* a refused key: one wording on both route kinds, naming the variable when the key came from one; Poe's Anthropic
     * body is not the answer, and no key leaks from Poe's message */
    answer(&from_env, 401,
           "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"bad key sk-poe-0123456789abcdef\"}}",
           NULL, NULL);
    is_int(own, 1);
    is_int(f.status, 502);
    is_str(f.type, "api_error");
    is_str(f.message,
           "Poe refused the API key configured for route claude-sonnet; check POE_API_KEY (Poe said: bad key [redacted])");
    ok(retry_after.base == NULL);
    is_int(f.no_retry, 1); /* a retry cannot help: x-should-retry: false (docs/errors.md#retries-that-cannot-help) */
    answer(&literal, 401, "", NULL, NULL);
    is_str(f.message, "Poe refused the API key configured for route gpt-5; check the route's api_key");

    /* a 429: Poe's Retry-After goes to the client, and a bare one gets 1 */
    answer(&literal, 429, "{\"error\":{\"message\":\"slow down\"}}", NULL, "7");
    is_int(own, 0);
    is_int(f.no_retry, 0);
    is_int(f.status, 429);
    is_str(f.type, "rate_limit_error");
    ok(h2o_memis(retry_after.base, retry_after.len, H2O_STRLIT("7")));
    answer(&literal, 429, "", NULL, NULL);
    ok(h2o_memis(retry_after.base, retry_after.len, H2O_STRLIT("1")));
    /* any other status keeps Poe's Retry-After, and gets none of the gateway's */
    answer(&literal, 529, "", NULL, "30");
    is_int(f.status, 529);
    is_int(f.no_retry, 0);
    ok(h2o_memis(retry_after.base, retry_after.len, H2O_STRLIT("30")));
    answer(&literal, 500, "", NULL, NULL);
    ok(retry_after.base == NULL);

    /* a redirect names where it points; a status that is no error says so */
    answer(&from_env, 302, "<html>moved</html>", "https://example.invalid/login", NULL);
    is_int(own, 1);
    is_int(f.status, 502);
    is_str(f.type, "api_error");
    is_str(f.message,
           "route claude-sonnet: Poe answered 302, a redirect to https://example.invalid/login; check the route's api_base");
    is_int(f.no_retry, 1);
    answer(&from_env, 307, "", NULL, NULL);
    is_str(f.message, "route claude-sonnet: Poe answered 307, a redirect; check the route's api_base");
    answer(&from_env, 101, "", NULL, NULL);
    is_int(own, 1);
    is_int(f.status, 502);
    is_str(f.message, "route claude-sonnet: Poe answered 101 with no usable body");

    /* everything else is Poe's error mapped, the key redacted */
    answer(&from_env, 400, "{\"error\":{\"message\":\"key sk-poe-0123456789abcdef is not for this\"}}", NULL, NULL);
    is_int(own, 0);
    is_int(f.status, 400);
    is_str(f.type, "invalid_request_error");
    is_str(f.message, "key [redacted] is not for this");
    is_int(f.no_retry, 0);
}

void test_src__upstream_errors_c(void)
{
    subtest("statuses", test_statuses);
    subtest("messages", test_messages);
    subtest("context overflow", test_context_overflow);
    subtest("errors inside a stream", test_in_stream);
    subtest("the routes' answer", test_answer);
}
