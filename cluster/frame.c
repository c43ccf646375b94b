/* frame: packs payloads into one replication message and unpacks them.
 *
 * Batching is what makes CPG fast enough for the gateway: a multicast costs one IPC round trip to
 * the local corosync and one totem message, whatever its size up to a few tens of KiB, so under
 * load several payloads share a message. The format is explicit little-endian and checked as a
 * whole before any payload is handed out, so a truncated or foreign message is dropped entirely
 * rather than half applied. The version byte lets a future format coexist during an upgrade. */
#include "frame.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

static void put_le16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, sizeof(v));
}

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static uint16_t get_le16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

void frame_put_header(void *buf, uint32_t count, uint64_t seq)
{
	uint8_t *p = buf;

	put_le32(p, FRAME_MAGIC);
	p[4] = FRAME_VERSION;
	p[5] = 0;
	put_le16(p + 6, FRAME_HEADER_SIZE);
	put_le32(p + 8, count);
	put_le32(p + 12, 0);
	put_le64(p + 16, seq);
}

void *frame_put_payload(void *at, const void *data, uint32_t len)
{
	uint8_t *p = at;

	put_le32(p, len);
	if (len > 0)
		memcpy(p + FRAME_PREFIX_SIZE, data, len);
	return p + FRAME_PREFIX_SIZE + len;
}

int frame_reader_init(FrameReader *reader, const void *msg, size_t len)
{
	const uint8_t *p = msg, *end = p + len, *at;
	uint16_t header_len;
	uint32_t count;

	if (len < 8 || get_le32(p) != FRAME_MAGIC)
		return -EBADMSG;
	if (p[4] != FRAME_VERSION)
		return -EPROTONOSUPPORT;
	header_len = get_le16(p + 6);
	if (len < FRAME_HEADER_SIZE || header_len != FRAME_HEADER_SIZE)
		return -EBADMSG;
	count = get_le32(p + 8);

	/* Walk every length now, so that a bad message is refused before any of it is used. */
	at = p + header_len;
	for (uint32_t i = 0; i < count; i++) {
		uint32_t n;

		if ((size_t)(end - at) < FRAME_PREFIX_SIZE)
			return -EBADMSG;
		n = get_le32(at);
		at += FRAME_PREFIX_SIZE;
		if ((size_t)(end - at) < n)
			return -EBADMSG;
		at += n;
	}
	if (at != end)
		return -EBADMSG;

	*reader = (FrameReader){
	        .next = p + header_len,
	        .end = end,
	        .count = count,
	        .left = count,
	        .seq = get_le64(p + 16),
	};
	return 0;
}

int frame_reader_next(FrameReader *reader, const void **ret_data, size_t *ret_len)
{
	uint32_t n;

	if (reader->left == 0)
		return 0;
	n = get_le32(reader->next);
	*ret_data = reader->next + FRAME_PREFIX_SIZE;
	*ret_len = n;
	reader->next += FRAME_PREFIX_SIZE + n;
	reader->left--;
	return 1;
}
