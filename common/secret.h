/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Secrets (QEMU's --object secret): named byte strings a program holds for the life of the
 * process, for encrypted images' passphrases (key-secret=ID, encrypt.key-secret=ID).
 *
 *   secret,id=sec0,data=PASSPHRASE          the bytes as given
 *   secret,id=sec0,file=PATH                the file's bytes
 *   ...,format=base64                       either of them base64-encoded
 *
 * Encrypted secrets (keyid=, iv=) are refused by name. Added on the control plane before any
 * image opens; looked up by the block layer's open (also on the control plane): no lock.
 */
#ifndef VIREO_COMMON_SECRET_H
#define VIREO_COMMON_SECRET_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

struct json_object;

#define SECRET_MAX_LEN (64 * 1024)

/* A secret from @a (an --object's keys: "qom-type": "secret", "id", "data" | "file", "format");
 * the keys are taken out of @a. Refused, by name: a taken id, both or neither of data and
 * file, an unknown format or key, an unreadable or oversized file, bad base64. */
int secret_add_json(struct json_object *a, struct error **errp);
/* The same for secret @id, whose other keys (data, file, format) are @a's. */
int secret_add(const char *id, struct json_object *a, struct error **errp);
/* The same from the option string "secret,id=sec0,data=..." (keyval). */
int secret_add_spec(const char *spec, struct error **errp);
/* The bytes of secret @id (valid until secret_cleanup), or -1 with "No secret with id 'X'". */
int secret_lookup(const char *id, const uint8_t **data, size_t *len, struct error **errp);
/* Forgets every secret (their bytes wiped). */
void secret_cleanup(void);

#endif
