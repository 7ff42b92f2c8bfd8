/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS objects by id, as QEMU's --object makes them, for the NBD server and the NBD client
 * driver alike (a registry in the block layer, as common/secret.h is for secrets, filled by the
 * --object handling of vireo, vireo-storage-daemon and vireo-img):
 *
 *   tls-creds-x509,id=ID,endpoint=server|client,dir=DIR[,verify-peer=on|off]
 *       server: DIR holds ca-cert.pem, server-cert.pem, server-key.pem (and ca-crl.pem);
 *               verify-peer (default on): clients must show a certificate the CA signed
 *       client: DIR holds ca-cert.pem (and ca-crl.pem), and client-cert.pem + client-key.pem
 *               for a server that verifies its clients; verify-peer (default on): the
 *               server's certificate must be signed by the CA and name the host
 *   tls-creds-psk,id=ID,endpoint=server|client,dir=DIR[,username=NAME]
 *       DIR holds keys.psk ("username:hexkey" lines, psktool's format); a client uses the key
 *       of username (default "qemu", as QEMU's)
 *   authz-simple,id=ID,identity=NAME
 *       the one client a server's tls-authz=ID lets in: its x509 certificate's distinguished
 *       name as QEMU compares it (gnutls_x509_crt_get_dn: the certificate's own order, e.g.
 *       "C=GB,,O=Example Org,,CN=laptop.example.com" with its commas doubled in an option)
 *
 * endpoint is "client" by default, as QEMU's. Objects live until nbd_tls_obj_cleanup() (no
 * object-del); a server or an NBD node holds its own reference to the credentials it uses, so
 * the cleanup may come before they are gone. Added and looked up on the control plane only
 * (set-up, QMP, a node's open): no lock.
 */
#ifndef VIREO_BLOCKDEV_NBD_TLS_OBJ_H
#define VIREO_BLOCKDEV_NBD_TLS_OBJ_H

#include <stdbool.h>

#include "common/error.h"

struct json_object;
struct nbd_tls_creds;
struct nbd_tls_authz;

/* Whether @qom_type is one of these objects' (tls-creds-x509, tls-creds-psk, authz-simple). */
bool nbd_tls_obj_handles(const char *qom_type);

/* --object's parsed keys (qom-type and id still in @a; the keys are taken out of it): makes the
 * object, or -1 with a message naming the key, or the file that could not be loaded. */
int nbd_tls_obj_add_json(struct json_object *a, struct error **errp);
/* The same for object @id of @type, whose other keys are @a's. */
int nbd_tls_obj_add(const char *type, const char *id, struct json_object *a,
		    struct error **errp);
/* The same from the option string "tls-creds-x509,id=t0,endpoint=client,dir=..." (keyval). */
int nbd_tls_obj_add_spec(const char *spec, struct error **errp);

/* The credentials called @id, or NULL (not a reference: take one to keep them). */
struct nbd_tls_creds *nbd_tls_obj_creds(const char *id);
/* The authz-simple object called @id, or NULL. */
const struct nbd_tls_authz *nbd_tls_obj_authz(const char *id);

/* Forgets every object (credentials in use live on with their holders). */
void nbd_tls_obj_cleanup(void);

#endif
