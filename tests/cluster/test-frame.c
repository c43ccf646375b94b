/* test-frame: the replication message format, packed and unpacked, and refused when bent. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "test.h"

static size_t pack(uint8_t *buf, const char *const *payloads, uint32_t n, uint64_t seq)
{
	uint8_t *at = buf + FRAME_HEADER_SIZE;

	frame_put_header(buf, n, seq);
	for (uint32_t i = 0; i < n; i++)
		at = frame_put_payload(at, payloads[i], (uint32_t)strlen(payloads[i]));
	return (size_t)(at - buf);
}

static void test_roundtrip(void)
{
	const char *payloads[] = {"alpha", "", "a longer third payload"};
	uint8_t buf[256];
	size_t len = pack(buf, payloads, 3, 0x0102030405060708ULL);
	FrameReader reader;
	const void *data;
	size_t n;

	check_int(len, FRAME_HEADER_SIZE + frame_cost(5) + frame_cost(0) + frame_cost(22));
	check_int(memcmp(buf, "GWRP", 4), 0);
	check_int(buf[4], FRAME_VERSION);
	check_int(frame_reader_init(&reader, buf, len), 0);
	check_int(reader.count, 3);
	check(reader.seq == 0x0102030405060708ULL);
	for (int i = 0; i < 3; i++) {
		check_int(frame_reader_next(&reader, &data, &n), 1);
		check_int(n, strlen(payloads[i]));
		check_int(memcmp(data, payloads[i], n), 0);
	}
	check_int(frame_reader_next(&reader, &data, &n), 0);
}

static void test_empty_frame(void)
{
	uint8_t buf[FRAME_HEADER_SIZE];
	FrameReader reader;
	const void *data;
	size_t n;

	frame_put_header(buf, 0, 1);
	check_int(frame_reader_init(&reader, buf, sizeof(buf)), 0);
	check_int(frame_reader_next(&reader, &data, &n), 0);
}

static void test_refused(void)
{
	const char *payloads[] = {"one", "two"};
	uint8_t buf[128];
	size_t len = pack(buf, payloads, 2, 7);
	FrameReader reader;

	/* Every truncation is refused as a whole. */
	for (size_t cut = 0; cut < len; cut++)
		check_int(frame_reader_init(&reader, buf, cut), -EBADMSG);
	/* Trailing bytes. */
	buf[len] = 0;
	check_int(frame_reader_init(&reader, buf, len + 1), -EBADMSG);

	buf[8] = 3; /* count says three */
	check_int(frame_reader_init(&reader, buf, len), -EBADMSG);
	buf[8] = 2;
	buf[FRAME_HEADER_SIZE] = 0xff; /* first length far too long */
	check_int(frame_reader_init(&reader, buf, len), -EBADMSG);
	buf[FRAME_HEADER_SIZE] = 3;
	check_int(frame_reader_init(&reader, buf, len), 0);

	buf[4] = FRAME_VERSION + 1;
	check_int(frame_reader_init(&reader, buf, len), -EPROTONOSUPPORT);
	buf[4] = FRAME_VERSION;
	buf[0] = 'X';
	check_int(frame_reader_init(&reader, buf, len), -EBADMSG);
}

int main(void)
{
	run(test_roundtrip);
	run(test_empty_frame);
	run(test_refused);
	return test_exit();
}
