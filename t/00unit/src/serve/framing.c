/* poe-gateway: MIT licence. Unit tests for src/serve/framing.c: which HTTP/1 request heads have more than one framing. */
#include <stdlib.h>
#include <string.h>
#include "../../../../src/serve/framing.c"
#include "../../test.h"

/* The verdict on `head`, copied to a block of its exact size so that a read past `len` is caught by ASan. */
static const char *verdict(const char *head)
{
    size_t len = strlen(head);
    char *copy = calloc(len != 0 ? len : 1, 1);
    memcpy(copy, head, len);
    const char *why = pgw_framing_ambiguity(copy, len);
    free(copy);
    return why;
}

#define POST "POST /v1/messages HTTP/1.1\r\nHost: x\r\n"

static void test_unambiguous(void)
{
    ok(verdict("GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n") == NULL);
    ok(verdict(POST "Content-Length: 2\r\n\r\n{}") == NULL);
    ok(verdict(POST "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n") == NULL);
    ok(verdict("POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}") == NULL);
    /* names that only contain or resemble the framing headers */
    ok(verdict(POST "Content-Length: 2\r\nX-Content-Length: 3\r\nContent-Length-X: 4\r\nX-Transfer-Encoding: chunked\r\n\r\n{}") ==
       NULL);
    /* a value holding a colon or the name of the other header is a value */
    ok(verdict(POST "X-A: transfer-encoding: chunked\r\nContent-Length: 2\r\n\r\n{}") == NULL);
    /* the body and whatever follows the head are not read */
    ok(verdict(POST "Content-Length: 40\r\n\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n") == NULL);
    ok(verdict("GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n") == NULL);
}

static void test_ambiguous(void)
{
    is_str(verdict(POST "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"),
           "Transfer-Encoding and Content-Length together: send one or the other");
    is_str(verdict(POST "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
           "Transfer-Encoding and Content-Length together: send one or the other");
    is_str(verdict(POST "content-length: 2\r\nCONTENT-LENGTH: 12\r\n\r\n{}"), "Content-Length given more than once: send it once");
    is_str(verdict(POST "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}"), "Content-Length given more than once: send it once");
    is_str(verdict(POST "Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n"),
           "Transfer-Encoding given more than once: send it once, as chunked");
    is_str(verdict("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
           "Transfer-Encoding in an HTTP/1.0 request: send Content-Length, or use HTTP/1.1");
    is_str(verdict(POST "X-A: a\r\n b\r\n\r\n"), "a header line folded onto the next (obs-fold): send each header on one line");
    is_str(verdict(POST "X-A: a\r\n\tContent-Length: 5\r\n\r\n"),
           "a header line folded onto the next (obs-fold): send each header on one line");
    /* lines ended by a bare LF, as libh2o's parser accepts them, and empty lines before the request line */
    is_str(verdict("\r\n\nPOST / HTTP/1.1\nTransfer-Encoding: chunked\nContent-Length: 5\n\n"),
           "Transfer-Encoding and Content-Length together: send one or the other");
    /* a tab after the colon changes nothing */
    is_str(verdict(POST "Transfer-Encoding:\tchunked\r\nContent-Length: 4\r\n\r\n"),
           "Transfer-Encoding and Content-Length together: send one or the other");
}

static void test_not_a_head(void)
{
    /* no complete head within the bytes given */
    ok(verdict(POST "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n") == NULL);
    ok(verdict("") == NULL);
    ok(verdict("\r\n\r\n") == NULL);
    /* not a request line: an HTTP/2 preface, frames, a response */
    ok(verdict("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") == NULL);
    ok(verdict("\x00\x00\x12\x04\x00\x00\x00\x00\x00\nContent-Length: 1\nContent-Length: 2\n\n") == NULL);
    ok(verdict("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n") == NULL);
    ok(verdict("GET HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n") == NULL);

    /* every prefix of an ambiguous head short of its empty line has no verdict, and none reads past its end */
    static const char head[] = POST "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n";
    int early = 0;
    for (size_t n = 0; n < sizeof(head) - 2; ++n) {
        char *copy = calloc(n != 0 ? n : 1, 1);
        memcpy(copy, head, n);
        early |= pgw_framing_ambiguity(copy, n) != NULL;
        free(copy);
    }
    ok(!early);
    ok(pgw_framing_ambiguity(head, sizeof(head) - 1) != NULL);
}

void test_src__framing_c(void)
{
    subtest("unambiguous", test_unambiguous);
    subtest("ambiguous", test_ambiguous);
    subtest("not a head", test_not_a_head);
}
