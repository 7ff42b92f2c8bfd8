/* SPDX-License-Identifier: Apache-2.0 */
/* ACPI PM registers, reset and i8042 ports; the register map and locking are in acpi_pm.h. */
#include "devices/acpi_pm.h"

#include <string.h>
#include <time.h>

#include "common/util.h"

#define PM1_STS_BITS (ACPI_PM1_TMR | ACPI_PM1_BM | ACPI_PM1_GBL | ACPI_PM1_PWRBTN | \
		      ACPI_PM1_SLPBTN | ACPI_PM1_RTC | ACPI_PM1_PCIEXP_WAKE | ACPI_PM1_WAK)
#define PM1_EN_BITS  (ACPI_PM1_TMR | ACPI_PM1_GBL | ACPI_PM1_PWRBTN | ACPI_PM1_SLPBTN | \
		      ACPI_PM1_RTC | ACPI_PM1_PCIEXP_WAKE)
/* control bits that read back what was written (SLP_EN and GBL_RLS are write-only) */
#define PM1_CNT_RW   (ACPI_PM1_BM_RLD | ACPI_PM1_SLP_TYP_MASK)

#define RESET_RST_CPU      0x04 /* 0xcf9: a write with this bit set resets */
#define I8042_CMD_RESET    0xfe
#define I8042_STATUS_IDLE  0x00 /* output buffer empty, input buffer empty */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Drives the SCI to match (status & enable); caller holds the lock. */
static void update_sci(struct acpi_pm *pm)
{
	bool level = (pm->pm1_sts & pm->pm1_en) || (pm->gpe0_sts & pm->gpe0_en);

	if (level != pm->sci_level) {
		pm->sci_level = level;
		pm->ops->set_sci(pm->opaque, level);
	}
}

/*
 * A register block is accessed with any width at any offset: merge a write of `len` bytes at
 * `off` into the 32-bit image of the block. *mask gets the bits the guest wrote.
 */
static uint32_t write_image(uint64_t off, const void *data, unsigned int len, uint32_t *mask)
{
	uint64_t m = (len >= 4 ? 0xffffffffULL : ((1ULL << (8 * len)) - 1)) << (8 * off);

	*mask = (uint32_t)m;
	return (uint32_t)(bus_get(data, len) << (8 * off)) & *mask;
}

static void read_image(uint32_t image, uint64_t off, void *data, unsigned int len)
{
	bus_put(data, len, image >> (8 * off));
}

/* Status in bytes 0-1 (write 1 to clear), enable in bytes 2-3: PM1 event and GPE0 blocks alike. */
static void sts_en_write(uint16_t *sts, uint16_t *en, uint16_t en_bits, uint64_t off,
			 const void *data, unsigned int len)
{
	uint32_t mask, v = write_image(off, data, len, &mask);

	*sts &= (uint16_t)~(v & 0xffff);
	if (mask >> 16)
		*en = (uint16_t)((*en & ~(mask >> 16)) | ((v >> 16) & en_bits));
}

static void pm1_evt_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct acpi_pm *pm = opaque;

	pthread_mutex_lock(&pm->lock);
	read_image(pm->pm1_sts | (uint32_t)pm->pm1_en << 16, off, data, len);
	pthread_mutex_unlock(&pm->lock);
}

static void pm1_evt_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct acpi_pm *pm = opaque;

	pthread_mutex_lock(&pm->lock);
	sts_en_write(&pm->pm1_sts, &pm->pm1_en, PM1_EN_BITS, off, data, len);
	update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

static const struct bus_ops pm1_evt_ops = { pm1_evt_read, pm1_evt_write };

static void gpe0_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct acpi_pm *pm = opaque;

	pthread_mutex_lock(&pm->lock);
	read_image(pm->gpe0_sts | (uint32_t)pm->gpe0_en << 16, off, data, len);
	pthread_mutex_unlock(&pm->lock);
}

static void gpe0_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct acpi_pm *pm = opaque;

	pthread_mutex_lock(&pm->lock);
	sts_en_write(&pm->gpe0_sts, &pm->gpe0_en, 0xffff, off, data, len);
	update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

static const struct bus_ops gpe0_ops = { gpe0_read, gpe0_write };

static void pm1_cnt_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct acpi_pm *pm = opaque;

	pthread_mutex_lock(&pm->lock);
	read_image(pm->pm1_cnt | ACPI_PM1_SCI_EN, off, data, len);
	pthread_mutex_unlock(&pm->lock);
}

