/* poe-gateway: MIT licence. The /usage page for a browser: spend per developer per day, per model, top sessions, budgets
 * and Poe's balance, drawn on the server as inline SVG. */
#ifndef PGW_HANDLERS_USAGE_PAGE_H
#define PGW_HANDLERS_USAGE_PAGE_H

#include "serve/request.h"

/** Answers `r` (the master key's, already checked) with the page, rendered on the thread pool. */
void pgw_usage_page_send(pgw_request_t *r);

/** Answers `r` with the login form: 401, and `wrong` says the key given was not the master key. */
void pgw_usage_page_login(pgw_request_t *r, int wrong);

#endif
