/* poe-gateway: MIT licence. src/serve/reqbody.c again, its AVX2 path left out, as pgw_reqbody_inspect_sse2 (for
 * fuzz_reqbody_simd). */
#define PGW_REQBODY_NO_AVX2
#define pgw_reqbody_inspect pgw_reqbody_inspect_sse2
#include "serve/reqbody.c"
