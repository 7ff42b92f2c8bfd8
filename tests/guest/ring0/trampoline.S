/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Real-mode start-up code for application processors. CPL3 copies [trampoline_start,
 * trampoline_end) to TRAMPOLINE_PA (page-aligned, below 1 MiB) and sends INIT-SIPI-SIPI with
 * vector TRAMPOLINE_PA >> 12. The AP loads our GDT, enters protected mode, enables PAE paging on the
 * static page tables and long mode, and jumps to ap_entry64 (ring0/boot.S).
 * Everything here is position-dependent on TRAMPOLINE_PA: REL() turns a label into its address there.
 */
#include "layout.h"

#define REL(x) (TRAMPOLINE_PA + (x) - trampoline_start)

	.section .rodata.trampoline, "a"
	.balign 16
	.globl trampoline_start, trampoline_end
	.code16
trampoline_start:
	cli
	cld
	xorw %ax, %ax
	movw %ax, %ds
	lgdtl REL(tr_gdt_desc)
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl $SEL_KCODE32, $REL(tr_prot)

	.code32
tr_prot:
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %cr4, %eax
	orl $0x20, %eax                 /* PAE */
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $0xc0000080, %ecx
	rdmsr
	orl $0x100, %eax                /* LME */
	wrmsr
	movl %cr0, %eax
	orl $0x80010001, %eax
	andl $~0x60000000, %eax
	movl %eax, %cr0
	ljmp $SEL_KCODE64, $REL(tr_long)

	.code64
tr_long:
	movabsq $ap_entry64, %rax
	jmp *%rax

	.balign 8
tr_gdt_desc:
	.word GDT_ENTRIES * 8 - 1
	.long gdt
trampoline_end:

	.section .note.GNU-stack, "", @progbits
