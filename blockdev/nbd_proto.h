/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NBD wire protocol (NetworkBlockDevice/nbd doc/proto.md), shared by vireo's NBD server and
 * NBD client driver: every constant of the "Values" section, the size limits both sides enforce,
 * and pure big-endian encoders/decoders for each fixed-layout message. Nothing here does I/O or
 * allocates; the structs are host-order views, never cast onto wire bytes (no packing, no
 * alignment traps), so a hostile peer's bytes are only ever read through nbd_get_be*().
 */
#ifndef VIREO_BLOCKDEV_NBD_PROTO_H
#define VIREO_BLOCKDEV_NBD_PROTO_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- magics ---- */
#define NBD_INIT_PASSWD 0x4e42444d41474943ULL      /* "NBDMAGIC" */
#define NBD_OLDSTYLE_MAGIC 0x00420281861253ULL     /* cliserv_magic (oldstyle; never used) */
#define NBD_OPTS_MAGIC 0x49484156454f5054ULL       /* "IHAVEOPT": newstyle + each option */
#define NBD_REP_MAGIC 0x0003e889045565a9ULL        /* option reply */
#define NBD_REQUEST_MAGIC 0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698u
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efu
#define NBD_EXTENDED_REQUEST_MAGIC 0x21e41c71u     /* EXTENDED_HEADERS extension */
#define NBD_EXTENDED_REPLY_MAGIC 0x6e8a278cu       /* EXTENDED_HEADERS extension */

/* ---- handshake flags (server, 16 bits) ---- */
#define NBD_FLAG_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_NO_ZEROES (1u << 1)

/* ---- client flags (32 bits) ---- */
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES (1u << 1)
#define NBD_FLAG_C_KNOWN (NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)

/* ---- transmission flags (16 bits) ---- */
#define NBD_FLAG_HAS_FLAGS (1u << 0)
#define NBD_FLAG_READ_ONLY (1u << 1)
#define NBD_FLAG_SEND_FLUSH (1u << 2)
#define NBD_FLAG_SEND_FUA (1u << 3)
#define NBD_FLAG_ROTATIONAL (1u << 4)
#define NBD_FLAG_SEND_TRIM (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN (1u << 8)
#define NBD_FLAG_SEND_RESIZE (1u << 9)             /* RESIZE extension */
#define NBD_FLAG_SEND_CACHE (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO (1u << 11)
#define NBD_FLAG_BLOCK_STATUS_PAYLOAD (1u << 12)   /* EXTENDED_HEADERS extension */

/* ---- option types ---- */
#define NBD_OPT_EXPORT_NAME 1u
#define NBD_OPT_ABORT 2u
#define NBD_OPT_LIST 3u
#define NBD_OPT_PEEK_EXPORT 4u                     /* withdrawn */
#define NBD_OPT_STARTTLS 5u
#define NBD_OPT_INFO 6u
#define NBD_OPT_GO 7u
#define NBD_OPT_STRUCTURED_REPLY 8u
#define NBD_OPT_LIST_META_CONTEXT 9u
#define NBD_OPT_SET_META_CONTEXT 10u
#define NBD_OPT_EXTENDED_HEADERS 11u               /* EXTENDED_HEADERS extension */

/* ---- option reply types ---- */
#define NBD_REP_ACK 1u
#define NBD_REP_SERVER 2u
#define NBD_REP_INFO 3u
#define NBD_REP_META_CONTEXT 4u
#define NBD_REP_FLAG_ERROR (1u << 31)
#define NBD_REP_ERR_UNSUP (NBD_REP_FLAG_ERROR + 1)
#define NBD_REP_ERR_POLICY (NBD_REP_FLAG_ERROR + 2)
#define NBD_REP_ERR_INVALID (NBD_REP_FLAG_ERROR + 3)
#define NBD_REP_ERR_PLATFORM (NBD_REP_FLAG_ERROR + 4)
#define NBD_REP_ERR_TLS_REQD (NBD_REP_FLAG_ERROR + 5)
#define NBD_REP_ERR_UNKNOWN (NBD_REP_FLAG_ERROR + 6)
#define NBD_REP_ERR_SHUTDOWN (NBD_REP_FLAG_ERROR + 7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD (NBD_REP_FLAG_ERROR + 8)
#define NBD_REP_ERR_TOO_BIG (NBD_REP_FLAG_ERROR + 9)
#define NBD_REP_ERR_EXT_HEADER_REQD (NBD_REP_FLAG_ERROR + 10)
#define NBD_REP_IS_ERR(t) (((t) & NBD_REP_FLAG_ERROR) != 0)

