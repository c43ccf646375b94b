#include "call.h"

static const char *const outcome_table[_CALL_OUTCOME_MAX] = {
        [CALL_ANSWERED] = "answered", [CALL_BUSY] = "busy",     [CALL_NO_ANSWER] = "no_answer",
        [CALL_REJECTED] = "rejected", [CALL_FAILED] = "failed",
};

const char *call_outcome_to_string(CallOutcome o)
{
	return o >= 0 && o < _CALL_OUTCOME_MAX ? outcome_table[o] : "unknown";
}
