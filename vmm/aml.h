/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small AML (ACPI Machine Language) builder: just what vireo's DSDT needs. Bytes are appended to
 * a growing buffer. A construct with a PkgLength (Scope, Device, Package, Buffer) is opened by a
 * function that returns a mark and closed by aml_end(mark), which inserts the PkgLength once the
 * body's size is known.
 *
 * Errors (out of memory, a malformed name) are sticky: the first one is kept in `err` and every
 * later call does nothing, so a builder runs straight through and checks `err` once at the end.
 *
 * Encodings follow the ACPI 6.5 specification, chapter 20 (AML) and section 6.4 (resource data
 * types).
 */
#ifndef VIREO_VMM_AML_H
#define VIREO_VMM_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aml {
	uint8_t *buf;
	size_t len, cap;
	const char *err; /* first failure, NULL while all is well */
};

void aml_init(struct aml *a);
void aml_free(struct aml *a);

void aml_byte(struct aml *a, uint8_t b);
void aml_bytes(struct aml *a, const void *p, size_t n);

/*
 * A NameString: an optional root prefix '\' and one or more dot-separated segments of up to four
 * characters ("\_SB_.PCI0", "_SB.COM1", "_HID"); short segments are padded with '_'.
 */
void aml_namestring(struct aml *a, const char *path);
/* The shortest integer encoding: Zero, One, Ones, or a Byte/Word/DWord/QWord constant. */
void aml_int(struct aml *a, uint64_t v);
/* A String constant (ASCII, no NUL inside). */
void aml_string(struct aml *a, const char *s);
/* A compressed EISA ID ("PNP0A08"), as ASL's EisaId() produces: a DWord constant. */
void aml_eisaid(struct aml *a, const char *id);
/* Name(path, <object>): emits NameOp and the name; the caller appends the object. */
void aml_name(struct aml *a, const char *path);

/* Opening a construct returns a mark for aml_end(). */
size_t aml_scope(struct aml *a, const char *path);
size_t aml_device(struct aml *a, const char *path);
size_t aml_package(struct aml *a, uint8_t nr_elements);
void aml_end(struct aml *a, size_t mark);

/* Buffer(){...} holding the bytes of `data` (e.g. a resource template built with aml_res_*). */
void aml_buffer(struct aml *a, const struct aml *data);

/*
 * Resource descriptors, appended to a struct aml that holds a resource template; finish it with
 * aml_res_end() and emit it with aml_buffer(). Address-space descriptors are bridge windows
 * (ResourceProducer, MinFixed, MaxFixed, PosDecode, granularity and translation 0).
 */
void aml_res_io(struct aml *r, uint16_t base, uint8_t len);            /* IO(Decode16, fixed) */
void aml_res_irq(struct aml *r, uint16_t mask);                         /* IRQNoFlags */
void aml_res_mem32_fixed(struct aml *r, uint32_t base, uint32_t len); /* Memory32Fixed(RW) */
void aml_res_word_bus(struct aml *r, uint16_t min, uint16_t max);      /* WordBusNumber */
void aml_res_word_io(struct aml *r, uint16_t min, uint16_t max);       /* WordIO, EntireRange */
void aml_res_dword_mem(struct aml *r, uint32_t min, uint32_t max);     /* NonCacheable, RW */
void aml_res_qword_mem(struct aml *r, uint64_t min, uint64_t max);     /* Cacheable, RW */
void aml_res_end(struct aml *r);                                        /* EndTag */

#endif
