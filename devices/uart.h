/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A 16550A-compatible UART (the PC's COM1) as the guest console.
 *
 * Concurrency: register accesses come from vCPU threads, received bytes from the main thread
 * (uart_receive). One mutex guards all state; the interrupt line and the output callback are
 * called with it held, so they must not call back into the UART.
 */
#ifndef VIREO_DEVICES_UART_H
#define VIREO_DEVICES_UART_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/bus.h"

#define UART_FIFO_SIZE 16
#define UART_RX_BUF 4096

struct uart_ops {
	/* raise (1) or lower (0) the interrupt line */
	void (*set_irq)(void *opaque, int level);
	/* guest transmitted bytes */
	void (*output)(void *opaque, const uint8_t *buf, size_t len);
};

struct uart {
	pthread_mutex_t lock;
	const struct uart_ops *ops;
	void *opaque;
	uint8_t ier, lcr, mcr, lsr, msr, scr, fcr;
	uint16_t divisor;
	int thr_ipending; /* THR-empty interrupt pending until IIR read or THR write */
	int irq_level;
	uint8_t rx[UART_RX_BUF];
	size_t rx_head, rx_len;
};

extern const struct bus_ops uart_bus_ops; /* opaque = struct uart *, 8 ports */

void uart_init(struct uart *u, const struct uart_ops *ops, void *opaque);
/* Queues bytes from the host for the guest; returns how many fit. */
size_t uart_receive(struct uart *u, const uint8_t *buf, size_t len);

#endif
