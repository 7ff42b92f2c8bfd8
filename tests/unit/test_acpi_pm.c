/* SPDX-License-Identifier: Apache-2.0 */
/* The PM registers driven through a real port I/O bus, with the machine hooks recorded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "devices/acpi_pm.h"
#include "vmm/acpi.h"
#include "vmm/layout.h"

struct machine {
	int poweroffs, resets, sci_changes, sci;
};

static void m_poweroff(void *o)
{
	((struct machine *)o)->poweroffs++;
}

static void m_reset(void *o)
{
	((struct machine *)o)->resets++;
}

static int m_set_sci(void *o, int level)
{
	struct machine *m = o;

	m->sci_changes++;
	m->sci = level;
	return 0;
}

static const struct acpi_pm_ops m_ops = { m_poweroff, m_reset, m_set_sci };

struct fixture {
	struct bus pio;
	struct acpi_pm pm;
	struct machine m;
};

static int setup(void **state)
{
	struct fixture *f = test_calloc(1, sizeof(*f));

	bus_init(&f->pio, "pio");
	if (acpi_pm_init(&f->pm, &f->pio, &layout_acpi_pm_ports, &m_ops, &f->m, NULL) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	acpi_pm_destroy(&f->pm);
	bus_destroy(&f->pio);
	test_free(f);
	return 0;
}

static uint32_t in(struct fixture *f, uint16_t port, unsigned int len)
{
	uint8_t d[4];

	assert_true(bus_read(&f->pio, port, d, len));
	return (uint32_t)bus_get(d, len);
}

static void out(struct fixture *f, uint16_t port, unsigned int len, uint32_t v)
{
	uint8_t d[4];

	bus_put(d, len, v);
	assert_true(bus_write(&f->pio, port, d, len));
}

#define PM1_STS LAYOUT_PORT_PM1A_EVT
#define PM1_EN  (LAYOUT_PORT_PM1A_EVT + 2)
#define PM1_CNT LAYOUT_PORT_PM1A_CNT

static void acpi_pm_slp_en_with_s5_powers_off(void **state)
{
	struct fixture *f = *state;

	out(f, PM1_CNT, 2, ACPI_SLP_TYP_S5 << ACPI_PM1_SLP_TYP_SHIFT); /* type alone: nothing */
	assert_int_equal(f->m.poweroffs, 0);
	out(f, PM1_CNT, 2, ACPI_SLP_TYP_S5 << ACPI_PM1_SLP_TYP_SHIFT | ACPI_PM1_SLP_EN);
	assert_int_equal(f->m.poweroffs, 1);
	assert_int_equal(f->m.resets, 0);
}

static void acpi_pm_slp_en_with_other_types_is_ignored(void **state)
{
	struct fixture *f = *state;

	out(f, PM1_CNT, 2, ACPI_PM1_SLP_EN); /* S0 */
	out(f, PM1_CNT, 2, 3 << ACPI_PM1_SLP_TYP_SHIFT | ACPI_PM1_SLP_EN);
	assert_int_equal(f->m.poweroffs, 0);
}

static void acpi_pm_control_reads_sci_en_set_and_slp_en_clear(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(in(f, PM1_CNT, 2) & ACPI_PM1_SCI_EN, ACPI_PM1_SCI_EN);
	out(f, PM1_CNT, 2, 0); /* SCI_EN cannot be cleared: no legacy mode */
	assert_int_equal(in(f, PM1_CNT, 2), ACPI_PM1_SCI_EN);
	out(f, PM1_CNT, 2, 3 << ACPI_PM1_SLP_TYP_SHIFT | ACPI_PM1_SLP_EN);
	assert_int_equal(in(f, PM1_CNT, 2), 3 << ACPI_PM1_SLP_TYP_SHIFT | ACPI_PM1_SCI_EN);
}

static void acpi_pm_power_button_raises_sci_only_when_enabled(void **state)
{
	struct fixture *f = *state;

	acpi_pm_press_power_button(&f->pm);
	assert_int_equal(in(f, PM1_STS, 2) & ACPI_PM1_PWRBTN, ACPI_PM1_PWRBTN);
	assert_int_equal(f->m.sci, 0);
	out(f, PM1_EN, 2, ACPI_PM1_PWRBTN); /* enabling a pending event raises the line */
	assert_int_equal(f->m.sci, 1);
	assert_int_equal(in(f, PM1_EN, 2), ACPI_PM1_PWRBTN);
	out(f, PM1_STS, 2, ACPI_PM1_PWRBTN); /* the guest acknowledges */
	assert_int_equal(f->m.sci, 0);
	assert_int_equal(in(f, PM1_STS, 2), 0);
	acpi_pm_press_power_button(&f->pm);
	assert_int_equal(f->m.sci, 1);
	assert_int_equal(f->m.sci_changes, 3);
}

