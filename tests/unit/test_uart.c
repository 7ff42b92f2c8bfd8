/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "devices/uart.h"

struct sink {
	char out[256];
	size_t len;
	int irq;
	int irq_changes;
};

static void sink_irq(void *opaque, int level)
{
	struct sink *s = opaque;

	s->irq = level;
	s->irq_changes++;
}

static void sink_output(void *opaque, const uint8_t *buf, size_t len)
{
	struct sink *s = opaque;

	memcpy(s->out + s->len, buf, len);
	s->len += len;
}

static const struct uart_ops sink_ops = { sink_irq, sink_output };

static uint8_t rd(struct uart *u, unsigned int reg)
{
	uint8_t v;

	uart_bus_ops.read(u, reg, &v, 1);
	return v;
}

static void wr(struct uart *u, unsigned int reg, uint8_t v)
{
	uart_bus_ops.write(u, reg, &v, 1);
}

static void uart_thr_write_reaches_output(void **state)
{
	struct sink s = { 0 };
	struct uart u;

	uart_init(&u, &sink_ops, &s);
	wr(&u, 0, 'h');
	wr(&u, 0, 'i');
	assert_int_equal(s.len, 2);
	assert_memory_equal(s.out, "hi", 2);
	assert_int_equal(rd(&u, 5) & 0x60, 0x60); /* LSR: THR empty, transmitter empty */
}

static void uart_divisor_latch_hides_thr_and_ier(void **state)
{
	struct sink s = { 0 };
	struct uart u;

	uart_init(&u, &sink_ops, &s);
	wr(&u, 3, 0x83); /* DLAB */
	wr(&u, 0, 0x01);
	wr(&u, 1, 0x00);
	assert_int_equal(rd(&u, 0), 0x01);
	assert_int_equal(s.len, 0); /* the divisor write was not a character */
	wr(&u, 3, 0x03);
	assert_int_equal(rd(&u, 1), 0); /* IER untouched */
}

static void uart_rx_raises_and_clears_interrupt(void **state)
{
	struct sink s = { 0 };
	struct uart u;

	uart_init(&u, &sink_ops, &s);
	wr(&u, 1, 0x01); /* IER: received data available */
	assert_int_equal(s.irq, 0);
	assert_int_equal(uart_receive(&u, (const uint8_t *)"ab", 2), 2);
	assert_int_equal(s.irq, 1);
	assert_int_equal(rd(&u, 2) & 0x0f, 0x04); /* IIR: RDI */
	assert_int_equal(rd(&u, 5) & 1, 1);        /* LSR: data ready */
	assert_int_equal(rd(&u, 0), 'a');
	assert_int_equal(rd(&u, 0), 'b');
	assert_int_equal(s.irq, 0);
	assert_int_equal(rd(&u, 5) & 1, 0);
	assert_int_equal(rd(&u, 2) & 0x0f, 0x01); /* no interrupt pending */
}

static void uart_thri_pending_until_iir_read(void **state)
{
	struct sink s = { 0 };
	struct uart u;

	uart_init(&u, &sink_ops, &s);
	wr(&u, 1, 0x02); /* enabling THRI with an empty THR raises it */
	assert_int_equal(s.irq, 1);
	assert_int_equal(rd(&u, 2) & 0x0f, 0x02);
	assert_int_equal(s.irq, 0); /* the IIR read acknowledged it */
	wr(&u, 0, 'x');             /* after transmitting, THR is empty again */
	assert_int_equal(s.irq, 1);
	wr(&u, 1, 0x00);
	assert_int_equal(s.irq, 0);
}

static void uart_loopback_echoes_into_rx(void **state)
{
	struct sink s = { 0 };
	struct uart u;

	uart_init(&u, &sink_ops, &s);
	wr(&u, 4, 0x10); /* MCR loop */
	wr(&u, 0, 0x5a);
	assert_int_equal(s.len, 0);
	assert_int_equal(rd(&u, 0), 0x5a);
	wr(&u, 4, 0x10 | 0x03); /* DTR, RTS -> DSR, CTS */
	assert_int_equal(rd(&u, 6) & 0x30, 0x30);
}

static void uart_scratch_register_holds_value(void **state)
{
	struct sink s = { 0 };
	struct uart u;

	uart_init(&u, &sink_ops, &s);
	wr(&u, 7, 0xa5);
	assert_int_equal(rd(&u, 7), 0xa5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(uart_thr_write_reaches_output),
		cmocka_unit_test(uart_divisor_latch_hides_thr_and_ier),
		cmocka_unit_test(uart_rx_raises_and_clears_interrupt),
		cmocka_unit_test(uart_thri_pending_until_iir_read),
		cmocka_unit_test(uart_loopback_echoes_into_rx),
		cmocka_unit_test(uart_scratch_register_holds_value),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
