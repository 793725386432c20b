/* poe-gateway: MIT licence. What the two answer translators, whole (src/translate/translate_response.c) and streamed
 * (src/translate/translate_stream.c), decide alike: the id of each tool_use block and the stop_reason. One home each, so that a
 * client sees the same ids and the same stop_reason whether it asked for a stream or not. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/json.h"
#include "translate/translate.h"

size_t pgw_tool_use_id(h2o_buffer_t **ids, const char *upstream_id, size_t len, const char *msg_id, size_t position)
{
    size_t off = (*ids)->size, idlen = 0, cap;
    char *id;

    /* sanitising never lengthens an id; room for "toolu_" + the message id + "_<position>" and a "_<n>" suffix */
    cap = (len > strlen(msg_id) ? len : strlen(msg_id)) + 64;
    id = h2o_mem_alloc(cap);
    if (len != 0) {
        pgw_toolcall_id_sanitise(upstream_id, len, id, cap);
        idlen = strlen(id);
    }
    if (idlen == 0) {
        const char *rnd = strncmp(msg_id, "msg_", 4) == 0 ? msg_id + 4 : msg_id;
        memcpy(id, "toolu_", 6);
        pgw_toolcall_id_sanitise(rnd, strlen(rnd), id + 6, cap - 6 - 24);
        idlen = strlen(id);
        idlen += snprintf(id + idlen, cap - idlen, "_%zu", position);
    }
    /* a duplicate after sanitising gets "_<n>" (docs/mapping.md#identifiers) */
    size_t base_len = idlen;
    for (unsigned n = 2;; ++n) {
        int taken = 0;
        for (size_t p = 0; p < off; p += strlen((*ids)->bytes + p) + 1)
            if (strlen((*ids)->bytes + p) == idlen && memcmp((*ids)->bytes + p, id, idlen) == 0) {
                taken = 1;
                break;
            }
        if (!taken)
            break;
        idlen = base_len + snprintf(id + base_len, cap - base_len, "_%u", n);
    }
    pgw_buf_append(ids, id, idlen);
    pgw_buf_append(ids, "", 1);
    free(id);
    return off;
}

const char *pgw_stop_reason(const char *finish_reason, int has_tools, int has_refusal, const char **stop_sequence)
{
    const char *matched = *stop_sequence;

    /* in this order (docs/mapping.md#stop-reasons): a cut answer says so, even one holding a tool call (its arguments
     * are then incomplete); a tool call must be run whatever finish_reason said; a refusal is never a stop sequence */
    *stop_sequence = NULL;
    if (finish_reason != NULL && strcmp(finish_reason, "length") == 0)
        return "max_tokens";
    if (has_tools)
        return "tool_use";
    if (has_refusal || (finish_reason != NULL && strcmp(finish_reason, "content_filter") == 0))
        return "refusal";
    if (matched != NULL) {
        *stop_sequence = matched;
        return "stop_sequence";
    }
    return "end_turn";
}

void pgw_append_stop(h2o_buffer_t **out, const char *stop_reason, const char *stop_sequence)
{
    pgw_buf_append_lit(out, "\"stop_reason\":\"");
    pgw_buf_append_str(out, stop_reason);
    pgw_buf_append_lit(out, "\",\"stop_sequence\":");
    if (stop_sequence != NULL)
        pgw_json_append_string(out, stop_sequence, strlen(stop_sequence));
    else
        pgw_buf_append_lit(out, "null");
}
