/* frame: the wire format of one replication message, which carries one or more payloads.
 *
 * A frame is a fixed header followed by length-prefixed payloads, all integers little-endian:
 *
 *     offset  size  field
 *          0     4  magic "GWRP"
 *          4     1  version (FRAME_VERSION)
 *          5     1  flags (0; reserved)
 *          6     2  header length (FRAME_HEADER_SIZE for this version)
 *          8     4  number of payloads
 *         12     4  reserved (0)
 *         16     8  sequence number of the frame, per sending process
 *         24        payloads: 4-byte length, then that many bytes, repeated
 *
 * Any thread may call these; they touch only the buffers they are given. A reader points into
 * the message it was initialised with, which must outlive it. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define FRAME_MAGIC       0x50525747u /* "GWRP" read as little-endian */
#define FRAME_VERSION     1
#define FRAME_HEADER_SIZE 24
#define FRAME_PREFIX_SIZE 4

/* Bytes a payload of len bytes takes inside a frame. */
static inline size_t frame_cost(size_t len)
{
	return FRAME_PREFIX_SIZE + len;
}

/* Writes the header of a frame of count payloads into buf (FRAME_HEADER_SIZE bytes). */
void frame_put_header(void *buf, uint32_t count, uint64_t seq);
/* Writes one payload at at; returns where the next one goes. */
void *frame_put_payload(void *at, const void *data, uint32_t len);

typedef struct FrameReader {
	const uint8_t *next;
	const uint8_t *end;
	uint32_t count;
	uint32_t left;
	uint64_t seq;
} FrameReader;

/* Checks a whole message before anything of it is used: 0, -EBADMSG when it is malformed
 * (wrong magic, lengths that do not add up), -EPROTONOSUPPORT for another version. */
int frame_reader_init(FrameReader *reader, const void *msg, size_t len);
/* The next payload: 1 and the payload in ret_data and ret_len, or 0 at the end. */
int frame_reader_next(FrameReader *reader, const void **ret_data, size_t *ret_len);