/* ---- NBD_REP_INFO information types ---- */
#define NBD_INFO_EXPORT 0u
#define NBD_INFO_NAME 1u
#define NBD_INFO_DESCRIPTION 2u
#define NBD_INFO_BLOCK_SIZE 3u

/* ---- command types ---- */
#define NBD_CMD_READ 0u
#define NBD_CMD_WRITE 1u
#define NBD_CMD_DISC 2u
#define NBD_CMD_FLUSH 3u
#define NBD_CMD_TRIM 4u
#define NBD_CMD_CACHE 5u
#define NBD_CMD_WRITE_ZEROES 6u
#define NBD_CMD_BLOCK_STATUS 7u
#define NBD_CMD_RESIZE 8u                          /* RESIZE extension */

/* ---- command flags ---- */
#define NBD_CMD_FLAG_FUA (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE (1u << 1)
#define NBD_CMD_FLAG_DF (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO (1u << 4)
#define NBD_CMD_FLAG_PAYLOAD_LEN (1u << 5)         /* EXTENDED_HEADERS extension */

/* ---- structured reply flags and types ---- */
#define NBD_REPLY_FLAG_DONE (1u << 0)
#define NBD_REPLY_TYPE_NONE 0u
#define NBD_REPLY_TYPE_OFFSET_DATA 1u
#define NBD_REPLY_TYPE_OFFSET_HOLE 2u
#define NBD_REPLY_TYPE_BLOCK_STATUS 5u
#define NBD_REPLY_TYPE_BLOCK_STATUS_EXT 6u         /* EXTENDED_HEADERS extension */
#define NBD_REPLY_TYPE_ERROR_BIT (1u << 15)
#define NBD_REPLY_TYPE_ERROR (NBD_REPLY_TYPE_ERROR_BIT + 1)
#define NBD_REPLY_TYPE_ERROR_OFFSET (NBD_REPLY_TYPE_ERROR_BIT + 2)
#define NBD_REPLY_TYPE_IS_ERR(t) (((t) & NBD_REPLY_TYPE_ERROR_BIT) != 0)

/* ---- error values (the protocol's, not the host's errno) ---- */
#define NBD_SUCCESS 0u
#define NBD_EPERM 1u
#define NBD_EIO 5u
#define NBD_ENOMEM 12u
#define NBD_EINVAL 22u
#define NBD_ENOSPC 28u
#define NBD_EOVERFLOW 75u
#define NBD_ENOTSUP 95u
#define NBD_ESHUTDOWN 108u

/* ---- base:allocation status flags ---- */
#define NBD_STATE_HOLE (1u << 0)
#define NBD_STATE_ZERO (1u << 1)
/* qemu:dirty-bitmap:NAME status flag */
#define NBD_STATE_DIRTY (1u << 0)

/* ---- metadata context names ---- */
#define NBD_META_NS_BASE "base:"
#define NBD_META_BASE_ALLOCATION "base:allocation"
#define NBD_META_NS_QEMU "qemu:"
#define NBD_META_QEMU_DIRTY_BITMAP_PREFIX "qemu:dirty-bitmap:"

