/* poe-gateway: MIT licence. src/translate/translate_request.c again, its body read by yajl alone (without
 * pgw_json_read), as pgw_translate_request_yajl (for fuzz_translate_request, which compares the two). */
#define PGW_TRANSLATE_NO_READER
#define pgw_translate_request pgw_translate_request_yajl
#define pgw_translated_dispose pgw_translated_dispose_yajl
#include "translate/translate_request.c"
