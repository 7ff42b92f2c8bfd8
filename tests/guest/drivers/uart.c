/* SPDX-License-Identifier: Apache-2.0 */
/*
 * COM1 output. In CPL3 every port access is a trap (~100 µs), so we write the 16-byte FIFO with one
 * REP OUTSB after one status read, rather than polling LSR before each byte.
 */
#include "drivers/uart.h"
#include "lib/lib.h"

#define COM1            0x3f8
#define UART_THR        0
#define UART_IER        1
#define UART_FCR        2
#define UART_LCR        3
#define UART_MCR        4
#define UART_LSR        5
#define LSR_THRE        0x20    /* transmit holding register (and FIFO) empty */
#define FIFO_SIZE       16
#define POLL_MAX        1000    /* give up waiting (no UART, or one that never drains) */

void uart_init(void)
{
	outb(COM1 + UART_IER, 0);
	outb(COM1 + UART_LCR, 0x80);    /* DLAB: divisor 1 = 115200 baud */
	outb(COM1 + 0, 1);
	outb(COM1 + 1, 0);
	outb(COM1 + UART_LCR, 0x03);    /* 8N1 */
	outb(COM1 + UART_FCR, 0x07);    /* FIFO on, both cleared */
	outb(COM1 + UART_MCR, 0x03);    /* DTR, RTS */
}

static void wait_thre(void)
{
	for (unsigned i = 0; i < POLL_MAX; i++)
		if (inb(COM1 + UART_LSR) & LSR_THRE)
			return;
}

void uart_write(const char *buf, size_t len)
{
	while (len) {
		size_t n = MIN(len, (size_t)FIFO_SIZE);

		wait_thre();
		outsb_rep(COM1 + UART_THR, buf, n);
		buf += n;
		len -= n;
	}
}

__noreturn void guest_exit(unsigned value)
{
	static const char msg[] = "guest: the debug-exit port 0xf4 did not end the VM; halting\n";

	uint64_t end;

	/* QEMU ends the VM asynchronously after the write: give the VMM ~2 s before complaining */
	outb(GUEST_PORT_EXIT, value);
	end = rdtsc() + 2 * tsc_hz;
	while ((int64_t)(rdtsc() - end) < 0)
		cpu_relax();
	uart_write(msg, sizeof(msg) - 1);
	for (;;)
		cpu_wait();
}