/* ---- sizes ---- */
#define NBD_DEFAULT_PORT 10809
#define NBD_MAX_STRING 4096u                 /* export names, messages, context names */
#define NBD_MAX_EXPORT_BITMAPS 8             /* ours: qemu:dirty-bitmap:NAME contexts per export */
#define NBD_MAX_PAYLOAD (32u * 1024 * 1024)  /* 2^25: the max payload vireo advertises/accepts */
#define NBD_MIN_BLOCK_SIZE_DEFAULT 1u
#define NBD_PREF_BLOCK_SIZE_DEFAULT 4096u
#define NBD_MAX_BLOCK_SIZE_LIMIT 65536u      /* a minimum block size may not exceed 2^16 */
#define NBD_MAX_EXTENTS 1048576u             /* descriptors per BLOCK_STATUS chunk (2^20) */
#define NBD_MAX_META_QUERIES 128u            /* vireo's cap on queries per *_META_CONTEXT */
#define NBD_MAX_OPTION_LEN                   /* vireo's cap on one option's data */ \
	(4u + NBD_MAX_STRING + 4u + NBD_MAX_META_QUERIES * (4u + NBD_MAX_STRING))
#define NBD_ZERO_PAD_LEN 124u                /* after NBD_OPT_EXPORT_NAME's reply */

/* fixed message lengths on the wire */
#define NBD_HANDSHAKE_LEN 18u                /* INIT_PASSWD, IHAVEOPT, 16-bit flags */
#define NBD_CLIENT_FLAGS_LEN 4u
#define NBD_OPT_HDR_LEN 16u                  /* IHAVEOPT, option, length */
#define NBD_OPT_REPLY_HDR_LEN 20u            /* magic, option, type, length */
#define NBD_EXPORT_NAME_REPLY_LEN 10u        /* size, flags (then optional 124 zeroes) */
#define NBD_REQUEST_LEN 28u
#define NBD_EXTENDED_REQUEST_LEN 32u
#define NBD_SIMPLE_REPLY_LEN 16u
#define NBD_STRUCTURED_REPLY_LEN 20u
#define NBD_EXTENDED_REPLY_LEN 32u
#define NBD_INFO_EXPORT_LEN 12u              /* type + size + flags */
#define NBD_INFO_BLOCK_SIZE_LEN 14u          /* type + min + preferred + max */
#define NBD_OFFSET_HOLE_LEN 12u              /* offset + hole size */
#define NBD_OFFSET_DATA_HDR_LEN 8u           /* offset (data follows) */
#define NBD_ERROR_CHUNK_HDR_LEN 6u           /* error + message length (message follows) */
#define NBD_EXTENT_LEN 8u                    /* length + flags */
#define NBD_EXTENT_EXT_LEN 16u               /* EXTENDED_HEADERS: 64-bit length + 64-bit flags */
#define NBD_BLOCK_STATUS_HDR_LEN 4u          /* context id (extents follow) */
#define NBD_BLOCK_STATUS_EXT_HDR_LEN 8u      /* context id + extent count */

/* ---- big-endian accessors ---- */
static inline void nbd_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void nbd_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void nbd_put_be64(uint8_t *p, uint64_t v)
{
	nbd_put_be32(p, (uint32_t)(v >> 32));
	nbd_put_be32(p + 4, (uint32_t)v);
}

static inline uint16_t nbd_get_be16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t nbd_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t nbd_get_be64(const uint8_t *p)
{
	return (uint64_t)nbd_get_be32(p) << 32 | nbd_get_be32(p + 4);
}

/* ---- handshake ---- */

/* S: NBDMAGIC, IHAVEOPT, handshake flags. buf: NBD_HANDSHAKE_LEN bytes. */
static inline void nbd_encode_handshake(uint8_t *buf, uint16_t hs_flags)
{
	nbd_put_be64(buf, NBD_INIT_PASSWD);
	nbd_put_be64(buf + 8, NBD_OPTS_MAGIC);
	nbd_put_be16(buf + 16, hs_flags);
}

/* C: option header. */
struct nbd_opt_hdr {
	uint64_t magic;  /* NBD_OPTS_MAGIC */
	uint32_t option;
	uint32_t len;    /* option data that follows */
};

static inline void nbd_encode_opt_hdr(uint8_t *buf, uint32_t option, uint32_t len)
{
	nbd_put_be64(buf, NBD_OPTS_MAGIC);
	nbd_put_be32(buf + 8, option);
	nbd_put_be32(buf + 12, len);
}

