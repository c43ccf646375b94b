/* fuzz-frame: the replication frame decoder (cluster/frame.c) on arbitrary messages, as a CPG
 * delivery hands them over. A message the reader accepts must hand out exactly its payloads,
 * each inside the message, and re-encoding them must give the same bytes back. */
#include "frame.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FrameReader reader;
	const void *payload;
	size_t len, total = FRAME_HEADER_SIZE;
	uint8_t *copy, *at;
	uint32_t n = 0;

	/* A copy of exactly size bytes, so that ASan sees any read past the message. */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (frame_reader_init(&reader, copy, size) < 0) {
		free(copy);
		return 0;
	}
	while (frame_reader_next(&reader, &payload, &len) > 0) {
		assert((const uint8_t *)payload >= copy + FRAME_HEADER_SIZE);
		assert(len <= size && (const uint8_t *)payload + len <= copy + size);
		total += frame_cost(len);
		n++;
	}
	assert(n == reader.count && total == size);

	/* The same payloads written again are the same message. */
	uint8_t *again = malloc(total);
	assert(again);
	frame_put_header(again, reader.count, reader.seq);
	frame_reader_init(&reader, copy, size);
	at = again + FRAME_HEADER_SIZE;
	while (frame_reader_next(&reader, &payload, &len) > 0)
		at = frame_put_payload(at, payload, (uint32_t)len);
	assert((size_t)(at - again) == size);
	/* all but the flags byte and the reserved word, which the reader does not look at */
	assert(memcmp(again, copy, 5) == 0 && memcmp(again + 6, copy + 6, 6) == 0 &&
	       memcmp(again + 16, copy + 16, size - 16) == 0);
	free(again);
	free(copy);
	return 0;
}
