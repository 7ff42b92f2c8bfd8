/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Ring-0 C code: per-CPU set-up (IDT, TSS, drop to CPL3) and the trap handler.
 *
 * Everything here runs emulated on this machine's KVM (~1 µs per instruction), so it does the
 * least it can: the timer, IPI and device (MSI-X) handlers count and EOI, and the #GP handler
 * performs the port I/O and hlt that CPL3 may not do itself. Anything else is fatal: print the
 * frame and exit(PANIC).
 *
 * CPL3's hlt takes an argument (lib/sys.h cpu_wait_unchanged): RDI = the address of a 64-bit
 * counter, RSI = the value CPL3 last saw there. The #GP gate runs with IF clear, so comparing
 * the counter here and then STI; HLT cannot miss an interrupt that moves it: one that came
 * before the compare shows in the counter, one that comes after wakes the HLT. RDI = 0 is a
 * plain wait for the next interrupt.
 */
#include "ring0/ring0.h"
#include "lib/lib.h"

struct tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __packed;

struct idt_gate {
	uint16_t off_lo;
	uint16_t sel;
	uint8_t ist;
	uint8_t type;
	uint16_t off_mid;
	uint32_t off_hi;
	uint32_t reserved;
} __packed;

struct desc_ptr {
	uint16_t limit;
	uint64_t base;
} __packed;

extern char kstacks[];
extern uint64_t gdt[];
extern const char trap_stubs[], trap_stubs_pic[], trap_stubs_dev[], trap_stub_timer[],
	trap_stub_ipi[], trap_stub_spurious[];
void enter_user(void (*fn)(unsigned), unsigned arg, uint64_t rsp);
void ring0_wait(void);

struct cpu cpus[MAX_CPUS];
uint64_t lapic_base;
static struct tss tss[MAX_CPUS];
static struct idt_gate idt[256];
static char ustacks[MAX_CPUS][USTACK_SIZE] __attribute__((aligned(4096)));

static void idt_set(unsigned vec, const void *fn)
{
	uint64_t a = (uintptr_t)fn;

	idt[vec] = (struct idt_gate){
		.off_lo = a & 0xffff, .sel = SEL_KCODE64, .type = 0x8e, /* present, interrupt gate */
		.off_mid = (a >> 16) & 0xffff, .off_hi = a >> 32,
	};
}

static void idt_init(void)
{
	for (unsigned v = 0; v < 32; v++)
		idt_set(v, trap_stubs + 16 * v);
	for (unsigned v = 0; v < 16; v++)
		idt_set(VEC_PIC_BASE + v, trap_stubs_pic + 16 * v);
	for (unsigned v = 0; v < NR_DEV_VECTORS; v++)
		idt_set(VEC_DEV_BASE + v, trap_stubs_dev + 16 * v);
	idt_set(VEC_TIMER, trap_stub_timer);
	idt_set(VEC_IPI, trap_stub_ipi);
	idt_set(VEC_SPURIOUS, trap_stub_spurious);
}

/*
 * The firmware may have left the 8259 PICs on vectors 8-15 with the PIT unmasked (SeaBIOS does):
 * move them to VEC_PIC_BASE and mask every line. We use the LAPIC only.
 */
static void pic_disable(void)
{
	static const uint8_t init[] = { 0x11, VEC_PIC_BASE, 4, 1, 0x11, VEC_PIC_BASE + 8, 2, 1 };

	for (unsigned i = 0; i < 4; i++) {
		outb(0x20 + (i ? 1 : 0), init[i]);
		outb(0xa0 + (i ? 1 : 0), init[4 + i]);
	}
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
}

static void tss_init(unsigned cpu)
{
	uint64_t base = (uintptr_t)&tss[cpu];
	uint64_t limit = sizeof(tss[cpu]) - 1;
	unsigned slot = SEL_TSS0 / 8 + 2 * cpu;

	tss[cpu].rsp[0] = (uintptr_t)kstacks + (cpu + 1) * KSTACK_SIZE;
	tss[cpu].iomap_base = sizeof(tss[cpu]); /* no I/O bitmap */
	gdt[slot] = (limit & 0xffff) | (base & 0xffffff) << 16 | 0x89ULL << 40 |
		    ((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
	gdt[slot + 1] = base >> 32;
}

void ring0_boot(unsigned cpu)
{
	struct desc_ptr idtr = { sizeof(idt) - 1, (uintptr_t)idt };
	uint16_t tr = SEL_TSS0 + 16 * cpu;
	uint32_t lo, hi;

	if (cpu == 0) {
		pic_disable();
		idt_init();
		__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(0x1b));
		lapic_base = (((uint64_t)hi << 32) | lo) & ~0xfffULL;
	}
	tss_init(cpu);
	__asm__ volatile("lidt %0" : : "m"(idtr));
	__asm__ volatile("ltr %0" : : "r"(tr));
	cpus[cpu].online = 1;
	enter_user(cpu == 0 ? guest_main : ap_main, cpu, (uintptr_t)ustacks[cpu] + USTACK_SIZE);
}

static struct cpu *this_cpu(void)
{
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);

	return &cpus[(sp - (uintptr_t)kstacks) / KSTACK_SIZE];
}