static inline void nbd_decode_opt_hdr(const uint8_t *buf, struct nbd_opt_hdr *h)
{
	h->magic = nbd_get_be64(buf);
	h->option = nbd_get_be32(buf + 8);
	h->len = nbd_get_be32(buf + 12);
}

/* S: option reply header (fixed newstyle). */
struct nbd_opt_reply_hdr {
	uint64_t magic;  /* NBD_REP_MAGIC */
	uint32_t option;
	uint32_t type;   /* NBD_REP_* */
	uint32_t len;
};

static inline void nbd_encode_opt_reply_hdr(uint8_t *buf, uint32_t option, uint32_t type,
					    uint32_t len)
{
	nbd_put_be64(buf, NBD_REP_MAGIC);
	nbd_put_be32(buf + 8, option);
	nbd_put_be32(buf + 12, type);
	nbd_put_be32(buf + 16, len);
}

static inline void nbd_decode_opt_reply_hdr(const uint8_t *buf, struct nbd_opt_reply_hdr *h)
{
	h->magic = nbd_get_be64(buf);
	h->option = nbd_get_be32(buf + 8);
	h->type = nbd_get_be32(buf + 12);
	h->len = nbd_get_be32(buf + 16);
}

/* S: reply to NBD_OPT_EXPORT_NAME: size, transmission flags (NBD_EXPORT_NAME_REPLY_LEN). */
static inline void nbd_encode_export_name_reply(uint8_t *buf, uint64_t size, uint16_t tx_flags)
{
	nbd_put_be64(buf, size);
	nbd_put_be16(buf + 8, tx_flags);
}

/* NBD_REP_INFO payloads. */
struct nbd_info_export {
	uint64_t size;
	uint16_t flags;  /* transmission flags */
};

struct nbd_info_block_size {
	uint32_t min;
	uint32_t preferred;
	uint32_t max;
};

/* buf: NBD_INFO_EXPORT_LEN bytes */
static inline void nbd_encode_info_export(uint8_t *buf, const struct nbd_info_export *i)
{
	nbd_put_be16(buf, NBD_INFO_EXPORT);
	nbd_put_be64(buf + 2, i->size);
	nbd_put_be16(buf + 10, i->flags);
}

/* Decodes the payload after the 16-bit type; len is the whole NBD_REP_INFO length. */
static inline bool nbd_decode_info_export(const uint8_t *buf, uint32_t len,
					  struct nbd_info_export *i)
{
	if (len != NBD_INFO_EXPORT_LEN || nbd_get_be16(buf) != NBD_INFO_EXPORT)
		return false;
	i->size = nbd_get_be64(buf + 2);
	i->flags = nbd_get_be16(buf + 10);
	return true;
}

/* buf: NBD_INFO_BLOCK_SIZE_LEN bytes */
static inline void nbd_encode_info_block_size(uint8_t *buf, const struct nbd_info_block_size *b)
{
	nbd_put_be16(buf, NBD_INFO_BLOCK_SIZE);
	nbd_put_be32(buf + 2, b->min);
	nbd_put_be32(buf + 6, b->preferred);
	nbd_put_be32(buf + 10, b->max);
}

static inline bool nbd_decode_info_block_size(const uint8_t *buf, uint32_t len,
					      struct nbd_info_block_size *b)
{
	if (len != NBD_INFO_BLOCK_SIZE_LEN || nbd_get_be16(buf) != NBD_INFO_BLOCK_SIZE)
		return false;
	b->min = nbd_get_be32(buf + 2);
	b->preferred = nbd_get_be32(buf + 6);
	b->max = nbd_get_be32(buf + 10);
	return true;
}

/* Whether constraints obey proto.md's "Size constraints" (powers of two, ordering, limits). */
static inline bool nbd_block_size_valid(const struct nbd_info_block_size *b)
{
	uint32_t floor = b->min > 512 ? b->min : 512;

	if (b->min == 0 || (b->min & (b->min - 1)) || b->min > NBD_MAX_BLOCK_SIZE_LIMIT)
		return false;
	if (b->preferred < floor || (b->preferred & (b->preferred - 1)))
		return false;
	return b->max >= b->preferred;
}

