/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The `vhdx` format (Hyper-V VHDX, dynamic and fixed): the driver (blockdev/vhdx.c) and its
 * creation (vhdx_create.c, through the generic create hook of blockdev/create.h, with qemu-img's
 * options subformat=, block_size=, log_size=, block_state_zero=, preallocation=).
 */
#ifndef VIREO_BLOCKDEV_VHDX_H
#define VIREO_BLOCKDEV_VHDX_H

#include "blockdev/blockdev.h"
#include "blockdev/create.h"

extern const struct blockdev_driver blockdev_vhdx;

/* The -o options of vireo-img create -f vhdx, in qemu-img's order. */
extern const struct blockdev_create_opt_desc vhdx_create_opts[];
/* Creates the image ctx->filename (the driver's create op). */
int vhdx_create(const struct blockdev_create_ctx *ctx, struct error **errp);

#endif
