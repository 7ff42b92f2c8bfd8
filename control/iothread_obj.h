/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A program's --object's by id, for vireo and the storage daemon alike: QEMU's iothread object
 * (`--object iothread,id=ID,...`; in vireo also the ones `--drive iothreads=N` makes: io0,
 * io1, ...: a drive shares an iothread of that id if it exists, whoever made it) and its
 * throttle-group object. Main thread only (set-up, QMP, teardown): nothing here is locked.
 *
 *   --object iothread,id=ID[,poll-max-ns=N][,poll-grow=N][,poll-shrink=N]
 *                      [,poll-backoff=on|off][,nice=N]
 *   --object throttle-group,id=ID,limits.iops-total=N,...
 *   --object secret,id=ID,data=...|file=PATH[,format=base64]   (common/secret.h: an encrypted
 *                      image's key-secret / encrypt.key-secret)
 *   --object tls-creds-x509|tls-creds-psk|authz-simple,id=ID,...   (blockdev/nbd_tls_obj.h: the
 *                      NBD server's and the NBD client's TLS, the server's tls-authz)
 *
 * poll-max-ns, poll-grow and poll-shrink are QEMU's iothread properties (defaults as --drive's);
 * poll-backoff and nice are vireo's (--drive's poll-backoff and iothread-nice).
 */
#ifndef VIREO_CONTROL_IOTHREAD_OBJ_H
#define VIREO_CONTROL_IOTHREAD_OBJ_H

#include <stdbool.h>
#include <sys/uio.h>

#include "common/error.h"
#include "iothreads/iothread.h"

struct json_object;

#define IOTHREAD_OBJ_MAX 64
#define IOTHREAD_OBJ_ID_MAX 32 /* bytes of an id, with its NUL */

struct iothread_obj {
	char id[IOTHREAD_OBJ_ID_MAX];
	struct iothread *it;
	struct iothread_opts opts; /* what it was created with */
	bool has_memory;           /* guest RAM registered as its fixed buffers */
};

/* --object SPEC: qom-type iothread or throttle-group; refuses bad or unknown keys and a taken
 * id by name. */
int iothread_obj_add_spec(const char *spec, struct error **errp);
/* The same from --object's parsed keys (the caller's @a; keys are taken from it); its message
 * does not name the option. */
int iothread_obj_add_json(struct json_object *a, struct error **errp);

/*
 * The iothreads made from now on serve sockets too (iothread_opts.serves_sockets: their rings
 * allow the NBD server's ACCEPT, RECV and SENDMSG): the storage daemon's, whose exports may
 * name any of them. vireo's rings carry block I/O only.
 */
void iothread_obj_serve_sockets(void);

/* Starts iothread @id with @opts (@id must be free); @who (or NULL) prefixes messages. */
struct iothread_obj *iothread_obj_create(const char *id, const struct iothread_opts *opts,
					 const char *who, struct error **errp);

/* The iothread called @id, or NULL. */
struct iothread_obj *iothread_obj_find(const char *id);

/* The iothreads, in the order they were made (for query-iothreads): NULL past the last. */
struct iothread_obj *iothread_obj_at(unsigned int i);

/* Registers guest RAM (@regions) as @o's fixed buffers, once. */
int iothread_obj_register_memory(struct iothread_obj *o, const struct iovec *regions, int n,
				 struct error **errp);

/* Stops every iothread (after the devices on them are gone). */
void iothread_obj_cleanup(void);

#endif