/* NBD_INFO_NAME / NBD_INFO_DESCRIPTION: 16-bit type then the string (caller copies it). */
static inline void nbd_encode_info_string_hdr(uint8_t *buf, uint16_t info_type)
{
	nbd_put_be16(buf, info_type);
}

/* ---- transmission ---- */

/* C: request (compact NBD_REQUEST_MAGIC or extended NBD_EXTENDED_REQUEST_MAGIC). */
struct nbd_request {
	uint32_t magic;
	uint16_t flags;  /* NBD_CMD_FLAG_* */
	uint16_t type;   /* NBD_CMD_* */
	uint64_t cookie;
	uint64_t offset;
	uint64_t len;    /* 32 bits on the wire unless extended */
};

/* buf: NBD_REQUEST_LEN bytes */
static inline void nbd_encode_request(uint8_t *buf, const struct nbd_request *r)
{
	nbd_put_be32(buf, NBD_REQUEST_MAGIC);
	nbd_put_be16(buf + 4, r->flags);
	nbd_put_be16(buf + 6, r->type);
	nbd_put_be64(buf + 8, r->cookie);
	nbd_put_be64(buf + 16, r->offset);
	nbd_put_be32(buf + 24, (uint32_t)r->len);
}

/* buf: NBD_EXTENDED_REQUEST_LEN bytes */
static inline void nbd_encode_extended_request(uint8_t *buf, const struct nbd_request *r)
{
	nbd_put_be32(buf, NBD_EXTENDED_REQUEST_MAGIC);
	nbd_put_be16(buf + 4, r->flags);
	nbd_put_be16(buf + 6, r->type);
	nbd_put_be64(buf + 8, r->cookie);
	nbd_put_be64(buf + 16, r->offset);
	nbd_put_be64(buf + 24, r->len);
}

/* Decodes a compact request (NBD_REQUEST_LEN bytes); the caller checks r->magic. */
static inline void nbd_decode_request(const uint8_t *buf, struct nbd_request *r)
{
	r->magic = nbd_get_be32(buf);
	r->flags = nbd_get_be16(buf + 4);
	r->type = nbd_get_be16(buf + 6);
	r->cookie = nbd_get_be64(buf + 8);
	r->offset = nbd_get_be64(buf + 16);
	r->len = nbd_get_be32(buf + 24);
}

/* Decodes an extended request (NBD_EXTENDED_REQUEST_LEN bytes); the caller checks r->magic. */
static inline void nbd_decode_extended_request(const uint8_t *buf, struct nbd_request *r)
{
	r->magic = nbd_get_be32(buf);
	r->flags = nbd_get_be16(buf + 4);
	r->type = nbd_get_be16(buf + 6);
	r->cookie = nbd_get_be64(buf + 8);
	r->offset = nbd_get_be64(buf + 16);
	r->len = nbd_get_be64(buf + 24);
}

/* S: simple reply. */
struct nbd_simple_reply {
	uint32_t magic;  /* NBD_SIMPLE_REPLY_MAGIC */
	uint32_t error;  /* NBD_E* */
	uint64_t cookie;
};

/* buf: NBD_SIMPLE_REPLY_LEN bytes */
static inline void nbd_encode_simple_reply(uint8_t *buf, uint32_t error, uint64_t cookie)
{
	nbd_put_be32(buf, NBD_SIMPLE_REPLY_MAGIC);
	nbd_put_be32(buf + 4, error);
	nbd_put_be64(buf + 8, cookie);
}

static inline void nbd_decode_simple_reply(const uint8_t *buf, struct nbd_simple_reply *r)
{
	r->magic = nbd_get_be32(buf);
	r->error = nbd_get_be32(buf + 4);
	r->cookie = nbd_get_be64(buf + 8);
}

