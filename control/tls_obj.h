/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS credentials objects by id, as QEMU's, for the NBD server (blockdev/nbd_tls.h):
 *
 *   --object tls-creds-x509,id=ID,endpoint=server,dir=DIR[,verify-peer=on|off]
 *            DIR holds ca-cert.pem, server-cert.pem, server-key.pem (and ca-crl.pem);
 *            verify-peer (default on): clients must show a certificate the CA signed
 *   --object tls-creds-psk,id=ID,endpoint=server,dir=DIR
 *            DIR holds keys.psk ("username:hexkey" lines, psktool's format)
 *
 * Only server credentials (endpoint=server; QEMU's default is client, so it must be given).
 * They live until tls_obj_cleanup(), after the server that uses them stopped. Main thread only.
 */
#ifndef VIREO_CONTROL_TLS_OBJ_H
#define VIREO_CONTROL_TLS_OBJ_H

#include <stdbool.h>

#include "common/error.h"

struct json_object;
struct nbd_tls_creds;

/* Whether @qom_type is one of these objects' (tls-creds-x509, tls-creds-psk). */
bool tls_obj_handles(const char *qom_type);

/* --object's parsed keys (qom-type and id still in @a): makes the credentials, or -1 with a
 * message naming the key or the file that could not be loaded. */
int tls_obj_add_json(struct json_object *a, struct error **errp);

/* The credentials called @id, or NULL. */
struct nbd_tls_creds *tls_obj_find(const char *id);

void tls_obj_cleanup(void);

#endif
