/* poe-gateway: MIT licence. HTTP/1 request framing that two parsers could read two ways: found and refused.
 *
 * libh2o 2.2.5 frames an HTTP/1.x request body by the last Transfer-Encoding line if there is one, else by the first
 * Content-Length line; it accepts Transfer-Encoding with Content-Length, a second Content-Length that disagrees with the
 * first, Transfer-Encoding in HTTP/1.0, and header lines folded onto the next (obs-fold), and keeps the connection
 * open after such a request. A proxy in front that picks the other reading (tailscale serve, a load balancer) then
 * sees a different request boundary than the gateway: request smuggling. RFC 9112 asks a server to refuse such a
 * request, or at least to close the connection after it.
 *
 * libh2o drops content-length and transfer-encoding from the headers it hands to handlers, so the check reads the head
 * as it arrived. While a request is handled, libh2o keeps its head at the start of the connection's input buffer (the
 * previous request was consumed from it when its answer went out; a chunked body is decoded in place after the head;
 * header names are lower-cased in place, which does not matter here), already decrypted on a TLS connection. The check
 * runs there, at the top of the request handler, rather than in the socket read path (src/serve/uvread.c): the read path
 * sees TLS records still encrypted, and a request pipelined behind another is parsed from the buffer without a read.
 *
 * The cost of checking in the handler: libh2o has read the body by its own reading first. When the first of two
 * Content-Lengths is larger than what the client sends, libh2o waits for the rest, and the client gets its 400 once
 * that arrives, or is cut off at idle_timeout. Either way nothing after the request is read as a request.
 */
#include <string.h>
#include <strings.h>
#include "common/errors.h"
#include "serve/framing.h"

/* The next line at *p: sets *line and *len (without LF or the CR before it) and moves *p past the LF. Returns 0 when
 * no LF is left before `end`. */
static int next_line(const char **p, const char *end, const char **line, size_t *len)
{
    const char *lf = *p != end ? memchr(*p, '\n', end - *p) : NULL;
    if (lf == NULL)
        return 0;
    *line = *p;
    *len = lf - *p;
    if (*len != 0 && lf[-1] == '\r')
        --*len;
    *p = lf + 1;
    return 1;
}

static int name_is(const char *name, size_t len, const char *lit)
{
    return len == strlen(lit) && strncasecmp(name, lit, len) == 0;
}

/* "METHOD SP target SP HTTP/1.d": sets *http10 for HTTP/1.0. */
static int is_request_line(const char *line, size_t len, int *http10)
{
    static const char version[] = " HTTP/1.";
    const size_t vlen = sizeof(version) - 1;
    if (len < vlen + 3 || memcmp(line + len - vlen - 1, version, vlen) != 0 || line[len - 1] < '0' || line[len - 1] > '9')
        return 0;
    const char *sp = memchr(line, ' ', len);
    if (sp == NULL || sp == line || sp >= line + len - vlen - 1)
        return 0;
    *http10 = line[len - 1] == '0';
    return 1;
}

const char *pgw_framing_ambiguity(const char *head, size_t len)
{
    const char *p = head, *end = head + len, *line;
    size_t line_len, num_cl = 0, num_te = 0;
    int http10, folded = 0;

    while (p != end && (*p == '\r' || *p == '\n'))
        ++p;
    if (!next_line(&p, end, &line, &line_len) || !is_request_line(line, line_len, &http10))
        return NULL;
    for (;;) {
        if (!next_line(&p, end, &line, &line_len))
            return NULL;
        if (line_len == 0)
            break;
        if (line[0] == ' ' || line[0] == '\t') {
            folded = 1;
            continue;
        }
        const char *colon = memchr(line, ':', line_len);
        if (colon == NULL)
            continue;
        if (name_is(line, colon - line, "content-length"))
            ++num_cl;
        else if (name_is(line, colon - line, "transfer-encoding"))
            ++num_te;
    }
    if (num_te != 0 && num_cl != 0)
        return "Transfer-Encoding and Content-Length together: send one or the other";
    if (num_cl > 1)
        return "Content-Length given more than once: send it once";
    if (num_te > 1)
        return "Transfer-Encoding given more than once: send it once, as chunked";
    if (num_te != 0 && http10)
        return "Transfer-Encoding in an HTTP/1.0 request: send Content-Length, or use HTTP/1.1";
    if (folded)
        return "a header line folded onto the next (obs-fold): send each header on one line";
    return NULL;
}

int pgw_framing_refuse(h2o_req_t *req)
{
    if (req->version >= 0x200 || req->conn->callbacks->get_socket == NULL)
        return 0;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL || sock->input == NULL || sock->input->size == 0)
        return 0;
    /* libh2o refuses a head longer than H2O_MAX_REQLEN, so the head lies within that */
    size_t len = sock->input->size < H2O_MAX_REQLEN ? sock->input->size : H2O_MAX_REQLEN;
    const char *why = pgw_framing_ambiguity(sock->input->bytes, len);
    if (why == NULL)
        return 0;
    req->http1_is_persistent = 0;
    pgw_send_error(req, 400, PGW_ERR_INVALID_REQUEST, "ambiguous HTTP/1 request framing (RFC 9112): %s; the connection is closed",
                   why);
    return 1;
}