/* S: structured reply chunk header (compact) or extended reply header. */
struct nbd_chunk_hdr {
	uint32_t magic;   /* NBD_STRUCTURED_REPLY_MAGIC or NBD_EXTENDED_REPLY_MAGIC */
	uint16_t flags;   /* NBD_REPLY_FLAG_* */
	uint16_t type;    /* NBD_REPLY_TYPE_* */
	uint64_t cookie;
	uint64_t offset;  /* extended only: the request's offset */
	uint64_t len;     /* payload length; 32 bits on the wire unless extended */
};

/* buf: NBD_STRUCTURED_REPLY_LEN bytes */
static inline void nbd_encode_chunk_hdr(uint8_t *buf, uint16_t flags, uint16_t type,
					uint64_t cookie, uint32_t len)
{
	nbd_put_be32(buf, NBD_STRUCTURED_REPLY_MAGIC);
	nbd_put_be16(buf + 4, flags);
	nbd_put_be16(buf + 6, type);
	nbd_put_be64(buf + 8, cookie);
	nbd_put_be32(buf + 16, len);
}

/* buf: NBD_EXTENDED_REPLY_LEN bytes */
static inline void nbd_encode_extended_reply_hdr(uint8_t *buf, uint16_t flags, uint16_t type,
						 uint64_t cookie, uint64_t offset, uint64_t len)
{
	nbd_put_be32(buf, NBD_EXTENDED_REPLY_MAGIC);
	nbd_put_be16(buf + 4, flags);
	nbd_put_be16(buf + 6, type);
	nbd_put_be64(buf + 8, cookie);
	nbd_put_be64(buf + 16, offset);
	nbd_put_be64(buf + 24, len);
}

/* Decodes NBD_STRUCTURED_REPLY_LEN bytes; offset is set to 0. The caller checks magic. */
static inline void nbd_decode_chunk_hdr(const uint8_t *buf, struct nbd_chunk_hdr *h)
{
	h->magic = nbd_get_be32(buf);
	h->flags = nbd_get_be16(buf + 4);
	h->type = nbd_get_be16(buf + 6);
	h->cookie = nbd_get_be64(buf + 8);
	h->offset = 0;
	h->len = nbd_get_be32(buf + 16);
}

/* Decodes NBD_EXTENDED_REPLY_LEN bytes. The caller checks magic. */
static inline void nbd_decode_extended_reply_hdr(const uint8_t *buf, struct nbd_chunk_hdr *h)
{
	h->magic = nbd_get_be32(buf);
	h->flags = nbd_get_be16(buf + 4);
	h->type = nbd_get_be16(buf + 6);
	h->cookie = nbd_get_be64(buf + 8);
	h->offset = nbd_get_be64(buf + 16);
	h->len = nbd_get_be64(buf + 24);
}

/* Chunk payload pieces. */
static inline void nbd_encode_offset_hole(uint8_t *buf, uint64_t offset, uint32_t size)
{
	nbd_put_be64(buf, offset);
	nbd_put_be32(buf + 8, size);
}

static inline void nbd_encode_error_chunk_hdr(uint8_t *buf, uint32_t error, uint16_t msg_len)
{
	nbd_put_be32(buf, error);
	nbd_put_be16(buf + 4, msg_len);
}

static inline void nbd_encode_extent(uint8_t *buf, uint32_t len, uint32_t flags)
{
	nbd_put_be32(buf, len);
	nbd_put_be32(buf + 4, flags);
}

static inline void nbd_encode_extent_ext(uint8_t *buf, uint64_t len, uint64_t flags)
{
	nbd_put_be64(buf, len);
	nbd_put_be64(buf + 8, flags);
}

/* ---- errno mapping ---- */

