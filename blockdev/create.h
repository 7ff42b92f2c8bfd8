/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Creating an image of a format: the generic hook that vireo-img create and convert -O FMT go
 * through for every format whose driver has a @create op (blockdev/create.c).
 *
 * A driver lists the -o options it takes in @create_opts, with qemu-img's names, in the order
 * qemu-img prints them on its "Formatting '...'" line (its QemuOptsList: the format's options,
 * then the file protocol's, e.g. preallocation), each with a type and qemu-img's default.
 * blockdev_create_prepare() checks the user's key=value list against that table (an unknown key,
 * a value of the wrong type or outside its choices is refused, naming the key and the format),
 * blockdev_create_summary() gives the text of qemu-img's line, and blockdev_create_run() calls
 * the driver, which reads its options back with blockdev_create_str() and friends.
 *
 * A format with a create op also takes the open option close-flush=on|off (qcow2's: off, the
 * file is not flushed when the node closes): vireo-img convert opens the target it created with
 * close-flush=off under -t unsafe, its default, as qemu-img never flushes such a target.
 */
#ifndef VIREO_BLOCKDEV_CREATE_H
#define VIREO_BLOCKDEV_CREATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "blockdev/blockdev.h"

enum blockdev_create_type {
	BLOCKDEV_CREATE_STR,  /* shown as given */
	BLOCKDEV_CREATE_BOOL, /* on|off|yes|no|true|false|1|0, shown as given ("on" when bare) */
	BLOCKDEV_CREATE_SIZE, /* "64k", "1M", ...: shown in bytes */
};

/**
 * struct blockdev_create_opt_desc - one -o option a format's create takes
 * @name: qemu-img's name ("subformat")
 * @type: how the value is checked and shown
 * @def: the default qemu-img shows on its "Formatting" line when the option is not given
 *       (NULL: shown only when given)
 * @choices: a STR option's allowed values, '|'-separated ("dynamic|fixed"); NULL: any
 * @help: what -o help says of it (qemu-img's words; NULL: nothing)
 */
struct blockdev_create_opt_desc {
	const char *name;
	enum blockdev_create_type type;
	const char *def;
	const char *choices;
	const char *help;
};

/**
 * struct blockdev_create_ctx - one image to create, as the driver's create gets it
 * @drv: the format
 * @filename: the host file to create (or truncate)
 * @size: the virtual size asked for, in bytes (the driver rounds it as its format must)
 * @given: per @drv->create_opts entry, the value the user gave (NULL: not given)
 * @num: per entry, a BOOL's (0/1) or SIZE's parsed value when given
 * @nr: entries of @drv->create_opts
 */
struct blockdev_create_ctx {
	const struct blockdev_driver *drv;
	const char *filename;
	uint64_t size;
	char **given;
	uint64_t *num;
	size_t nr;
};

/**
 * blockdev_create_prepare - check a format's create options
 * @ctx: filled here; release with blockdev_create_free() (also after a failure)
 * @drv: a format with a create op
 * @opts: the user's options (size, backing file and the like already taken out), in order; a
 *        key given twice keeps its last value
 *
 * Returns 0, or -1 with "format FMT does not support the option 'KEY'" or a message naming the
 * key and its bad value.
 */
int blockdev_create_prepare(struct blockdev_create_ctx *ctx, const struct blockdev_driver *drv,
			    const char *filename, uint64_t size, const struct blockdev_opt *opts,
			    size_t nr_opts, struct error **errp);
void blockdev_create_free(struct blockdev_create_ctx *ctx);

/* -o help: "Supported options:" and each option of @drv's create (size too), sorted, as
 * qemu-img lists them. */
void blockdev_create_help(const struct blockdev_driver *drv, FILE *out);

/* true when @drv's create takes the option @name */
bool blockdev_create_takes(const struct blockdev_driver *drv, const char *name);

/* qemu-img's options after "fmt=FMT ": "size=N subformat=fixed ..." (malloc'd, NULL: no memory) */
char *blockdev_create_summary(const struct blockdev_create_ctx *ctx);

/* Creates the image: the driver's create. 0 or -1 with the driver's message. */
int blockdev_create_run(const struct blockdev_create_ctx *ctx, struct error **errp);

/* For drivers: whether @name was given; its value (given, else the default, else NULL); a
 * BOOL's value (given, else the default, else false); a SIZE's (given, else @def). */
bool blockdev_create_given(const struct blockdev_create_ctx *ctx, const char *name);
const char *blockdev_create_str(const struct blockdev_create_ctx *ctx, const char *name);
bool blockdev_create_bool(const struct blockdev_create_ctx *ctx, const char *name);
uint64_t blockdev_create_size(const struct blockdev_create_ctx *ctx, const char *name,
			      uint64_t def);

/* A random (version 4) UUID in RFC 4122 byte order, for a new image's identity; 0 or -errno. */
int blockdev_create_uuid(uint8_t uuid[16]);

#endif
