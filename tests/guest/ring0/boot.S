/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PVH entry and the one-time set-up of long mode.
 *
 * A PVH loader (vireo, QEMU's pvh option ROM) enters pvh_start in 32-bit protected mode, paging off,
 * with EBX = the physical address of struct hvm_start_info. We load our GDT, turn on PAE paging with
 * the static identity map below and long mode, and call ring0_boot() on CPU 0's ring-0 stack.
 *
 * The page tables are assembled here, complete, so ring 0 never writes a page-table entry (on this
 * machine's KVM each ring-0 instruction is emulated, and page-table writes are the expensive kind).
 * [0, 64 GiB) is identity-mapped with 2 MiB pages, all user-accessible: the test cases run in CPL3
 * and touch RAM, ACPI tables, ECAM, BARs and the LAPIC directly. CPL3 here is for speed, not for
 * protection: it is our own trusted code.
 */
#include "layout.h"

#define PTE_P   0x001
#define PTE_W   0x002
#define PTE_U   0x004
#define PTE_PS  0x080

	.section .note.pvh, "a", @note
	.balign 4
	.long 4                 /* name size: "Xen\0" */
	.long 4                 /* descriptor size */
	.long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long pvh_start

	.section .text.boot, "ax"
	.code32
	.globl pvh_start
pvh_start:
	cli
	cld
	movl %ebx, pvh_info_pa
	lgdt gdt_desc
	movl %cr4, %eax
	orl $0x20, %eax                 /* PAE */
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $0xc0000080, %ecx          /* EFER */
	rdmsr
	orl $0x100, %eax                /* LME */
	wrmsr
	movl %cr0, %eax
	orl $0x80010001, %eax           /* PG | WP | PE */
	andl $~0x60000000, %eax         /* caches on: clear CD, NW */
	movl %eax, %cr0
	ljmp $SEL_KCODE64, $long_entry

	.code64
long_entry:
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	xorl %eax, %eax
	movl %eax, %fs
	movl %eax, %gs
	movq $kstacks + KSTACK_SIZE, %rsp
	xorl %edi, %edi
	call ring0_boot
1:	hlt
	jmp 1b

/*
 * An application processor arrives here from the trampoline, in long mode on our page tables and
 * GDT. ap_boot_cpu (set by the BSP before the SIPI) says which CPU slot it takes.
 */
	.globl ap_entry64
ap_entry64:
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	xorl %eax, %eax
	movl %eax, %fs
	movl %eax, %gs
	movl ap_boot_cpu, %edi
	movl %edi, %eax
	incl %eax
	shll $14, %eax                  /* (cpu + 1) * KSTACK_SIZE */
	leaq kstacks(%rax), %rsp
	call ring0_boot
1:	hlt
	jmp 1b

	.section .data
	.balign 16
	.globl gdt
gdt:
	.quad 0
	.quad 0x00af9a000000ffff        /* 0x08 kernel code, 64-bit */
	.quad 0x00cf92000000ffff        /* 0x10 kernel data */
	.quad 0x00cf9a000000ffff        /* 0x18 kernel code, 32-bit (AP trampoline) */
	.quad 0x00cff2000000ffff        /* 0x20 user data */
	.quad 0x00affa000000ffff        /* 0x28 user code, 64-bit */
	.fill 2 * MAX_CPUS, 8, 0        /* 0x30 TSS descriptors, filled by ring0_boot() */
gdt_end:

	.balign 16
	.globl gdt_desc
gdt_desc:
	.word gdt_end - gdt - 1
	.quad gdt

	.globl pvh_info_pa, ap_boot_cpu
	.balign 8
pvh_info_pa:
	.quad 0
ap_boot_cpu:
	.long 0

/* The identity map: PML4 -> one PDPT -> IDMAP_GIB page directories of 2 MiB pages. */
	.section .data.pagetables, "aw"
	.balign 4096
	.globl pml4
pml4:
	.quad pdpt + (PTE_P | PTE_W | PTE_U)
	.fill 511, 8, 0
pdpt:
	.set i, 0
	.rept IDMAP_GIB
	.quad pd + i * 4096 + (PTE_P | PTE_W | PTE_U)
	.set i, i + 1
	.endr
	.fill 512 - IDMAP_GIB, 8, 0
pd:
	.set i, 0
	.rept IDMAP_GIB * 512
	.quad (i << 21) | (PTE_P | PTE_W | PTE_U | PTE_PS)
	.set i, i + 1
	.endr

	.section .bss
	.balign KSTACK_SIZE
	.globl kstacks
kstacks:
	.skip KSTACK_SIZE * MAX_CPUS

	.section .note.GNU-stack, "", @progbits
