/* SPDX-License-Identifier: Apache-2.0 */
/* vireo-img: one function per command (tools/vireo-img-<command>.c) and the helpers they share. */
#ifndef VIREO_TOOLS_VIREO_IMG_H
#define VIREO_TOOLS_VIREO_IMG_H

#include <stdbool.h>
#include <stdint.h>

#include "blockdev/blockdev.h"
#include "blockdev/qcow2.h"
#include "common/error.h"

#define IMG_PROG "vireo-img"

int img_bitmap(int argc, char **argv);
int img_create(int argc, char **argv);
int img_info(int argc, char **argv);
int img_check(int argc, char **argv);
int img_commit(int argc, char **argv);
int img_compare(int argc, char **argv);
int img_convert(int argc, char **argv);
int img_dd(int argc, char **argv);
int img_map(int argc, char **argv);
int img_measure(int argc, char **argv);
int img_amend(int argc, char **argv);
int img_rebase(int argc, char **argv);
int img_resize(int argc, char **argv);
int img_snapshot(int argc, char **argv);

/* Calls @fn for each key=value of "a=1,b=2" (a bare key means "on"). Returns 0 or -1. */
int img_each_option(const char *list, int (*fn)(void *opaque, const char *key, const char *value,
						struct error **errp),
		    void *opaque, struct error **errp);

/* --image-opts was given: image arguments holding '=' are option strings
 * ("driver=luks,file.filename=x.luks,key-secret=sec0"). */
extern bool img_image_opts;

/* Opens @filename with format @fmt (NULL probes); @extra is "k=v,..." driver options or NULL. */
struct blockdev *img_open(const char *filename, const char *fmt, bool readonly, const char *extra,
			  struct error **errp);

/* qemu-img's "Snapshot list:" table of an ImageInfo's "snapshots" array (info, snapshot -l). */
struct json_object;
void img_print_snapshots(struct json_object *list);

/* qemu-img's human sizes: "64 MiB", "1.5 GiB", "196 KiB". */
void img_human_size(uint64_t bytes, char *buf, size_t len);

/*
 * Creates @filename in format @fmt (raw, qcow2, luks, or a format whose driver has a create
 * op) of @size bytes (0 with a backing file: the backing file's size). @options is qemu-img's
 * -o list; @backing / @backing_fmt come from -b / -F (NULL if not given). Prints
 * "Formatting ..." unless @quiet.
 */
int img_create_image(const char *filename, const char *fmt, const char *options, uint64_t size,
		     bool size_given, const char *backing, const char *backing_fmt, bool quiet,
		     struct error **errp);

/* Prints a usage error and returns 1 (qemu-img's status for a bad command line). */
int img_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Checks a preallocation= value (off, metadata, falloc, full); -1 with a message otherwise. */
int img_check_prealloc(const char *value, struct error **errp);
/* -o cluster_size=SIZE: a power of two from 512 B to 2 MiB, as log2 in *bits */
int img_parse_cluster_size(const char *value, unsigned *bits, struct error **errp);

/* -p (tools/vireo-img-progress.c): start, update with the bytes done so far, end (100%). */
struct img_progress {
	bool on;
	uint64_t total;
	int last; /* percent last printed */
};
void img_progress_start(struct img_progress *p, bool on, uint64_t total);
void img_progress_update(struct img_progress *p, uint64_t done);
/* Ends the line; shows 100 % only when @ok. */
void img_progress_end(struct img_progress *p, bool ok);

#endif
