/* call: the outcomes of a voice dial-out, as recorded and shown to users.
 *
 * The AT chat engine that produces them lives beside this header (voice fallback). Any thread. */
#pragma once

typedef enum CallOutcome {
	CALL_ANSWERED,
	CALL_BUSY,
	CALL_NO_ANSWER,
	CALL_REJECTED,
	CALL_FAILED,
	_CALL_OUTCOME_MAX,
} CallOutcome;

const char *call_outcome_to_string(CallOutcome o);
