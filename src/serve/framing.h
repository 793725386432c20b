/* poe-gateway: MIT licence. HTTP/1 request framing that two parsers could read two ways: found and refused. */
#ifndef PGW_FRAMING_H
#define PGW_FRAMING_H

#include <stddef.h>
#include <h2o.h>

/**
 * Looks at the head of one HTTP/1.x request: `head` holds its bytes from the start of the request line (empty lines
 * before it are skipped), possibly followed by its body and more; only the head, up to its empty line, is read.
 * Returns NULL when the head's framing has one reading, or a static phrase saying why it has more than one (RFC 9112
 * §6.1, §6.3, §5.2):
 *   - Transfer-Encoding together with Content-Length;
 *   - Content-Length, or Transfer-Encoding, given on more than one line;
 *   - Transfer-Encoding in an HTTP/1.0 request;
 *   - a header line continued on the next (obs-fold: the next line starts with a space or a tab).
 * Also NULL when `head` does not start with a request line or holds no complete head within `len`: nothing to judge.
 * Lines end at LF, with or without a CR before it, as libh2o's parser (picohttpparser) reads them. Pure.
 */
const char *pgw_framing_ambiguity(const char *head, size_t len);

/**
 * For an HTTP/1.x request, checks the request's head as it arrived (libh2o keeps it at the start of the connection's
 * input buffer while the request is handled, and hides content-length and transfer-encoding from req->headers). When
 * pgw_framing_ambiguity finds it ambiguous, answers 400 invalid_request_error saying why, marks the connection to be
 * closed after the answer (whatever follows on it was framed by a guess) and returns 1. Returns 0, having done
 * nothing, otherwise (and for HTTP/2). Call first, before anything else answers the request.
 */
int pgw_framing_refuse(h2o_req_t *req);

#endif