/* SLP_EN enters the sleep state in SLP_TYP; we only have S5 (others are ignored: S0 = awake). */
static void pm1_cnt_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct acpi_pm *pm = opaque;
	uint32_t mask, v = write_image(off, data, len, &mask);
	bool poweroff = false;

	pthread_mutex_lock(&pm->lock);
	pm->pm1_cnt = (uint16_t)((pm->pm1_cnt & ~mask) | (v & PM1_CNT_RW));
	if (v & ACPI_PM1_SLP_EN) {
		unsigned int typ = (pm->pm1_cnt & ACPI_PM1_SLP_TYP_MASK) >> ACPI_PM1_SLP_TYP_SHIFT;

		poweroff = typ == ACPI_SLP_TYP_S5;
	}
	pthread_mutex_unlock(&pm->lock);
	if (poweroff)
		pm->ops->poweroff(pm->opaque);
}

static const struct bus_ops pm1_cnt_ops = { pm1_cnt_read, pm1_cnt_write };

/* 32-bit counter at 3.579545 MHz (FADT TMR_VAL_EXT); read-only. */
static void pm_tmr_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct acpi_pm *pm = opaque;
	unsigned __int128 ticks = (unsigned __int128)(now_ns() - pm->tmr_ns0) * ACPI_PM_TIMER_HZ;

	read_image((uint32_t)(ticks / 1000000000ULL), off, data, len);
}

static void ignore_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
}

static const struct bus_ops pm_tmr_ops = { pm_tmr_read, ignore_write };

static void i8042_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	bus_put(data, len, I8042_STATUS_IDLE);
}

static void i8042_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct acpi_pm *pm = opaque;

	if ((bus_get(data, len) & 0xff) == I8042_CMD_RESET)
		pm->ops->reset(pm->opaque);
}

static const struct bus_ops i8042_ops = { i8042_read, i8042_write };

void acpi_pm_reset_write(void *opaque, uint8_t value)
{
	struct acpi_pm *pm = opaque;

	if (value & RESET_RST_CPU)
		pm->ops->reset(pm->opaque);
}

void acpi_pm_press_power_button(struct acpi_pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	pm->pm1_sts |= ACPI_PM1_PWRBTN;
	update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

/* The registers, in the order of reg_port() */
static const struct {
	uint16_t size;
	const struct bus_ops *ops;
	const char *name;
} pm_regs[] = {
	{ 4, &pm1_evt_ops, "acpi-pm1a-evt" },
	{ 2, &pm1_cnt_ops, "acpi-pm1a-cnt" },
	{ 4, &pm_tmr_ops, "acpi-pm-tmr" },
	{ 4, &gpe0_ops, "acpi-gpe0" },
	{ 1, &i8042_ops, "i8042-reset" },
};

/* Where register @i of pm_regs is */
static uint16_t reg_port(const struct acpi_pm *pm, unsigned int i)
{
	const struct acpi_pm_ports *p = &pm->ports;
	const uint16_t port[] = { p->pm1a_evt, p->pm1a_cnt, p->pm_tmr, p->gpe0, p->i8042 };

	_Static_assert(ARRAY_SIZE(port) == ARRAY_SIZE(pm_regs), "a port for every register");
	return port[i];
}

int acpi_pm_init(struct acpi_pm *pm, struct bus *pio, const struct acpi_pm_ports *ports,
		 const struct acpi_pm_ops *ops, void *opaque, struct error **errp)
{
	unsigned int i;

	memset(pm, 0, sizeof(*pm));
	pthread_mutex_init(&pm->lock, NULL);
	pm->ops = ops;
	pm->opaque = opaque;
	pm->pio = pio;
	pm->ports = *ports;
	pm->tmr_ns0 = now_ns();
	for (i = 0; i < ARRAY_SIZE(pm_regs); i++) {
		if (bus_add(pio, reg_port(pm, i), pm_regs[i].size, pm_regs[i].ops, pm,
			    pm_regs[i].name, errp) < 0)
			goto err_ports;
	}
	return 0;

err_ports:
	while (i--)
		bus_remove(pio, reg_port(pm, i), pm);
	pthread_mutex_destroy(&pm->lock);
	return -1;
}

void acpi_pm_destroy(struct acpi_pm *pm)
{
	for (unsigned int i = 0; i < ARRAY_SIZE(pm_regs); i++)
		bus_remove(pm->pio, reg_port(pm, i), pm);
	pthread_mutex_destroy(&pm->lock);
}
