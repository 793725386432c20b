/* poe-gateway: MIT licence. src/serve/reqbody.c again, without its vector paths (the scanner as it was before them:
 * eight bytes at a time in a word, then a byte at a time), as pgw_reqbody_inspect_scalar (for fuzz_reqbody_simd). */
#define PGW_REQBODY_NO_SIMD
#define pgw_reqbody_inspect pgw_reqbody_inspect_scalar
#include "serve/reqbody.c"
