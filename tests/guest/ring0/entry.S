/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Trap and interrupt stubs, and the drop to CPL3.
 *
 * Every stub pushes a zero error code where the CPU pushes none, then its vector, and joins
 * trap_common, which saves the general registers into a struct trap_frame (ring0/ring0.h) and calls
 * trap_handler(frame). The handler may change the frame (the #GP emulation of in/out advances RIP
 * and sets RAX); iretq then resumes the interrupted code.
 */
#include "layout.h"

	.macro STUB vec, has_err
	.balign 16
	.if \has_err == 0
	pushq $0
	.endif
	pushq $\vec
	jmp trap_common
	.endm

	.text
	.balign 16
	.globl trap_stubs
trap_stubs:
	/* vectors 0..31: exceptions; 8, 10-14, 17, 21, 29, 30 push an error code */
	.irp v, 0,1,2,3,4,5,6,7
	STUB \v, 0
	.endr
	STUB 8, 1
	STUB 9, 0
	.irp v, 10,11,12,13,14
	STUB \v, 1
	.endr
	.irp v, 15,16
	STUB \v, 0
	.endr
	STUB 17, 1
	.irp v, 18,19,20
	STUB \v, 0
	.endr
	STUB 21, 1
	.irp v, 22,23,24,25,26,27,28
	STUB \v, 0
	.endr
	.irp v, 29,30
	STUB \v, 1
	.endr
	STUB 31, 0
	/* 0x20..0x2f: the legacy PICs, remapped and masked; only spurious IRQs 7 and 15 can come */
	.globl trap_stubs_pic
trap_stubs_pic:
	.irp v, 0x20,0x21,0x22,0x23,0x24,0x25,0x26,0x27,0x28,0x29,0x2a,0x2b,0x2c,0x2d,0x2e,0x2f
	STUB \v, 0
	.endr
	/* VEC_DEV_BASE..+NR_DEV_VECTORS-1: device MSI-X vectors (one per virtqueue) */
	.globl trap_stubs_dev
trap_stubs_dev:
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	STUB VEC_DEV_BASE + \v, 0
	.endr
	.globl trap_stub_timer, trap_stub_ipi, trap_stub_spurious
trap_stub_timer:
	STUB VEC_TIMER, 0
trap_stub_ipi:
	STUB VEC_IPI, 0
trap_stub_spurious:
	STUB VEC_SPURIOUS, 0

trap_common:
	pushq %rax
	pushq %rbx
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rbp
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, %rdi
	call trap_handler
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rbp
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rbx
	popq %rax
	addq $16, %rsp                  /* vector, error code */
	iretq

/* void enter_user(void (*fn)(unsigned), unsigned arg, uint64_t user_rsp): never returns */
	.globl enter_user
enter_user:
	pushq $(SEL_UDATA | 3)          /* SS */
	pushq %rdx                      /* RSP */
	pushq $0x202                    /* RFLAGS: IF, IOPL 0 */
	pushq $(SEL_UCODE64 | 3)        /* CS */
	pushq %rdi                      /* RIP */
	movl %esi, %edi
	xorl %eax, %eax
	movl $SEL_UDATA | 3, %ecx
	movl %ecx, %ds
	movl %ecx, %es
	iretq

/*
 * Wait for an interrupt in ring 0 (for CPL3's hlt), entered with interrupts off (the #GP gate
 * cleared IF): STI's shadow makes STI; HLT atomic, so an interrupt already pending, or one that
 * comes after a check the caller made with IF clear, wakes the HLT instead of being lost.
 */
	.globl ring0_wait
ring0_wait:
	sti
	hlt
	cli
	ret

	.section .note.GNU-stack, "", @progbits
