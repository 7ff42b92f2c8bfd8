/* SPDX-License-Identifier: Apache-2.0 */
/* 16550A register model (National Semiconductor PC16550D data sheet). Locking is in uart.h. */
#include "devices/uart.h"

#include <string.h>

enum {
	UART_RBR_THR = 0, /* DLAB=1: DLL */
	UART_IER = 1,     /* DLAB=1: DLM */
	UART_IIR_FCR = 2,
	UART_LCR = 3,
	UART_MCR = 4,
	UART_LSR = 5,
	UART_MSR = 6,
	UART_SCR = 7,
};

#define IER_RDI 0x01  /* received data available */
#define IER_THRI 0x02 /* THR empty */
#define IER_RLSI 0x04 /* line status */
#define IER_MSI 0x08  /* modem status */
#define IIR_NONE 0x01
#define IIR_RLSI 0x06
#define IIR_RDI 0x04
#define IIR_THRI 0x02
#define IIR_MSI 0x00
#define IIR_FIFO 0xc0
#define LCR_DLAB 0x80
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_LOOP 0x10
#define MSR_DCD 0x80
#define MSR_DSR 0x20
#define MSR_CTS 0x10
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02

static uint8_t uart_iir(const struct uart *u)
{
	uint8_t fifo = (u->fcr & FCR_ENABLE) ? IIR_FIFO : 0;

	if ((u->ier & IER_RDI) && u->rx_len)
		return IIR_RDI | fifo;
	if ((u->ier & IER_THRI) && u->thr_ipending)
		return IIR_THRI | fifo;
	return IIR_NONE | fifo;
}

static void uart_update_irq(struct uart *u)
{
	int level = (uart_iir(u) & IIR_NONE) == 0;

	if (level != u->irq_level) {
		u->irq_level = level;
		u->ops->set_irq(u->opaque, level);
	}
}

void uart_init(struct uart *u, const struct uart_ops *ops, void *opaque)
{
	memset(u, 0, sizeof(*u));
	pthread_mutex_init(&u->lock, NULL);
	u->ops = ops;
	u->opaque = opaque;
	u->lsr = LSR_THRE | LSR_TEMT;
	u->msr = MSR_DCD | MSR_DSR | MSR_CTS;
	u->divisor = 12; /* 9600 baud */
	u->lcr = 0x03;   /* 8N1 */
}

static uint8_t uart_rx_pop(struct uart *u)
{
	uint8_t c = 0;

	if (u->rx_len) {
		c = u->rx[u->rx_head];
		u->rx_head = (u->rx_head + 1) % UART_RX_BUF;
		u->rx_len--;
	}
	return c;
}

static size_t uart_rx_push(struct uart *u, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	while (n < len && u->rx_len < UART_RX_BUF) {
		u->rx[(u->rx_head + u->rx_len) % UART_RX_BUF] = buf[n++];
		u->rx_len++;
	}
	return n;
}

static uint8_t uart_read_reg(struct uart *u, unsigned int reg)
{
	uint8_t v;

	switch (reg) {
	case UART_RBR_THR:
		if (u->lcr & LCR_DLAB)
			return (uint8_t)u->divisor;
		return uart_rx_pop(u);
	case UART_IER:
		if (u->lcr & LCR_DLAB)
			return (uint8_t)(u->divisor >> 8);
		return u->ier;
	case UART_IIR_FCR:
		v = uart_iir(u);
		/* reading IIR while it reports THR empty acknowledges that interrupt */
		if ((v & 0x0f) == IIR_THRI)
			u->thr_ipending = 0;
		return v;
	case UART_LCR:
		return u->lcr;
	case UART_MCR:
		return u->mcr;
	case UART_LSR:
		return (uint8_t)(u->lsr | (u->rx_len ? LSR_DR : 0));
	case UART_MSR:
		if (u->mcr & MCR_LOOP) /* loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD */
			return (uint8_t)(((u->mcr & 0x0c) << 4) | ((u->mcr & 0x01) << 5) |
					 ((u->mcr & 0x02) << 3));
		return u->msr;
	default:
		return u->scr;
	}
}

static void uart_write_reg(struct uart *u, unsigned int reg, uint8_t v)
{
	switch (reg) {
	case UART_RBR_THR:
		if (u->lcr & LCR_DLAB) {
			u->divisor = (uint16_t)((u->divisor & 0xff00) | v);
			break;
		}
		if (u->mcr & MCR_LOOP)
			uart_rx_push(u, &v, 1);
		else
			u->ops->output(u->opaque, &v, 1);
		/* transmitted at once: THR is empty again */
		u->thr_ipending = 1;
		break;
	case UART_IER:
		if (u->lcr & LCR_DLAB) {
			u->divisor = (uint16_t)((u->divisor & 0x00ff) | (v << 8));
			break;
		}
		/* enabling THRI with an empty THR raises it at once, as the 16550 does */
		if (!(u->ier & IER_THRI) && (v & IER_THRI))
			u->thr_ipending = 1;
		u->ier = v & 0x0f;
		break;
	case UART_IIR_FCR:
		u->fcr = v & 0xc9;
		if (v & FCR_CLEAR_RX)
			u->rx_len = 0;
		break;
	case UART_LCR:
		u->lcr = v;
		break;
	case UART_MCR:
		u->mcr = v & 0x1f;
		break;
	case UART_SCR:
		u->scr = v;
		break;
	default: /* LSR, MSR: read-only */
		break;
	}
}

static void uart_bus_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct uart *u = opaque;

	pthread_mutex_lock(&u->lock);
	for (unsigned int i = 0; i < len; i++)
		((uint8_t *)data)[i] = uart_read_reg(u, (unsigned int)(off + i) & 7);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

static void uart_bus_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct uart *u = opaque;

	pthread_mutex_lock(&u->lock);
	for (unsigned int i = 0; i < len; i++)
		uart_write_reg(u, (unsigned int)(off + i) & 7, ((const uint8_t *)data)[i]);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

const struct bus_ops uart_bus_ops = { uart_bus_read, uart_bus_write };

size_t uart_receive(struct uart *u, const uint8_t *buf, size_t len)
{
	size_t n;

	pthread_mutex_lock(&u->lock);
	n = uart_rx_push(u, buf, len);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return n;
}