/* Host -errno or errno (sign ignored) -> the protocol's error value (proto.md "Error values"). */
static inline uint32_t nbd_errno_to_err(int err)
{
	switch (err < 0 ? -err : err) {
	case 0: return NBD_SUCCESS;
	case EPERM: case EROFS: case EACCES: return NBD_EPERM;
	case ENOMEM: return NBD_ENOMEM;
	case EINVAL: return NBD_EINVAL;
	case ENOSPC: case EDQUOT: case EFBIG: return NBD_ENOSPC;
	case EOVERFLOW: return NBD_EOVERFLOW;
	case ENOTSUP: return NBD_ENOTSUP;
	case ESHUTDOWN: return NBD_ESHUTDOWN;
	default: return NBD_EIO;
	}
}

/* The protocol's error value -> a positive errno; unknown values are EINVAL as proto.md asks. */
static inline int nbd_err_to_errno(uint32_t err)
{
	switch (err) {
	case NBD_SUCCESS: return 0;
	case NBD_EPERM: return EPERM;
	case NBD_EIO: return EIO;
	case NBD_ENOMEM: return ENOMEM;
	case NBD_EINVAL: return EINVAL;
	case NBD_ENOSPC: return ENOSPC;
	case NBD_EOVERFLOW: return EOVERFLOW;
	case NBD_ENOTSUP: return ENOTSUP;
	case NBD_ESHUTDOWN: return ESHUTDOWN;
	default: return EINVAL;
	}
}

/* ---- names (for messages and logs) ---- */
static inline const char *nbd_opt_name(uint32_t opt)
{
	switch (opt) {
	case NBD_OPT_EXPORT_NAME: return "NBD_OPT_EXPORT_NAME";
	case NBD_OPT_ABORT: return "NBD_OPT_ABORT";
	case NBD_OPT_LIST: return "NBD_OPT_LIST";
	case NBD_OPT_PEEK_EXPORT: return "NBD_OPT_PEEK_EXPORT";
	case NBD_OPT_STARTTLS: return "NBD_OPT_STARTTLS";
	case NBD_OPT_INFO: return "NBD_OPT_INFO";
	case NBD_OPT_GO: return "NBD_OPT_GO";
	case NBD_OPT_STRUCTURED_REPLY: return "NBD_OPT_STRUCTURED_REPLY";
	case NBD_OPT_LIST_META_CONTEXT: return "NBD_OPT_LIST_META_CONTEXT";
	case NBD_OPT_SET_META_CONTEXT: return "NBD_OPT_SET_META_CONTEXT";
	case NBD_OPT_EXTENDED_HEADERS: return "NBD_OPT_EXTENDED_HEADERS";
	default: return "unknown option";
	}
}

static inline const char *nbd_cmd_name(uint16_t cmd)
{
	switch (cmd) {
	case NBD_CMD_READ: return "NBD_CMD_READ";
	case NBD_CMD_WRITE: return "NBD_CMD_WRITE";
	case NBD_CMD_DISC: return "NBD_CMD_DISC";
	case NBD_CMD_FLUSH: return "NBD_CMD_FLUSH";
	case NBD_CMD_TRIM: return "NBD_CMD_TRIM";
	case NBD_CMD_CACHE: return "NBD_CMD_CACHE";
	case NBD_CMD_WRITE_ZEROES: return "NBD_CMD_WRITE_ZEROES";
	case NBD_CMD_BLOCK_STATUS: return "NBD_CMD_BLOCK_STATUS";
	case NBD_CMD_RESIZE: return "NBD_CMD_RESIZE";
	default: return "unknown command";
	}
}

static inline const char *nbd_err_name(uint32_t err)
{
	switch (err) {
	case NBD_SUCCESS: return "success";
	case NBD_EPERM: return "NBD_EPERM";
	case NBD_EIO: return "NBD_EIO";
	case NBD_ENOMEM: return "NBD_ENOMEM";
	case NBD_EINVAL: return "NBD_EINVAL";
	case NBD_ENOSPC: return "NBD_ENOSPC";
	case NBD_EOVERFLOW: return "NBD_EOVERFLOW";
	case NBD_ENOTSUP: return "NBD_ENOTSUP";
	case NBD_ESHUTDOWN: return "NBD_ESHUTDOWN";
	default: return "unknown error";
	}
}

#endif /* VIREO_BLOCKDEV_NBD_PROTO_H */
