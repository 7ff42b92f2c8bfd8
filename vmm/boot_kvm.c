/* SPDX-License-Identifier: Apache-2.0 */
/* boot_cpu_state -> kvm_regs / kvm_sregs. Fills structs only; the caller does the ioctls. */
#include <linux/kvm.h>
#include <string.h>

#include "vmm/boot.h"

static void to_kvm_segment(const struct boot_segment *s, struct kvm_segment *k)
{
	*k = (struct kvm_segment){
		.base = s->base, .limit = s->limit, .selector = s->selector, .type = s->type,
		.present = s->present, .dpl = s->dpl, .db = s->db, .s = s->s, .l = s->l, .g = s->g,
		.avl = s->avl, .unusable = s->unusable,
	};
}

void boot_cpu_to_kvm(const struct boot_cpu_state *s, struct kvm_regs *regs,
		     struct kvm_sregs *sregs)
{
	memset(regs, 0, sizeof(*regs));
	regs->rip = s->rip;
	regs->rsp = s->rsp;
	regs->rsi = s->rsi;
	regs->rbx = s->rbx;
	regs->rflags = s->rflags;

	to_kvm_segment(&s->cs, &sregs->cs);
	to_kvm_segment(&s->ds, &sregs->ds);
	to_kvm_segment(&s->es, &sregs->es);
	to_kvm_segment(&s->fs, &sregs->fs);
	to_kvm_segment(&s->gs, &sregs->gs);
	to_kvm_segment(&s->ss, &sregs->ss);
	to_kvm_segment(&s->tr, &sregs->tr);
	to_kvm_segment(&s->ldt, &sregs->ldt);
	sregs->gdt = (struct kvm_dtable){ .base = s->gdt_base, .limit = s->gdt_limit };
	sregs->idt = (struct kvm_dtable){ .base = s->idt_base, .limit = s->idt_limit };
	sregs->cr0 = s->cr0;
	sregs->cr3 = s->cr3;
	sregs->cr4 = s->cr4;
	sregs->efer = s->efer;
}
