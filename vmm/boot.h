/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loading a kernel into guest RAM and describing the boot CPU's initial state.
 *
 * boot_load() recognises the kernel file, copies it (and the initrd and command line) into guest
 * RAM, writes the boot data the protocol wants (PVH hvm_start_info or Linux's zero page, both with
 * the e820 memory map; for Linux also a GDT and identity page tables) and returns the BSP state
 * in plain structs. It does no KVM call: boot_cpu_to_kvm() (boot_kvm.c) turns the state into
 * kvm_regs/kvm_sregs. Application processors are not touched: they wait for INIT/SIPI in the
 * in-kernel LAPIC and the guest starts them itself (ACPI MADT).
 *
 * Accepted kernels:
 *   - ELF (32- or 64-bit, x86) with a Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): entered in
 *     32-bit protected mode, paging off, EBX = hvm_start_info (Xen docs/misc/pvh.pandoc).
 *   - bzImage with boot protocol >= 2.12 and XLF_KERNEL_64: entered at its 64-bit entry point in
 *     long mode, RSI = zero page (Linux Documentation/arch/x86/boot.rst, "64-bit Boot Protocol").
 * Addresses come from vmm/layout.h; the first 1 MiB of guest RAM belongs to boot data and ACPI.
 */
#ifndef VIREO_VMM_BOOT_H
#define VIREO_VMM_BOOT_H

#include <stdint.h>

#include "common/error.h"
#include "vmm/gmem.h"

struct boot_params_in {
	const char *kernel_path;
	const char *initrd_path; /* NULL: none */
	const char *cmdline;     /* NULL: empty */
	uint64_t rsdp_gpa;       /* guest address of the ACPI RSDP, 0: none */
};

enum boot_kind {
	BOOT_PVH = 1,     /* ELF with a Xen PVH entry note */
	BOOT_BZIMAGE = 2, /* Linux bzImage, 64-bit boot protocol */
};

/* A segment register as KVM describes it: limit in bytes (0xffffffff for a flat 4 GiB segment). */
struct boot_segment {
	uint64_t base;
	uint32_t limit;
	uint16_t selector;
	uint8_t type; /* descriptor type, bits 0..3: 0xb code execute/read, 0x3 data read/write */
	uint8_t present, dpl, db, s, l, g, avl, unusable;
};

/* What boot_load() put where; for messages and tests, the vCPU code need not look at it. */
struct boot_loaded {
	enum boot_kind kind;
	uint64_t kernel_start, kernel_end; /* guest physical range reserved for the kernel */
	uint64_t initrd_start, initrd_size; /* 0, 0: no initrd */
	uint64_t entry;                     /* = the BSP's rip */
	uint16_t protocol;                  /* bzImage boot protocol, e.g. 0x020f; PVH: 0 */
	char version[128];                  /* bzImage kernel_version string, "" if none */
};

/* The BSP's state at the kernel's entry. Every field is meant to be loaded; none is "unset". */
struct boot_cpu_state {
	uint64_t rip, rsp, rsi, rbx, rflags;
	uint64_t cr0, cr3, cr4, efer;
	uint64_t gdt_base, idt_base;
	uint16_t gdt_limit, idt_limit;
	struct boot_segment cs, ds, es, fs, gs, ss, tr, ldt;
	struct boot_loaded loaded;
};

/* Boot GDT selectors (boot.rst: __BOOT_CS 0x10, __BOOT_DS 0x18; PVH uses the same ones). */
#define BOOT_SEL_CS  0x10
#define BOOT_SEL_DS  0x18
#define BOOT_SEL_TSS 0x20

#define BOOT_CR0_PE   (1ULL << 0)
#define BOOT_CR0_ET   (1ULL << 4)
#define BOOT_CR0_PG   (1ULL << 31)
#define BOOT_CR4_PAE  (1ULL << 5)
#define BOOT_EFER_LME (1ULL << 8)
#define BOOT_EFER_LMA (1ULL << 10)

/*
 * Loads in->kernel_path (PVH ELF or bzImage), in->initrd_path and in->cmdline into mem and fills
 * *out with the BSP's entry state. mem must be fresh (zeroed) guest RAM of at least 1 MiB; the
 * ACPI tables (at LAYOUT_ACPI_BASE) may be written before or after. Returns 0, or -1 with *errp
 * naming the file and what is wrong with it (or what does not fit in guest RAM).
 */
int boot_load(struct gmem *mem, const struct boot_params_in *in, struct boot_cpu_state *out,
	      struct error **errp);

struct kvm_regs;
struct kvm_sregs;
/*
 * Converts *s for KVM_SET_REGS / KVM_SET_SREGS. *regs is overwritten whole. In *sregs only the
 * segments, tr, ldt, gdt, idt, cr0, cr3, cr4 and efer are written: fill it with KVM_GET_SREGS
 * first so that apic_base, cr2, cr8 and interrupt_bitmap keep KVM's values.
 */
void boot_cpu_to_kvm(const struct boot_cpu_state *s, struct kvm_regs *regs,
		     struct kvm_sregs *sregs);

#endif
