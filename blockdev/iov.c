/* SPDX-License-Identifier: Apache-2.0 */
/* iovec arithmetic for the block layer. */
#include <errno.h>
#include <string.h>

#include "blockdev/internal.h"
#include "common/util.h"

uint64_t blockdev_iov_size(const struct iovec *iov, int iovcnt)
{
	uint64_t n = 0;

	for (int i = 0; i < iovcnt; i++)
		n += iov[i].iov_len;
	return n;
}

int blockdev_iov_slice(const struct iovec *iov, int iovcnt, uint64_t skip, uint64_t len,
		       struct iovec *out, int outcap)
{
	int i = 0, n = 0;

	while (i < iovcnt && skip >= iov[i].iov_len)
		skip -= iov[i++].iov_len;
	for (; i < iovcnt && len; i++) {
		uint64_t take = MIN(len, iov[i].iov_len - skip);

		if (n < outcap) {
			out[n].iov_base = (char *)iov[i].iov_base + skip;
			out[n].iov_len = take;
		}
		n++;
		len -= take;
		skip = 0;
	}
	return len ? -EINVAL : n;
}

/* Calls fn on each piece of [skip, skip+len) of iov, with the running position in the buffer. */
static void iov_walk(const struct iovec *iov, int iovcnt, uint64_t skip, uint64_t len,
		     void (*fn)(void *piece, uint64_t n, uint64_t pos, void *arg), void *arg)
{
	uint64_t pos = 0;

	for (int i = 0; i < iovcnt && len; i++) {
		uint64_t take;

		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		take = MIN(len, iov[i].iov_len - skip);
		fn((char *)iov[i].iov_base + skip, take, pos, arg);
		pos += take;
		len -= take;
		skip = 0;
	}
}

static void zero_piece(void *piece, uint64_t n, uint64_t pos, void *arg)
{
	memset(piece, 0, n);
}

static void to_buf_piece(void *piece, uint64_t n, uint64_t pos, void *arg)
{
	memcpy((char *)arg + pos, piece, n);
}

static void from_buf_piece(void *piece, uint64_t n, uint64_t pos, void *arg)
{
	memcpy(piece, (const char *)arg + pos, n);
}

void blockdev_iov_zero(const struct iovec *iov, int iovcnt, uint64_t skip, uint64_t len)
{
	iov_walk(iov, iovcnt, skip, len, zero_piece, NULL);
}

void blockdev_iov_to_buf(const struct iovec *iov, int iovcnt, uint64_t skip, void *buf,
			 uint64_t len)
{
	iov_walk(iov, iovcnt, skip, len, to_buf_piece, buf);
}

void blockdev_iov_from_buf(const struct iovec *iov, int iovcnt, uint64_t skip, const void *buf,
			   uint64_t len)
{
	iov_walk(iov, iovcnt, skip, len, from_buf_piece, (void *)buf);
}

bool blockdev_iov_dio_ok(const struct iovec *iov, int iovcnt, uint32_t mem_align,
			 uint32_t len_align)
{
	uint64_t ma = mem_align ? mem_align : 1, la = len_align ? len_align : 1;

	for (int i = 0; i < iovcnt; i++)
		if (!IS_ALIGNED((uint64_t)(uintptr_t)iov[i].iov_base, ma) ||
		    !IS_ALIGNED((uint64_t)iov[i].iov_len, la))
			return false;
	return true;
}
