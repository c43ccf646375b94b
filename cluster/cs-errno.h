/* cs-errno: corosync's cs_error_t turned into a negative errno, at the edge; private to cluster/.
 *
 * Any thread. CS_OK is 1, not 0, and CS_ERR_TRY_AGAIN means "retry later", hence -EAGAIN. The
 * mapping is ours (libcorosync_common's cs_error_to_errno is not linked here); the number is kept
 * in the log line where it matters. CS_ERR_LIBRARY is what libcpg answers when the local corosync
 * has gone away, hence -ENOTCONN. */
#pragma once

#include <corosync/corotypes.h>
#include <errno.h>

static inline int errno_from_cs(cs_error_t e)
{
	switch (e) {
	case CS_OK:
		return 0;
	case CS_ERR_TRY_AGAIN:
	case CS_ERR_QUEUE_FULL:
		return -EAGAIN;
	case CS_ERR_LIBRARY:
	case CS_ERR_BAD_HANDLE:
	case CS_ERR_QUEUE_NOT_AVAILABLE:
		return -ENOTCONN;
	case CS_ERR_TIMEOUT:
		return -ETIMEDOUT;
	case CS_ERR_INVALID_PARAM:
	case CS_ERR_BAD_FLAGS:
		return -EINVAL;
	case CS_ERR_NO_MEMORY:
		return -ENOMEM;
	case CS_ERR_BUSY:
		return -EBUSY;
	case CS_ERR_ACCESS:
	case CS_ERR_SECURITY:
		return -EACCES;
	case CS_ERR_NOT_EXIST:
	case CS_ERR_NAME_NOT_FOUND:
		return -ENOENT;
	case CS_ERR_NAME_TOO_LONG:
		return -ENAMETOOLONG;
	case CS_ERR_EXIST:
		return -EEXIST;
	case CS_ERR_NO_SPACE:
	case CS_ERR_NO_RESOURCES:
		return -ENOSPC;
	case CS_ERR_INTERRUPT:
		return -EINTR;
	case CS_ERR_NOT_SUPPORTED:
		return -EOPNOTSUPP;
	case CS_ERR_TOO_BIG:
		return -EMSGSIZE;
	case CS_ERR_VERSION:
		return -EPROTONOSUPPORT;
	default:
		return -EIO;
	}
}
