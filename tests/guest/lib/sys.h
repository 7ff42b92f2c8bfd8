/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Machine access for both rings. In CPL3 every in/out/outs and hlt traps to the #GP handler, which
 * performs it on our behalf (ring0/trap.c), so drivers use the same instructions in either ring.
 */
#ifndef GUEST_SYS_H
#define GUEST_SYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define __noreturn      __attribute__((noreturn))
#define __packed        __attribute__((packed))
#define __printf(a, b)  __attribute__((format(printf, a, b)))
#define ARRAY_SIZE(a)   (sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a)  (((x) + (a) - 1) & ~((__typeof__(x))(a) - 1))
#define MIN(a, b)       ((a) < (b) ? (a) : (b))
#define MAX(a, b)       ((a) > (b) ? (a) : (b))

/*
 * Exit values written to the debug-exit port 0xf4; the VMM exits with status (value << 1) | 1.
 * run-qemu.sh and run-vireo.sh map them back (README.md).
 */
#define GUEST_EXIT_PASS         0x10    /* status 33: every case run passed or was skipped */
#define GUEST_EXIT_FAIL         0x11    /* status 35: at least one case failed */
#define GUEST_EXIT_PANIC        0x12    /* status 37: unexpected exception or bad set-up */
#define GUEST_PORT_EXIT         0xf4

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint16_t inw(uint16_t port)
{
	uint16_t v;

	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

/* Writes n bytes to one port: a single trap from CPL3 for the whole buffer. */
static inline void outsb_rep(uint16_t port, const void *buf, size_t n)
{
	__asm__ volatile("rep outsb" : "+S"(buf), "+c"(n) : "d"(port) : "memory");
}

/* Waits for the next interrupt (from CPL3, hlt traps and ring 0 does sti; hlt; cli). */
static inline void cpu_wait(void)
{
	__asm__ volatile("hlt" : : "D"(0) : "memory");
}

/*
 * Waits for the next interrupt unless *counter no longer reads seen (CPL3 only). Ring 0 makes the
 * comparison with interrupts off and then halts atomically (ring0/trap.c), so an interrupt handler
 * that increments *counter after the caller read 'seen' is never slept through. Returns after any
 * interrupt: the caller re-checks what it waits for.
 */
static inline void cpu_wait_unchanged(const volatile uint64_t *counter, uint64_t seen)
{
	__asm__ volatile("hlt" : : "D"(counter), "S"(seen) : "memory");
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" : : : "memory");
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline uint32_t mmio_read32(uint64_t addr)
{
	return *(volatile uint32_t *)(uintptr_t)addr;
}

static inline uint16_t mmio_read16(uint64_t addr)
{
	return *(volatile uint16_t *)(uintptr_t)addr;
}

static inline uint8_t mmio_read8(uint64_t addr)
{
	return *(volatile uint8_t *)(uintptr_t)addr;
}

static inline void mmio_write32(uint64_t addr, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)addr = v;
}

static inline void mmio_write16(uint64_t addr, uint16_t v)
{
	*(volatile uint16_t *)(uintptr_t)addr = v;
}

static inline void mmio_write8(uint64_t addr, uint8_t v)
{
	*(volatile uint8_t *)(uintptr_t)addr = v;
}

/* Compiler barrier; x86 keeps stores ordered with stores and loads with loads. */
#define barrier()       __asm__ volatile("" : : : "memory")
/* Full fence: orders earlier stores before later loads (needed before reading a device's index). */
#define mb()            __asm__ volatile("mfence" : : : "memory")

/* Ends the VM through the debug-exit port; spins if the VMM has no such port. */
__noreturn void guest_exit(unsigned value);

#endif