static void acpi_pm_status_is_write_one_to_clear(void **state)
{
	struct fixture *f = *state;

	out(f, PM1_EN, 2, ACPI_PM1_PWRBTN);
	acpi_pm_press_power_button(&f->pm);
	out(f, PM1_STS, 2, 0); /* writing 0 clears nothing */
	assert_int_equal(in(f, PM1_STS, 2), ACPI_PM1_PWRBTN);
	out(f, PM1_STS, 2, (uint16_t)~ACPI_PM1_PWRBTN); /* other bits: nothing */
	assert_int_equal(in(f, PM1_STS, 2), ACPI_PM1_PWRBTN);
	assert_int_equal(f->m.sci, 1);
	/* a dword write with status 0 and the same enable leaves status alone */
	out(f, PM1_STS, 4, ACPI_PM1_PWRBTN << 16);
	assert_int_equal(in(f, PM1_STS, 4), ACPI_PM1_PWRBTN | ACPI_PM1_PWRBTN << 16);
	out(f, PM1_STS + 1, 1, ACPI_PM1_PWRBTN >> 8); /* byte access to the status high byte */
	assert_int_equal(in(f, PM1_STS, 4), ACPI_PM1_PWRBTN << 16);
	assert_int_equal(f->m.sci, 0);
}

static void acpi_pm_enable_bits_read_back(void **state)
{
	struct fixture *f = *state;

	/* Linux enables the global-lock event and checks that the bit stuck */
	out(f, PM1_EN, 2, ACPI_PM1_GBL | ACPI_PM1_PWRBTN | ACPI_PM1_WAK);
	assert_int_equal(in(f, PM1_EN, 2), ACPI_PM1_GBL | ACPI_PM1_PWRBTN);
	out(f, LAYOUT_PORT_GPE0 + 2, 2, 0x8001);
	assert_int_equal(in(f, LAYOUT_PORT_GPE0, 4), 0x80010000);
	assert_int_equal(f->m.sci, 0);
}

static void acpi_pm_timer_advances_at_3579545_hz(void **state)
{
	struct fixture *f = *state;
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	uint32_t t0, t1;

	t0 = in(f, LAYOUT_PORT_PM_TMR, 4);
	nanosleep(&ts, NULL);
	t1 = in(f, LAYOUT_PORT_PM_TMR, 4);
	/* 20 ms is 71591 ticks; allow a slow, busy machine up to 2 s */
	assert_true(t1 - t0 >= 71000);
	assert_true(t1 - t0 < 2 * 3579545);
	out(f, LAYOUT_PORT_PM_TMR, 4, 0); /* read-only */
	assert_true(in(f, LAYOUT_PORT_PM_TMR, 4) - t1 < 2 * 3579545);
}

static void acpi_pm_reset_register_and_i8042_reset(void **state)
{
	struct fixture *f = *state;

	acpi_pm_reset_write(&f->pm, 0x02); /* SYS_RST alone: Linux writes it first */
	assert_int_equal(f->m.resets, 0);
	acpi_pm_reset_write(&f->pm, ACPI_RESET_VALUE);
	assert_int_equal(f->m.resets, 1);
	acpi_pm_reset_write(&f->pm, 0x0e);
	assert_int_equal(f->m.resets, 2);
	assert_int_equal(in(f, LAYOUT_PORT_I8042, 1) & 0x03, 0); /* no data, not busy */
	out(f, LAYOUT_PORT_I8042, 1, 0xaa);
	assert_int_equal(f->m.resets, 2);
	out(f, LAYOUT_PORT_I8042, 1, 0xfe);
	assert_int_equal(f->m.resets, 3);
	assert_int_equal(f->m.poweroffs, 0);
}

static void acpi_pm_init_refuses_a_taken_port(void **state)
{
	struct fixture *f = *state;
	struct acpi_pm other;
	struct error *err = NULL;

	assert_int_equal(acpi_pm_init(&other, &f->pio, &layout_acpi_pm_ports, &m_ops, &f->m, &err), -1);
	assert_non_null(strstr(error_msg(err), "acpi-pm1a-evt"));
	error_free(err);
	/* the failed init left the first device's ports in place */
	assert_int_equal(in(f, PM1_CNT, 2) & ACPI_PM1_SCI_EN, ACPI_PM1_SCI_EN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(acpi_pm_slp_en_with_s5_powers_off, setup, teardown),
		cmocka_unit_test_setup_teardown(acpi_pm_slp_en_with_other_types_is_ignored, setup,
						teardown),
		cmocka_unit_test_setup_teardown(acpi_pm_control_reads_sci_en_set_and_slp_en_clear,
						setup, teardown),
		cmocka_unit_test_setup_teardown(acpi_pm_power_button_raises_sci_only_when_enabled,
						setup, teardown),
		cmocka_unit_test_setup_teardown(acpi_pm_status_is_write_one_to_clear, setup,
						teardown),
		cmocka_unit_test_setup_teardown(acpi_pm_enable_bits_read_back, setup, teardown),
		cmocka_unit_test_setup_teardown(acpi_pm_timer_advances_at_3579545_hz, setup,
						teardown),
		cmocka_unit_test_setup_teardown(acpi_pm_reset_register_and_i8042_reset, setup,
						teardown),
		cmocka_unit_test_setup_teardown(acpi_pm_init_refuses_a_taken_port, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
