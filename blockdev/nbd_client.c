/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NBD client's connection: a socket to the server (TCP or unix, with a connect timeout)
 * and the fixed newstyle handshake over a byte stream, up to the transmission phase.
 *
 * The handshake asks for what the driver can use and takes what the server grants:
 *   0. With TLS credentials (nbd_handshake_tls), NBD_OPT_STARTTLS first, as proto.md advises a
 *      client that insists on TLS, so that no option goes in plaintext; a server that is not
 *      fixed newstyle or refuses it is refused (never a plaintext fallback), and after its
 *      NBD_REP_ACK the caller's TLS handshake turns the stream into one through the session.
 *   1. NBD_OPT_STRUCTURED_REPLY: holes in sparse reads, errors with messages, block status.
 *      Refused: simple replies only, no block status.
 *   2. NBD_OPT_SET_META_CONTEXT base:allocation (after structured replies only). Refused or
 *      not selected: block status reports everything as data.
 *   3. NBD_OPT_GO with NBD_INFO_BLOCK_SIZE: the export's size, transmission flags and size
 *      constraints, and the transmission phase. A server that does not know NBD_OPT_GO (or is
 *      not fixed newstyle at all) gets NBD_OPT_EXPORT_NAME instead.
 * Every option reply is bounded (NBD_CLIENT_MAX_OPT_REPLY bytes, 64 replies to one option)
 * and must answer the option just sent; the server's error messages are shown to the user
 * with anything unprintable replaced.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "blockdev/internal.h"
#include "blockdev/nbd_client.h"
#include "common/util.h"

#define MAX_REPLIES 64 /* replies to one option before the server is taken for hostile */
#define IOV_BATCH 64

/* ---- the socket stream ------------------------------------------------------------------ */

/*
 * Reads go through the socket's buffer: one recv() takes whatever has arrived (several small
 * replies at once), and the reader copies from it; a read at least half the buffer's size that
 * the buffer cannot serve goes straight into its destination. The server sends nothing
 * unasked, so nothing read ahead is lost between the handshake and the transmission phase.
 */
static int sock_recv(struct nbd_socket *sk, void *dst, size_t len, int flags)
{
	ssize_t n;

	do
		n = recv(sk->fd, dst, len, flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
	return n ? (int)MIN((size_t)n, (size_t)INT32_MAX) : -ECONNRESET;
}

static int sock_read(void *opaque, void *buf, size_t len)
{
	struct nbd_socket *sk = opaque;
	char *p = buf;

	while (len) {
		size_t have = sk->len - sk->pos;
		int n;

		if (have) {
			size_t take = MIN(have, len);

			memcpy(p, sk->buf + sk->pos, take);
			sk->pos += take;
			p += take;
			len -= take;
			continue;
		}
		sk->pos = sk->len = 0;
		if (len >= sizeof(sk->buf) / 2) { /* large: straight into place */
			n = sock_recv(sk, p, len, MSG_WAITALL);
			if (n < 0)
				return n;
			p += n;
			len -= (size_t)n;
			continue;
		}
		n = sock_recv(sk, sk->buf, sizeof(sk->buf), 0);
		if (n < 0)
			return n;
		sk->len = (size_t)n;
	}
	return 0;
}

static int sock_readv(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct nbd_socket *sk = opaque;
	uint64_t total = blockdev_iov_size(iov, iovcnt), done = 0;

	/* what the buffer holds first, then large reads straight into the buffers */
	while (done < total && (sk->pos < sk->len || total - done < sizeof(sk->buf) / 2)) {
		struct iovec v[1];
		int ret;

		blockdev_iov_slice(iov, iovcnt, done, MIN(total - done, (uint64_t)sizeof(sk->buf)), v,
				   1);
		ret = sock_read(sk, v[0].iov_base, v[0].iov_len);
		if (ret < 0)
			return ret;
		done += v[0].iov_len;
	}
	while (done < total) {
		struct iovec v[IOV_BATCH];
		struct msghdr m = { .msg_iov = v };
		int n = blockdev_iov_slice(iov, iovcnt, done, total - done, v, IOV_BATCH);
		ssize_t got;

		m.msg_iovlen = (size_t)MIN(n, IOV_BATCH);
		got = recvmsg(sk->fd, &m, MSG_WAITALL);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		}
		if (got == 0)
			return -ECONNRESET;
		done += (uint64_t)got;
	}
	return 0;
}

