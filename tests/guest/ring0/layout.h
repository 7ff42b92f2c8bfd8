/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Constants shared by the guest's assembly and C: segment selectors, stack sizes, the trampoline
 * address and the interrupt vectors.
 */
#ifndef GUEST_LAYOUT_H
#define GUEST_LAYOUT_H

#define MAX_CPUS        8

/* GDT selectors (ring0/boot.S builds the table; the order is fixed) */
#define SEL_KCODE64     0x08
#define SEL_KDATA       0x10
#define SEL_KCODE32     0x18
#define SEL_UDATA       0x20
#define SEL_UCODE64     0x28
#define SEL_TSS0        0x30    /* then 16 bytes per CPU */
#define GDT_ENTRIES     (6 + 2 * MAX_CPUS)

#define KSTACK_SIZE     0x4000  /* ring-0 stack per CPU (traps and interrupts) */
#define USTACK_SIZE     0x10000 /* CPL3 stack per CPU */

/* Real-mode AP start-up code is copied here; the SIPI vector is its page number. */
#define TRAMPOLINE_PA   0x8000

/* Interrupt vectors */
#define VEC_PIC_BASE    0x20    /* legacy 8259 PICs, masked */
#define VEC_TIMER       0x30
#define VEC_IPI         0x31
#define VEC_DEV_BASE    0x40    /* device MSI-X vectors: VEC_DEV_BASE + i, i < NR_DEV_VECTORS */
#define NR_DEV_VECTORS  16
#define VEC_SPURIOUS    0xff

/* The identity map covers [0, IDMAP_END): 2 MiB pages, user-accessible (ring0/boot.S). */
#define IDMAP_GIB       64
#define IDMAP_END       (IDMAP_GIB * 0x40000000ULL)

#endif
