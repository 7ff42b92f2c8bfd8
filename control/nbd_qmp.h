/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NBD server as QMP and qemu-storage-daemon's command line see it, over
 * blockdev/nbd_server.h: one server per process, as QEMU's.
 *
 *   nbd-server-start {addr: SocketAddressLegacy, max-connections, handshake-max-seconds,
 *                     tls-creds, tls-authz}            QEMU's (TLS objects: nbd_tls_obj.h)
 *   --nbd-server addr.type=inet,addr.host=H,addr.port=P | addr.type=unix,addr.path=PATH
 *                [,max-connections=N][,handshake-max-seconds=N][,tls-creds=ID][,tls-authz=ID]
 *                                                      (flat SocketAddress)
 *   nbd-server-stop                                    every export goes (BLOCK_EXPORT_DELETED)
 *   block-export-add / --export [type=]nbd,id=ID,node-name=NODE[,name=NAME][,description=D]
 *                [,writable=on|off][,bitmaps.0=B | bitmap=B][,iothread=ID][,fixed-iothread=..]
 *   block-export-del {id, mode: safe|hard}             BLOCK_EXPORT_DELETED when it is gone
 *   query-block-exports                                QEMU's BlockExportInfo of each
 *
 * Connections are accepted on an iothread of the server's own, made when the server starts
 * (poll-max-ns=0: an idle daemon sleeps); an export without iothread= runs there too, one with
 * iothread=ID on that --object iothread. Control-plane thread only.
 */
#ifndef VIREO_CONTROL_NBD_QMP_H
#define VIREO_CONTROL_NBD_QMP_H

#include "control/qmp_server.h"

/* Where BLOCK_EXPORT_DELETED goes (the program's event sink, which takes @data over). */
void nbd_qmp_init(void (*emit)(void *opaque, const char *name, struct json_object *data),
		  void *opaque);

/* --nbd-server SPEC and --export SPEC; messages start with the option's name. */
int nbd_qmp_server_start_spec(const char *spec, struct error **errp);
int nbd_qmp_export_add_spec(const char *spec, struct error **errp);

/*
 * At exit: stops the server (every client disconnected, every request completed, every export
 * gone, no event sent) and its iothread. Before the --object iothreads stop.
 */
void nbd_qmp_cleanup(void);

#define NBD_QMP_COMMANDS \
	{ "block-export-add", nbd_qmp_block_export_add }, \
	{ "block-export-del", nbd_qmp_block_export_del }, \
	{ "nbd-server-start", nbd_qmp_nbd_server_start }, \
	{ "nbd-server-stop", nbd_qmp_nbd_server_stop }, \
	{ "query-block-exports", nbd_qmp_query_block_exports }

#define NBD_QMP_DECLARE(fn) \
	int fn(void *opaque, struct json_object *args, struct json_object **ret, \
	       struct error **errp)
NBD_QMP_DECLARE(nbd_qmp_block_export_add);
NBD_QMP_DECLARE(nbd_qmp_block_export_del);
NBD_QMP_DECLARE(nbd_qmp_nbd_server_start);
NBD_QMP_DECLARE(nbd_qmp_nbd_server_stop);
NBD_QMP_DECLARE(nbd_qmp_query_block_exports);

#endif