static int sock_write(void *opaque, const void *buf, size_t len)
{
	struct nbd_socket *sk = opaque;
	const char *p = buf;

	while (len) {
		ssize_t n = send(sk->fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void nbd_stream_socket(struct nbd_stream *s, struct nbd_socket *sk, int fd)
{
	sk->fd = fd;
	sk->pos = sk->len = 0;
	*s = (struct nbd_stream){ sock_read, sock_readv, sock_write, sk };
}

/* ---- connecting -------------------------------------------------------------------------- */

void nbd_socket_timeouts(int fd, unsigned int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* connect() within @timeout_ms on a non-blocking socket; 0 or -errno. */
static int connect_timed(int fd, const struct sockaddr *sa, socklen_t len, unsigned int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	socklen_t elen = sizeof(int);
	int err = 0, n;

	if (connect(fd, sa, len) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return -errno;
	do
		n = poll(&p, 1, (int)timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ETIMEDOUT;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		return -errno;
	return -err;
}

/* A new socket connected to @sa, blocking, with the handshake's timeouts; fd or -errno. */
static int open_socket(int family, const struct sockaddr *sa, socklen_t len,
		       unsigned int timeout_ms)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), ret, one = 1;

	if (fd < 0)
		return -errno;
	ret = connect_timed(fd, sa, len, timeout_ms);
	if (!ret && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		ret = -errno;
	if (ret) {
		close(fd);
		return ret;
	}
	if (family != AF_UNIX) /* requests are small and answered at once: no Nagle delay */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	nbd_socket_timeouts(fd, timeout_ms);
	return fd;
}

static int connect_unix(const char *path, unsigned int timeout_ms, struct error **errp)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		error_setg(errp, "NBD socket path '%s' is longer than %zu bytes", path,
			   sizeof(sa.sun_path) - 1);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = open_socket(AF_UNIX, (struct sockaddr *)&sa, sizeof(sa), timeout_ms);
	if (fd < 0)
		error_setg_errno(errp, fd, "could not connect to the NBD server at '%s'", path);
	return fd;
}

static int connect_inet(const char *host, const char *port, unsigned int timeout_ms,
			struct error **errp)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res, *ai;
	int fd = -ENOENT, g = getaddrinfo(host, port, &hints, &res);

	if (g) {
		error_setg(errp, "could not resolve the NBD server '%s' port %s: %s", host, port,
			   gai_strerror(g));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = open_socket(ai->ai_family, ai->ai_addr, ai->ai_addrlen, timeout_ms);
		if (fd >= 0)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		error_setg_errno(errp, fd, "could not connect to the NBD server %s port %s", host,
				 port);
		return -1;
	}
	return fd;
}

int nbd_connect(const struct nbd_target *t, unsigned int timeout_ms, struct error **errp)
{
	if (t->type == NBD_ADDR_UNIX)
		return connect_unix(t->path, timeout_ms, errp);
	return connect_inet(t->host, t->port, timeout_ms, errp);
}

/* ---- the handshake ----------------------------------------------------------------------- */

static const char *rep_name(uint32_t type)
{
	switch (type) {
	case NBD_REP_ACK: return "NBD_REP_ACK";
	case NBD_REP_SERVER: return "NBD_REP_SERVER";
	case NBD_REP_INFO: return "NBD_REP_INFO";
	case NBD_REP_META_CONTEXT: return "NBD_REP_META_CONTEXT";
	case NBD_REP_ERR_UNSUP: return "NBD_REP_ERR_UNSUP";
	case NBD_REP_ERR_POLICY: return "NBD_REP_ERR_POLICY";
	case NBD_REP_ERR_INVALID: return "NBD_REP_ERR_INVALID";
	case NBD_REP_ERR_PLATFORM: return "NBD_REP_ERR_PLATFORM";
	case NBD_REP_ERR_TLS_REQD: return "NBD_REP_ERR_TLS_REQD";
	case NBD_REP_ERR_UNKNOWN: return "NBD_REP_ERR_UNKNOWN";
	case NBD_REP_ERR_SHUTDOWN: return "NBD_REP_ERR_SHUTDOWN";
	case NBD_REP_ERR_BLOCK_SIZE_REQD: return "NBD_REP_ERR_BLOCK_SIZE_REQD";
	case NBD_REP_ERR_TOO_BIG: return "NBD_REP_ERR_TOO_BIG";
	case NBD_REP_ERR_EXT_HEADER_REQD: return "NBD_REP_ERR_EXT_HEADER_REQD";
	default: return "an unknown reply type";
	}
}

/* One option reply, its payload NUL-terminated in a buffer the caller provides. */
struct opt_reply {
	uint32_t type;
	uint32_t len;
	uint8_t data[NBD_CLIENT_MAX_OPT_REPLY + 1];
};

static int io_error(const struct nbd_stream *s, int ret, const char *what, struct error **errp)
{
	const char *why = ret == -EPROTO && s->why ? s->why(s->opaque) : NULL;

	if (ret == -ECONNRESET)
		error_setg(errp, "the NBD server closed the connection %s", what);
	else if (ret == -ETIMEDOUT)
		error_setg(errp, "the NBD server did not answer %s in time", what);
	else if (why)
		error_setg(errp, "NBD handshake: %s (%s)", why, what);
	else
		error_setg_errno(errp, ret, "NBD handshake: %s", what);
	return -1;
}

static int send_option(const struct nbd_stream *s, uint32_t opt, const uint8_t *data,
		       uint32_t len, struct error **errp)
{
	uint8_t *m = malloc(NBD_OPT_HDR_LEN + len);
	int ret;

	if (!m) {
		error_setg(errp, "NBD handshake: out of memory");
		return -1;
	}
	/* in one write: over TLS, one record */
	nbd_encode_opt_hdr(m, opt, len);
	if (len)
		memcpy(m + NBD_OPT_HDR_LEN, data, len);
	ret = s->write(s->opaque, m, NBD_OPT_HDR_LEN + len);
	free(m);
	if (ret < 0 && (ret == -EPIPE || ret == -ECONNRESET) && s->why) {
		uint8_t b;

		/* a TLS server that ended the session may have said why first: its alert */
		if (s->read(s->opaque, &b, 1) == -EPROTO)
			ret = -EPROTO;
	}
	return ret < 0 ? io_error(s, ret, "while sending an option", errp) : 0;
}

static int read_reply(const struct nbd_stream *s, uint32_t opt, struct opt_reply *r,
		      struct error **errp)
{
	uint8_t hdr[NBD_OPT_REPLY_HDR_LEN];
	struct nbd_opt_reply_hdr h;
	char what[64];
	int ret;

	snprintf(what, sizeof(what), "after %s", nbd_opt_name(opt));
	ret = s->read(s->opaque, hdr, sizeof(hdr));
	if (ret < 0)
		return io_error(s, ret, what, errp);
	nbd_decode_opt_reply_hdr(hdr, &h);
	if (h.magic != NBD_REP_MAGIC) {
		error_setg(errp, "NBD handshake: bad option reply magic %#llx %s",
			   (unsigned long long)h.magic, what);
		return -1;
	}
	if (h.option != opt) {
		error_setg(errp, "NBD handshake: a reply to option %u %s", h.option, what);
		return -1;
	}
	if (h.len > NBD_CLIENT_MAX_OPT_REPLY) {
		error_setg(errp, "NBD handshake: a reply of %u bytes %s (at most %u)", h.len, what,
			   NBD_CLIENT_MAX_OPT_REPLY);
		return -1;
	}
	ret = h.len ? s->read(s->opaque, r->data, h.len) : 0;
	if (ret < 0)
		return io_error(s, ret, what, errp);
	r->type = h.type;
	r->len = h.len;
	r->data[h.len] = '\0';
	return 0;
}

/* The server's message of an error reply, printable (written into r->data). */
static const char *reply_message(struct opt_reply *r)
{
	for (uint32_t i = 0; i < r->len; i++)
		if (r->data[i] < 0x20 || r->data[i] >= 0x7f)
			r->data[i] = '?';
	return (const char *)r->data;
}

static int unexpected(struct opt_reply *r, uint32_t opt, struct error **errp)
{
	if (NBD_REP_IS_ERR(r->type))
		error_setg(errp, "the NBD server refused %s with %s%s%s", nbd_opt_name(opt),
			   rep_name(r->type), r->len ? ": " : "", reply_message(r));
	else
		error_setg(errp, "NBD handshake: unexpected %s (%u) after %s", rep_name(r->type),
			   r->type, nbd_opt_name(opt));
	return -1;
}

static int opt_structured(const struct nbd_stream *s, struct nbd_export_info *info,
			  struct opt_reply *r, struct error **errp)
{
	if (send_option(s, NBD_OPT_STRUCTURED_REPLY, NULL, 0, errp) < 0 ||
	    read_reply(s, NBD_OPT_STRUCTURED_REPLY, r, errp) < 0)
		return -1;
	if (r->type == NBD_REP_ACK && !r->len) {
		info->structured = true;
		return 0;
	}
	if (NBD_REP_IS_ERR(r->type) && r->type != NBD_REP_ERR_SHUTDOWN)
		return 0; /* simple replies then */
	return unexpected(r, NBD_OPT_STRUCTURED_REPLY, errp);
}

/* Extended headers (proto.md's EXTENDED_HEADERS extension), structured replies with them. A
 * refusal (QEMU before 8.2, libnbd's servers before 1.18, ...) leaves compact headers: the
 * caller asks for structured replies then. */
static int opt_extended(const struct nbd_stream *s, struct nbd_export_info *info,
			struct opt_reply *r, struct error **errp)
{
	if (send_option(s, NBD_OPT_EXTENDED_HEADERS, NULL, 0, errp) < 0 ||
	    read_reply(s, NBD_OPT_EXTENDED_HEADERS, r, errp) < 0)
		return -1;
	if (r->type == NBD_REP_ACK && !r->len) {
		info->extended = info->structured = true;
		return 0;
	}
	if (NBD_REP_IS_ERR(r->type) && r->type != NBD_REP_ERR_SHUTDOWN)
		return 0;
	return unexpected(r, NBD_OPT_EXTENDED_HEADERS, errp);
}

/* Option data: the export name with its length, then what @tail holds. */
static uint8_t *name_option(const char *export, const uint8_t *tail, uint32_t tail_len,
			    uint32_t *len)
{
	uint32_t n = (uint32_t)strlen(export);
	uint8_t *b = malloc(4 + n + tail_len);

	if (!b)
		return NULL;
	nbd_put_be32(b, n);
	memcpy(b + 4, export, n);
	memcpy(b + 4 + n, tail, tail_len);
	*len = 4 + n + tail_len;
	return b;
}

static int opt_meta_context(const struct nbd_stream *s, const char *export,
			    struct nbd_export_info *info, struct opt_reply *r, struct error **errp)
{
	static const char ctx_name[] = NBD_META_BASE_ALLOCATION;
	uint8_t q[8 + sizeof(ctx_name) - 1], *data;
	uint32_t len;
	int ret = -1;

	nbd_put_be32(q, 1); /* one query */
	nbd_put_be32(q + 4, sizeof(ctx_name) - 1);
	memcpy(q + 8, ctx_name, sizeof(ctx_name) - 1);
	data = name_option(export, q, sizeof(q), &len);
	if (!data) {
		error_setg(errp, "NBD handshake: out of memory");
		return -1;
	}
	if (send_option(s, NBD_OPT_SET_META_CONTEXT, data, len, errp) < 0)
		goto out;
	for (int i = 0; i < MAX_REPLIES; i++) {
		if (read_reply(s, NBD_OPT_SET_META_CONTEXT, r, errp) < 0)
			goto out;
		if (r->type == NBD_REP_META_CONTEXT && r->len >= 4) {
			/* a context the client did not ask for is not used */
			if (r->len - 4 == sizeof(ctx_name) - 1 &&
			    !memcmp(r->data + 4, ctx_name, sizeof(ctx_name) - 1)) {
				info->base_allocation = true;
				info->meta_id = nbd_get_be32(r->data);
			}
			continue;
		}
		if (r->type == NBD_REP_ACK && !r->len) {
			ret = 0;
			goto out;
		}
		if (NBD_REP_IS_ERR(r->type) && r->type != NBD_REP_ERR_SHUTDOWN) {
			info->base_allocation = false; /* no context selected */
			ret = 0;
			goto out;
		}
		unexpected(r, NBD_OPT_SET_META_CONTEXT, errp);
		goto out;
	}
	error_setg(errp, "NBD handshake: more than %d replies to NBD_OPT_SET_META_CONTEXT",
		   MAX_REPLIES);
out:
	free(data);
	return ret;
}

/* NBD_REP_INFO of NBD_OPT_GO: the export and its block size; others are ignored. */
static int go_info(struct opt_reply *r, struct nbd_export_info *info, bool *got_export,
		   struct error **errp)
{
	struct nbd_info_export e;
	struct nbd_info_block_size b;
	uint16_t type;

	if (r->len < 2) {
		error_setg(errp, "NBD handshake: NBD_REP_INFO of %u bytes", r->len);
		return -1;
	}
	type = nbd_get_be16(r->data);
	if (type == NBD_INFO_EXPORT) {
		if (!nbd_decode_info_export(r->data, r->len, &e)) {
			error_setg(errp, "NBD handshake: NBD_INFO_EXPORT of %u bytes (12 expected)",
				   r->len);
			return -1;
		}
		info->size = e.size;
		info->flags = e.flags;
		*got_export = true;
	} else if (type == NBD_INFO_BLOCK_SIZE) {
		if (!nbd_decode_info_block_size(r->data, r->len, &b)) {
			error_setg(errp, "NBD handshake: NBD_INFO_BLOCK_SIZE of %u bytes (14 "
				   "expected)", r->len);
			return -1;
		}
		if (!nbd_block_size_valid(&b)) {
			error_setg(errp, "NBD handshake: the server's block sizes (minimum %u, "
				   "preferred %u, maximum %u) break the protocol's rules", b.min,
				   b.preferred, b.max);
			return -1;
		}
		info->min_block = b.min;
		info->pref_block = b.preferred;
		info->max_payload = b.max;
		info->block_size_given = true;
	}
	return 0;
}

/*
 * 0: in the transmission phase; 1: the server does not know NBD_OPT_GO; -1: failed (*refused:
 * by an error reply, the negotiation still in step).
 */
static int opt_go(const struct nbd_stream *s, const char *export, struct nbd_export_info *info,
		  struct opt_reply *r, bool *refused, struct error **errp)
{
	uint8_t q[4], *data;
	bool got_export = false;
	uint32_t len;
	int ret = -1;

	nbd_put_be16(q, 1); /* one information request */
	nbd_put_be16(q + 2, NBD_INFO_BLOCK_SIZE);
	data = name_option(export, q, sizeof(q), &len);
	if (!data) {
		error_setg(errp, "NBD handshake: out of memory");
		return -1;
	}
	if (send_option(s, NBD_OPT_GO, data, len, errp) < 0)
		goto out;
	for (int i = 0; i < MAX_REPLIES; i++) {
		if (read_reply(s, NBD_OPT_GO, r, errp) < 0)
			goto out;
		if (r->type == NBD_REP_INFO) {
			if (go_info(r, info, &got_export, errp) < 0)
				goto out;
			continue;
		}
		if (r->type == NBD_REP_ACK && !r->len) {
			if (!got_export) {
				error_setg(errp, "NBD handshake: NBD_OPT_GO succeeded without "
					   "NBD_INFO_EXPORT");
				goto out;
			}
			ret = 0;
		} else if (r->type == NBD_REP_ERR_UNSUP) {
			ret = 1;
		} else if (r->type == NBD_REP_ERR_UNKNOWN) {
			error_setg(errp, "the NBD server has no export '%s'%s%s", export,
				   r->len ? ": " : "", reply_message(r));
		} else if (r->type == NBD_REP_ERR_TLS_REQD) {
			error_setg(errp, "the NBD server requires TLS for export '%s': give the "
				   "node tls-creds (an --object tls-creds-x509 or tls-creds-psk with "
				   "endpoint=client)", export);
		} else {
			unexpected(r, NBD_OPT_GO, errp);
		}
		*refused = ret < 0 && NBD_REP_IS_ERR(r->type);
		goto out;
	}
	error_setg(errp, "NBD handshake: more than %d replies to NBD_OPT_GO", MAX_REPLIES);
out:
	free(data);
	return ret;
}

static int opt_export_name(const struct nbd_stream *s, const char *export, bool no_zeroes,
			   struct nbd_export_info *info, struct error **errp)
{
	uint8_t b[NBD_EXPORT_NAME_REPLY_LEN + NBD_ZERO_PAD_LEN];
	size_t n = NBD_EXPORT_NAME_REPLY_LEN + (no_zeroes ? 0 : NBD_ZERO_PAD_LEN);
	int ret;

	if (send_option(s, NBD_OPT_EXPORT_NAME, (const uint8_t *)export, (uint32_t)strlen(export),
			errp) < 0)
		return -1;
	ret = s->read(s->opaque, b, n);
	if (ret == -ECONNRESET) {
		error_setg(errp, "the NBD server closed the connection after NBD_OPT_EXPORT_NAME "
			   "(has it an export '%s'?)", export);
		return -1;
	}
	if (ret < 0)
		return io_error(s, ret, "after NBD_OPT_EXPORT_NAME", errp);
	info->size = nbd_get_be64(b);
	info->flags = nbd_get_be16(b + 8);
	return 0;
}

/* NBD_OPT_STARTTLS, and the TLS handshake once the server accepted it; never plaintext. */
static int opt_starttls(struct nbd_stream *s, const struct nbd_starttls *tls, struct opt_reply *r,
			struct error **errp)
{
	if (send_option(s, NBD_OPT_STARTTLS, NULL, 0, errp) < 0 ||
	    read_reply(s, NBD_OPT_STARTTLS, r, errp) < 0)
		return -1;
	if (r->type == NBD_REP_ACK && !r->len)
		return tls->start(tls->opaque, s, errp);
	if (!NBD_REP_IS_ERR(r->type))
		return unexpected(r, NBD_OPT_STARTTLS, errp);
	if (r->type == NBD_REP_ERR_UNSUP)
		error_setg(errp, "the NBD server does not support TLS (NBD_OPT_STARTTLS: "
			   "NBD_REP_ERR_UNSUP%s%s)", r->len ? ": " : "", reply_message(r));
	else
		error_setg(errp, "the NBD server refused TLS (NBD_OPT_STARTTLS: %s%s%s)",
			   rep_name(r->type), r->len ? ": " : "", reply_message(r));
	/* a soft disconnect (the reply does not matter) */
	if (!send_option(s, NBD_OPT_ABORT, NULL, 0, NULL))
		read_reply(s, NBD_OPT_ABORT, r, NULL);
	return -1;
}

/* The defaults of what the server did not say, and the checks of what it did. */
static int settle(struct nbd_export_info *info, struct error **errp)
{
	if (!(info->flags & NBD_FLAG_HAS_FLAGS)) {
		error_setg(errp, "NBD handshake: the transmission flags %#x lack "
			   "NBD_FLAG_HAS_FLAGS", info->flags);
		return -1;
	}
	if (info->size > (uint64_t)INT64_MAX) {
		error_setg(errp, "NBD handshake: an export of %llu bytes is too large",
			   (unsigned long long)info->size);
		return -1;
	}
	if (!info->block_size_given) {
		/* proto.md: 1 is the server's default, 512 what a cautious client assumes; a
		 * server that speaks structured replies is recent enough to take 1 */
		info->min_block = info->structured ? 1 : 512;
		info->pref_block = NBD_PREF_BLOCK_SIZE_DEFAULT;
		info->max_payload = NBD_CLIENT_MAX_PAYLOAD;
	}
	info->max_payload = MIN(info->max_payload, NBD_CLIENT_MAX_PAYLOAD);
	info->max_payload = ALIGN_DOWN(info->max_payload, info->min_block);
	/* a tail shorter than the minimum block cannot be addressed: it is not shown (QEMU too) */
	info->size = ALIGN_DOWN(info->size, (uint64_t)info->min_block);
	if (!info->structured)
		info->base_allocation = false;
	return 0;
}

int nbd_handshake(const struct nbd_stream *s, const char *export, struct nbd_export_info *info,
		  struct error **errp)
{
	struct nbd_stream cur = *s;

	return nbd_handshake_tls(&cur, export, NULL, info, errp);
}

int nbd_handshake_tls(struct nbd_stream *s, const char *export, const struct nbd_starttls *tls,
		      struct nbd_export_info *info, struct error **errp)
{
	uint8_t b[NBD_HANDSHAKE_LEN];
	struct opt_reply *r;
	uint16_t hs_flags;
	uint32_t cflags = 0;
	int ret;

	memset(info, 0, sizeof(*info));
	ret = s->read(s->opaque, b, sizeof(b));
	if (ret < 0)
		return io_error(s, ret, "before its greeting", errp);
	if (nbd_get_be64(b) != NBD_INIT_PASSWD) {
		error_setg(errp, "not an NBD server (its greeting starts %#llx, not NBDMAGIC)",
			   (unsigned long long)nbd_get_be64(b));
		return -1;
	}
	if (nbd_get_be64(b + 8) == NBD_OLDSTYLE_MAGIC) {
		error_setg(errp, "the NBD server speaks the oldstyle negotiation, which vireo's "
			   "NBD client does not support");
		return -1;
	}
	if (nbd_get_be64(b + 8) != NBD_OPTS_MAGIC) {
		error_setg(errp, "NBD handshake: bad magic %#llx after NBDMAGIC",
			   (unsigned long long)nbd_get_be64(b + 8));
		return -1;
	}
	hs_flags = nbd_get_be16(b + 16);
	if (tls && !(hs_flags & NBD_FLAG_FIXED_NEWSTYLE)) {
		error_setg(errp, "the NBD server cannot do TLS: it does not speak the fixed newstyle "
			   "negotiation");
		return -1;
	}
	if (hs_flags & NBD_FLAG_FIXED_NEWSTYLE)
		cflags |= NBD_FLAG_C_FIXED_NEWSTYLE;
	if (hs_flags & NBD_FLAG_NO_ZEROES)
		cflags |= NBD_FLAG_C_NO_ZEROES;
	nbd_put_be32(b, cflags);
	ret = s->write(s->opaque, b, NBD_CLIENT_FLAGS_LEN);
	if (ret < 0)
		return io_error(s, ret, "while sending the client flags", errp);
	r = malloc(sizeof(*r));
	if (!r) {
		error_setg(errp, "NBD handshake: out of memory");
		return -1;
	}
	ret = 1;
	if (tls && opt_starttls(s, tls, r, errp) < 0) {
		free(r);
		return -1;
	}
	if (hs_flags & NBD_FLAG_FIXED_NEWSTYLE) {
		bool refused = false;

		if (opt_extended(s, info, r, errp) < 0 ||
		    (!info->extended && opt_structured(s, info, r, errp) < 0) ||
		    (info->structured && opt_meta_context(s, export, info, r, errp) < 0))
			ret = -1;
		else
			ret = opt_go(s, export, info, r, &refused, errp);
		if (ret == 1 && info->extended) { /* NBD_OPT_EXPORT_NAME is not allowed now */
			error_setg(errp, "the NBD server took extended headers but not NBD_OPT_GO");
			ret = -1;
			refused = true;
		}
		if (refused) /* a soft disconnect, as proto.md asks (the reply does not matter) */
			if (!send_option(s, NBD_OPT_ABORT, NULL, 0, NULL))
				read_reply(s, NBD_OPT_ABORT, r, NULL);
	}
	if (ret == 1) { /* an old server: the export by name, no size constraints */
		info->block_size_given = false;
		ret = opt_export_name(s, export, hs_flags & NBD_FLAG_NO_ZEROES, info, errp);
	}
	free(r);
	if (ret < 0 || settle(info, errp) < 0)
		return -1;
	return 0;
}