static void lapic_eoi(void)
{
	*(volatile uint32_t *)(uintptr_t)(lapic_base + 0xb0) = 0;
}

static void set_acc(struct trap_frame *f, unsigned size, uint32_t v)
{
	if (size == 1)
		f->rax = (f->rax & ~0xffULL) | v;
	else if (size == 2)
		f->rax = (f->rax & ~0xffffULL) | v;
	else
		f->rax = v;
}

static void do_in(struct trap_frame *f, unsigned size, uint16_t port)
{
	if (size == 1)
		set_acc(f, 1, inb(port));
	else if (size == 2)
		set_acc(f, 2, inw(port));
	else
		set_acc(f, 4, inl(port));
}

static void do_out(struct trap_frame *f, unsigned size, uint16_t port)
{
	if (size == 1)
		outb(port, f->rax);
	else if (size == 2)
		outw(port, f->rax);
	else
		outl(port, f->rax);
}

/*
 * Performs the port I/O or hlt that made CPL3 fault. Decodes: 66/F3 prefixes, IN/OUT with imm8 or
 * DX (8/16/32-bit), REP OUTSB, HLT. Returns false for anything else.
 */
static bool emulate_gp(struct trap_frame *f)
{
	const uint8_t *p = (const uint8_t *)(uintptr_t)f->rip;
	unsigned n = 0, size = 4;
	bool rep = false;
	uint8_t op;

	for (;; n++) {
		if (p[n] == 0x66)
			size = 2;
		else if (p[n] == 0xf3)
			rep = true;
		else
			break;
		if (n > 3)
			return false;
	}
	op = p[n++];
	switch (op) {
	case 0xe4: case 0xe5:
		do_in(f, op & 1 ? size : 1, p[n++]);
		break;
	case 0xe6: case 0xe7:
		do_out(f, op & 1 ? size : 1, p[n++]);
		break;
	case 0xec: case 0xed:
		do_in(f, op & 1 ? size : 1, f->rdx);
		break;
	case 0xee: case 0xef:
		do_out(f, op & 1 ? size : 1, f->rdx);
		break;
	case 0x6e: {
		uint64_t count = rep ? f->rcx : 1;

		outsb_rep(f->rdx, (const void *)(uintptr_t)f->rsi, count);
		f->rsi += count;
		if (rep)
			f->rcx = 0;
		break;
	}
	case 0xf4:
		if (!f->rdi || *(volatile uint64_t *)(uintptr_t)f->rdi == f->rsi)
			ring0_wait();
		break;
	default:
		return false;
	}
	f->rip += n;
	return true;
}

static __noreturn void fatal(struct trap_frame *f)
{
	uint64_t cr2;

	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	printf("\nPANIC: exception %lu error %#lx at rip %#lx (cpl %lu) cr2 %#lx rsp %#lx\n",
	       f->vector, f->error, f->rip, f->cs & 3, cr2, f->rsp);
	printf("  rax %#lx rbx %#lx rcx %#lx rdx %#lx rsi %#lx rdi %#lx\n",
	       f->rax, f->rbx, f->rcx, f->rdx, f->rsi, f->rdi);
	guest_exit(GUEST_EXIT_PANIC);
}

void trap_handler(struct trap_frame *f)
{
	switch (f->vector) {
	case VEC_TIMER:
		this_cpu()->ticks++;
		lapic_eoi();
		return;
	case VEC_IPI:
		this_cpu()->ipis++;
		lapic_eoi();
		return;
	case VEC_DEV_BASE ... VEC_DEV_BASE + NR_DEV_VECTORS - 1: {
		struct cpu *c = this_cpu();

		c->irqs[f->vector - VEC_DEV_BASE]++;
		c->dev_irqs++;
		lapic_eoi();
		return;
	}
	case VEC_SPURIOUS:
	case VEC_PIC_BASE ... VEC_PIC_BASE + 15:
		return;
	case 13:
		if ((f->cs & 3) == 3 && emulate_gp(f))
			return;
		break;
	}
	fatal(f);
}
