/* decodemark: a note on disk naming the stored message being decoded, so that a message that
 * kills the process while it is decoded is not decoded again. Internal to modem/.
 *
 * One DecodeMark per worker, used by that worker only. The note is a small file in the state
 * directory, written and fdatasync'd before each decode and emptied after the scan; it outlives
 * an abort (and a power cut). When the worker starts and finds the note filled, the message it
 * names is "poisoned": the worker quarantines it without decoding it, and decodes nothing else
 * until that message is gone from the memory it was in. */
#pragma once

#include <stdbool.h>

typedef struct DecodeMark DecodeMark;

/* Opens (creating) <state_dir>/decoding-<name> and reads what a previous process left there.
 * -errno if the file cannot be opened: the caller then works without the note. */
int decodemark_open(const char *state_dir, const char *name, DecodeMark **ret);
DecodeMark *decodemark_free(DecodeMark *d);
const char *decodemark_path(const DecodeMark *d);

/* A previous process died decoding a message: true with where it was. */
bool decodemark_poisoned(const DecodeMark *d);
/* The poisoned message is this one (same memory, index and PDU). */
bool decodemark_is_poison(const DecodeMark *d, const char *memory, int index, const char *hex);
/* The poisoned message is gone: normal decoding resumes. */
void decodemark_forget_poison(DecodeMark *d);

/* About to decode this message. Returns 0, or -errno if the note could not be made durable. */
int decodemark_begin(DecodeMark *d, const char *memory, int index, const char *hex);
/* Nothing is being decoded any more. */
int decodemark_end(DecodeMark *d);
