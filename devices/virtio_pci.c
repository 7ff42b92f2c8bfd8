/* SPDX-License-Identifier: Apache-2.0 */
/* Modern virtio-pci transport; the ownership rules are in virtio_pci.h. */
#include "devices/virtio_pci.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/util.h"

/* BAR 0 layout */
#define VPCI_BAR0_SIZE (16 * KiB)
#define VPCI_COMMON_OFF 0x0000
#define VPCI_ISR_OFF 0x1000
#define VPCI_DEVICE_OFF 0x2000
#define VPCI_NOTIFY_OFF 0x3000
#define VPCI_REGION_SIZE 0x1000
#define VPCI_NOTIFY_MULT 4
#define VPCI_MSIX_BAR 2


#define MSIX_ENTRY_SIZE 16
#define MSIX_CTRL_MASKBIT 1u

/* KVM wiring exists (tests and vireo-blk-loop give guest memory only) */
static bool kvm_wired(const struct vpci_dev *v)
{
	return v->host.ops != NULL;
}

static int vector_irqfd(struct vpci_dev *v, const struct vpci_vector *x, bool assign,
			struct error **errp)
{
	return v->host.ops->irqfd(v->host.opaque, (uint32_t)x->gsi, x->efd, assign, errp);
}

/* A queue's notify address: an MMIO ioeventfd matching any write width */
static int notify_ioeventfd(struct vpci_dev *v, uint64_t addr, int efd, bool assign,
			    struct error **errp)
{
	return v->host.ops->ioeventfd(v->host.opaque, addr, 0, false, efd, assign, errp);
}

static void vpci_log(struct vpci_dev *v, struct error *err)
{
	fprintf(stderr, "vireo: %s: %s\n", v->name, error_msg(err));
	error_free(err);
}

/* ---------------------------------------------------------------------------------------------
 * MSI-X vectors (lock held)
 */

static bool vector_unmasked(struct vpci_dev *v, unsigned int i)
{
	return v->msix_enabled && !v->msix_masked && !(v->vectors[i].ctrl & MSIX_CTRL_MASKBIT);
}

/* Brings vector @i's KVM wiring in line with its table entry and mask state. */
static void vector_update(struct vpci_dev *v, unsigned int i)
{
	struct vpci_vector *x = &v->vectors[i];
	struct error *err = NULL;
	uint64_t addr = (uint64_t)x->addr_hi << 32 | x->addr_lo;

	if (!kvm_wired(v))
		return;
	if (!vector_unmasked(v, i)) {
		if (x->irqfd && vector_irqfd(v, x, false, &err) < 0)
			vpci_log(v, err);
		x->irqfd = false;
		return;
	}
	if (x->gsi < 0) {
		x->gsi = v->host.ops->gsi_alloc(v->host.opaque, &err);
		if (x->gsi < 0)
			goto err;
	}
	if (!x->routed || x->route_addr != addr || x->route_data != x->data) {
		if (v->host.ops->msi_route(v->host.opaque, (uint32_t)x->gsi, addr, x->data,
					   &err) < 0)
			goto err;
		x->routed = true;
		x->route_addr = addr;
		x->route_data = x->data;
	}
	/* attaching an eventfd that was written while masked makes KVM deliver it now */
	if (!x->irqfd) {
		if (vector_irqfd(v, x, true, &err) < 0)
			goto err;
		x->irqfd = true;
	}
	return;
err:
	vpci_log(v, err);
}

static void vectors_update_all(struct vpci_dev *v)
{
	for (unsigned int i = 0; i < v->nr_vectors; i++)
		vector_update(v, i);
}

/* Pending bit of a masked vector: its eventfd was written and nobody consumed it. */
static bool vector_pending(struct vpci_dev *v, unsigned int i)
{
	struct pollfd p = { .fd = v->vectors[i].efd, .events = POLLIN };

	if (v->vectors[i].irqfd)
		return false;
	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void msix_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct vpci_dev *v = opaque;
	uint64_t table = (uint64_t)v->nr_vectors * MSIX_ENTRY_SIZE, pba = ALIGN_UP(table, 8);
	uint64_t val = 0;

	pthread_mutex_lock(&v->lock);
	for (unsigned int b = 0; b < len; b++) {
		uint64_t o = off + b, byte = 0;

		if (o < table) {
			const struct vpci_vector *x = &v->vectors[o / MSIX_ENTRY_SIZE];
			uint32_t words[4] = { x->addr_lo, x->addr_hi, x->data, x->ctrl };

			byte = (words[(o % MSIX_ENTRY_SIZE) / 4] >> (8 * (o % 4))) & 0xff;
		} else if (o >= pba && (o - pba) * 8 < v->nr_vectors) {
			uint64_t first = (o - pba) * 8;

			for (unsigned int bit = 0; bit < 8 && first + bit < v->nr_vectors; bit++)
				if (vector_pending(v, (unsigned int)(first + bit)))
					byte |= 1u << bit;
		}
		val |= byte << (8 * b);
	}
	pthread_mutex_unlock(&v->lock);
	bus_put(data, len, val);
}

static void msix_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct vpci_dev *v = opaque;
	uint64_t val = bus_get(data, len);
	unsigned int first = UINT32_MAX, last = 0;

	pthread_mutex_lock(&v->lock);
	for (unsigned int b = 0; b < len; b++) {
		uint64_t o = off + b;
		struct vpci_vector *x;
		uint32_t *w;
		unsigned int shift = 8 * (o % 4);

		if (o >= (uint64_t)v->nr_vectors * MSIX_ENTRY_SIZE)
			continue; /* the PBA is read-only */
		x = &v->vectors[o / MSIX_ENTRY_SIZE];
		w = (uint32_t *[]){ &x->addr_lo, &x->addr_hi, &x->data, &x->ctrl }[(o % 16) / 4];
		*w = (*w & ~(0xffu << shift)) | (uint32_t)((val >> (8 * b)) & 0xff) << shift;
		if ((o % 16) / 4 == 3)
			x->ctrl &= MSIX_CTRL_MASKBIT; /* other control bits are reserved */
		first = MIN(first, (unsigned int)(o / MSIX_ENTRY_SIZE));
		last = MAX(last, (unsigned int)(o / MSIX_ENTRY_SIZE));
	}
	for (unsigned int i = first; i <= last && i < v->nr_vectors; i++)
		vector_update(v, i);
	pthread_mutex_unlock(&v->lock);
}

static const struct bus_ops msix_ops = { msix_read, msix_write };

/* ---------------------------------------------------------------------------------------------
 * Queues and ioeventfds (lock held)
 */

int vpci_vector_eventfd(const struct vpci_dev *v, uint16_t vec)
{
	return vec < v->nr_vectors ? v->vectors[vec].efd : -1;
}

static void ioeventfds_set(struct vpci_dev *v, bool assign)
{
	for (unsigned int i = 0; i < v->nr_queues; i++) {
		struct vpci_queue *q = &v->queues[i];
		struct error *err = NULL;

		if (q->ioeventfd_addr != PCI_BAR_UNMAPPED && !assign) {
			if (kvm_wired(v) && notify_ioeventfd(v, q->ioeventfd_addr, q->kick_fd,
							   false, &err) < 0)
				vpci_log(v, err);
			q->ioeventfd_addr = PCI_BAR_UNMAPPED;
		}
		if (assign && q->enabled && v->bar0 != PCI_BAR_UNMAPPED &&
		    q->ioeventfd_addr == PCI_BAR_UNMAPPED) {
			uint64_t a = v->bar0 + VPCI_NOTIFY_OFF + VPCI_NOTIFY_MULT * i;

			/* len 0: any write width; without it the MMIO handler forwards the kick */
			if (!kvm_wired(v))
				continue;
			if (notify_ioeventfd(v, a, q->kick_fd, true, &err) < 0) {
				vpci_log(v, err);
				continue;
			}
			q->ioeventfd_addr = a;
		}
	}
}

static void queue_defaults(struct vpci_queue *q)
{
	q->vq.size = q->max_size;
	q->vq.desc_gpa = q->vq.avail_gpa = q->vq.used_gpa = 0;
	q->vector = VIRTIO_MSI_NO_VECTOR;
	q->enabled = false;
}

static void device_reset(struct vpci_dev *v)
{
	if (v->active) {
		v->ops->reset(v->opaque, v);
		v->active = false;
	}
	ioeventfds_set(v, false);
	atomic_store(&v->config_efd, -1);
	v->driver_features = 0;
	v->dfselect = v->gfselect = 0;
	v->queue_select = 0;
	v->config_vector = VIRTIO_MSI_NO_VECTOR;
	atomic_store(&v->isr, 0);
	for (unsigned int i = 0; i < v->nr_queues; i++)
		queue_defaults(&v->queues[i]);
	atomic_store(&v->status, 0);
}

static void set_needs_reset_locked(struct vpci_dev *v)
{
	int efd;

	atomic_fetch_or(&v->status, VIRTIO_STATUS_NEEDS_RESET);
	atomic_fetch_or(&v->isr, 2);
	efd = atomic_load(&v->config_efd);
	if (efd >= 0)
		eventfd_write(efd, 1);
}

/* DRIVER_OK: start the enabled queues and hand them to the device model. */
static void device_activate(struct vpci_dev *v)
{
	for (unsigned int i = 0; i < v->nr_queues; i++) {
		struct vpci_queue *q = &v->queues[i];
		int ret;

		if (!q->enabled)
			continue;
		q->vq.event_idx = vpci_has_feature(v, VIRTIO_F_EVENT_IDX);
		q->vq.indirect = vpci_has_feature(v, VIRTIO_F_INDIRECT_DESC);
		q->vq.kick_fd = q->kick_fd;
		q->vq.call_fd = vpci_vector_eventfd(v, q->vector);
		ret = virtq_start(&q->vq);
		if (ret < 0) {
			fprintf(stderr, "vireo: %s: queue %u is misconfigured by the driver "
				"(size %u, desc 0x%llx, avail 0x%llx, used 0x%llx): %s\n",
				v->name, i, q->vq.size, (unsigned long long)q->vq.desc_gpa,
				(unsigned long long)q->vq.avail_gpa,
				(unsigned long long)q->vq.used_gpa, strerror(-ret));
			set_needs_reset_locked(v);
			return;
		}
	}
	atomic_store(&v->config_efd, vpci_vector_eventfd(v, v->config_vector));
	ioeventfds_set(v, true);
	if (v->ops->activate(v->opaque, v) < 0) {
		ioeventfds_set(v, false);
		set_needs_reset_locked(v);
		return;
	}
	v->active = true;
}

static void status_write(struct vpci_dev *v, uint8_t val)
{
	uint8_t old = atomic_load(&v->status);

	if (val == 0) {
		device_reset(v);
		return;
	}
	if ((val & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
		/* a modern device needs VERSION_1; refusing leaves FEATURES_OK clear */
		if (!vpci_has_feature(v, VIRTIO_F_VERSION_1))
			val &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	}
	/*
	 * NEEDS_RESET is the device's bit: the driver cannot set or clear it, and an iothread may
	 * set it concurrently (vpci_set_needs_reset), hence the compare-and-swap.
	 */
	val &= (uint8_t)~VIRTIO_STATUS_NEEDS_RESET;
	while (!atomic_compare_exchange_weak(&v->status, &old,
					     (uint8_t)(val | (old & VIRTIO_STATUS_NEEDS_RESET))))
		;
	if ((val & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK) && !v->active &&
	    (val & VIRTIO_STATUS_FEATURES_OK))
		device_activate(v);
}

/* ---------------------------------------------------------------------------------------------
 * Common config
 */

static uint32_t feature_word(uint64_t features, uint32_t select)
{
	return select < 2 ? (uint32_t)(features >> (32 * select)) : 0;
}

static uint32_t common_read(struct vpci_dev *v, uint64_t off)
{
	struct vpci_queue *q = v->queue_select < v->nr_queues ? &v->queues[v->queue_select] : NULL;

	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT: return v->dfselect;
	case VIRTIO_PCI_COMMON_DF: return feature_word(v->host_features, v->dfselect);
	case VIRTIO_PCI_COMMON_GFSELECT: return v->gfselect;
	case VIRTIO_PCI_COMMON_GF: return feature_word(v->driver_features, v->gfselect);
	case VIRTIO_PCI_COMMON_MSIX: return v->config_vector;
	case VIRTIO_PCI_COMMON_NUMQ: return v->nr_queues;
	case VIRTIO_PCI_COMMON_STATUS: return atomic_load(&v->status);
	case VIRTIO_PCI_COMMON_CFGGEN: return v->config_generation;
	case VIRTIO_PCI_COMMON_Q_SELECT: return v->queue_select;
	case VIRTIO_PCI_COMMON_Q_SIZE: return q ? q->vq.size : 0;
	case VIRTIO_PCI_COMMON_Q_MSIX: return q ? q->vector : VIRTIO_MSI_NO_VECTOR;
	case VIRTIO_PCI_COMMON_Q_ENABLE: return q ? q->enabled : 0;
	case VIRTIO_PCI_COMMON_Q_NOFF: return q ? v->queue_select : 0;
	case VIRTIO_PCI_COMMON_Q_DESCLO: return q ? (uint32_t)q->vq.desc_gpa : 0;
	case VIRTIO_PCI_COMMON_Q_DESCHI: return q ? (uint32_t)(q->vq.desc_gpa >> 32) : 0;
	case VIRTIO_PCI_COMMON_Q_AVAILLO: return q ? (uint32_t)q->vq.avail_gpa : 0;
	case VIRTIO_PCI_COMMON_Q_AVAILHI: return q ? (uint32_t)(q->vq.avail_gpa >> 32) : 0;
	case VIRTIO_PCI_COMMON_Q_USEDLO: return q ? (uint32_t)q->vq.used_gpa : 0;
	case VIRTIO_PCI_COMMON_Q_USEDHI: return q ? (uint32_t)(q->vq.used_gpa >> 32) : 0;
	case VIRTIO_PCI_COMMON_Q_NDATA: return q ? v->queue_select : 0;
	default: return 0; /* queue_reset (not offered) and reserved */
	}
}

static void set_lo(uint64_t *x, uint32_t v)
{
	*x = (*x & 0xffffffff00000000ull) | v;
}

static void set_hi(uint64_t *x, uint32_t v)
{
	*x = (*x & 0xffffffffull) | (uint64_t)v << 32;
}

static void common_write(struct vpci_dev *v, uint64_t off, uint32_t val)
{
	struct vpci_queue *q = v->queue_select < v->nr_queues ? &v->queues[v->queue_select] : NULL;
	bool running = atomic_load(&v->status) & VIRTIO_STATUS_DRIVER_OK;
	uint64_t feat;

	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT: v->dfselect = val; break;
	case VIRTIO_PCI_COMMON_GFSELECT: v->gfselect = val; break;
	case VIRTIO_PCI_COMMON_GF:
		if (v->gfselect >= 2 || (atomic_load(&v->status) & VIRTIO_STATUS_FEATURES_OK))
			break;
		feat = v->driver_features;
		if (v->gfselect == 0)
			set_lo(&feat, val);
		else
			set_hi(&feat, val);
		v->driver_features = feat & v->host_features; /* unoffered bits are dropped */
		break;
	case VIRTIO_PCI_COMMON_MSIX:
		v->config_vector = val < v->nr_vectors ? (uint16_t)val : VIRTIO_MSI_NO_VECTOR;
		if (v->active)
			atomic_store(&v->config_efd, vpci_vector_eventfd(v, v->config_vector));
		break;
	case VIRTIO_PCI_COMMON_STATUS: status_write(v, (uint8_t)val); break;
	case VIRTIO_PCI_COMMON_Q_SELECT: v->queue_select = (uint16_t)val; break;
	case VIRTIO_PCI_COMMON_Q_SIZE:
		/* split rings: a power of two up to the maximum, and only while stopped */
		if (q && !q->enabled && val && val <= q->max_size && !(val & (val - 1)))
			q->vq.size = (uint16_t)val;
		break;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		if (q && !running)
			q->vector = val < v->nr_vectors ? (uint16_t)val : VIRTIO_MSI_NO_VECTOR;
		break;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		if (q && !running && val == 1)
			q->enabled = true;
		break;
	case VIRTIO_PCI_COMMON_Q_DESCLO: if (q && !q->enabled) set_lo(&q->vq.desc_gpa, val); break;
	case VIRTIO_PCI_COMMON_Q_DESCHI: if (q && !q->enabled) set_hi(&q->vq.desc_gpa, val); break;
	case VIRTIO_PCI_COMMON_Q_AVAILLO: if (q && !q->enabled) set_lo(&q->vq.avail_gpa, val); break;
	case VIRTIO_PCI_COMMON_Q_AVAILHI: if (q && !q->enabled) set_hi(&q->vq.avail_gpa, val); break;
	case VIRTIO_PCI_COMMON_Q_USEDLO: if (q && !q->enabled) set_lo(&q->vq.used_gpa, val); break;
	case VIRTIO_PCI_COMMON_Q_USEDHI: if (q && !q->enabled) set_hi(&q->vq.used_gpa, val); break;
	default: break; /* read-only fields, queue_reset (not offered), reserved */
	}
}

/* Width of the field at @off in struct virtio_pci_common_cfg (0: not a field start). */
static unsigned int common_width(uint64_t off)
{
	if (off < VIRTIO_PCI_COMMON_MSIX)
		return off % 4 ? 0 : 4;
	if (off == VIRTIO_PCI_COMMON_STATUS || off == VIRTIO_PCI_COMMON_CFGGEN)
		return 1;
	if (off < VIRTIO_PCI_COMMON_Q_DESCLO)
		return off % 2 ? 0 : 2;
	if (off < VIRTIO_PCI_COMMON_Q_NDATA)
		return off % 4 ? 0 : 4;
	if (off < VIRTIO_PCI_COMMON_SIZE)
		return off % 2 ? 0 : 2;
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * BAR 0
 */

static void bar0_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct vpci_dev *v = opaque;
	uint64_t val = 0;

	if (off >= VPCI_DEVICE_OFF && off < VPCI_DEVICE_OFF + VPCI_REGION_SIZE) {
		uint64_t o = off - VPCI_DEVICE_OFF;

		memset(data, 0, len);
		if (o + len <= v->config_len) {
			pthread_mutex_lock(&v->lock);
			v->ops->config_read(v->opaque, (uint32_t)o, data, len);
			pthread_mutex_unlock(&v->lock);
		}
		return;
	}
	pthread_mutex_lock(&v->lock);
	if (off < VIRTIO_PCI_COMMON_SIZE) {
		/* a 64-bit access to queue_desc & co. is two 32-bit ones */
		if (len == 8 && common_width(off) == 4)
			val = common_read(v, off) | (uint64_t)common_read(v, off + 4) << 32;
		else if (common_width(off) == len)
			val = common_read(v, off);
	} else if (off == VPCI_ISR_OFF && len == 1) {
		val = atomic_exchange(&v->isr, 0); /* read to clear */
	}
	pthread_mutex_unlock(&v->lock);
	bus_put(data, len, val);
}

static void bar0_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct vpci_dev *v = opaque;
	uint64_t val = bus_get(data, len);

	if (off >= VPCI_NOTIFY_OFF && off < VPCI_NOTIFY_OFF + VPCI_REGION_SIZE) {
		/* a kick the ioeventfd did not catch (before DRIVER_OK, or no KVM): forward it */
		uint64_t qi = (off - VPCI_NOTIFY_OFF) / VPCI_NOTIFY_MULT;

		if (qi < v->nr_queues)
			eventfd_write(v->queues[qi].kick_fd, 1);
		return;
	}
	if (off >= VPCI_DEVICE_OFF && off < VPCI_DEVICE_OFF + VPCI_REGION_SIZE) {
		uint64_t o = off - VPCI_DEVICE_OFF;

		if (o + len <= v->config_len && v->ops->config_write) {
			pthread_mutex_lock(&v->lock);
			v->ops->config_write(v->opaque, (uint32_t)o, data, len);
			pthread_mutex_unlock(&v->lock);
		}
		return;
	}
	if (off >= VIRTIO_PCI_COMMON_SIZE)
		return;
	pthread_mutex_lock(&v->lock);
	if (len == 8 && common_width(off) == 4) {
		common_write(v, off, (uint32_t)val);
		common_write(v, off + 4, (uint32_t)(val >> 32));
	} else if (common_width(off) == len) {
		common_write(v, off, (uint32_t)val);
	}
	pthread_mutex_unlock(&v->lock);
}

static const struct bus_ops bar0_ops = { bar0_read, bar0_write };

/* ---------------------------------------------------------------------------------------------
 * PCI hooks (bus lock held)
 */

/*
 * VIRTIO_PCI_CAP_PCI_CFG: a window into the BARs through config space. The driver writes the
 * capability's bar, offset and length, then reads or writes pci_cfg_data (4 bytes at +16),
 * which performs that access on the BAR (bus lock held; the BAR handlers take the vpci lock).
 */
#define PCI_CFG_DATA 16

static bool pcicfg_hit(const struct vpci_dev *v, uint32_t off, unsigned int len)
{
	uint32_t data = (uint32_t)v->pcicfg_cap + PCI_CFG_DATA;

	return v->pcicfg_cap >= 0 && off < data + 4 && off + len > data;
}

/* The access the capability describes: returns false if it is not a valid one. */
static bool pcicfg_target(const struct vpci_dev *v, const struct bus_ops **ops, uint64_t *off,
			  unsigned int *len)
{
	const uint8_t *c = &v->pci.cfg[v->pcicfg_cap];
	uint32_t o, l;

	memcpy(&o, c + 8, 4);
	memcpy(&l, c + 12, 4);
	if ((l != 1 && l != 2 && l != 4) || o % l)
		return false;
	if (c[4] == 0 && o + l <= VPCI_BAR0_SIZE)
		*ops = &bar0_ops;
	else if (c[4] == VPCI_MSIX_BAR && o + l <= v->pci.bars[VPCI_MSIX_BAR].size)
		*ops = &msix_ops;
	else
		return false;
	*off = o;
	*len = l;
	return true;
}

static void vpci_cfg_read(struct pci_device *d, uint32_t off, unsigned int len)
{
	struct vpci_dev *v = d->opaque;
	const struct bus_ops *ops;
	uint8_t buf[4] = { 0 };
	uint64_t boff;
	unsigned int blen;

	if (!pcicfg_hit(v, off, len))
		return;
	if (pcicfg_target(v, &ops, &boff, &blen))
		ops->read(v, boff, buf, blen);
	memcpy(&d->cfg[v->pcicfg_cap + PCI_CFG_DATA], buf, 4);
}

static void pcicfg_write(struct vpci_dev *v)
{
	const struct bus_ops *ops;
	uint64_t boff;
	unsigned int blen;

	if (pcicfg_target(v, &ops, &boff, &blen))
		ops->write(v, boff, &v->pci.cfg[v->pcicfg_cap + PCI_CFG_DATA], blen);
}

static void vpci_cfg_write(struct pci_device *d, uint32_t off, unsigned int len, uint32_t val)
{
	struct vpci_dev *v = d->opaque;
	uint16_t ctl;

	if (pcicfg_hit(v, off, len)) {
		pcicfg_write(v);
		return;
	}
	if (v->msix_cap < 0 || off + len <= (uint32_t)v->msix_cap + 2 ||
	    off >= (uint32_t)v->msix_cap + 4)
		return;
	ctl = pci_msix_control(d, (unsigned int)v->msix_cap);
	pthread_mutex_lock(&v->lock);
	v->msix_enabled = ctl & PCI_MSIX_FLAGS_ENABLE;
	v->msix_masked = ctl & PCI_MSIX_FLAGS_MASKALL;
	vectors_update_all(v);
	pthread_mutex_unlock(&v->lock);
}

static void vpci_bar_moved(struct pci_device *d, unsigned int bar, uint64_t old, uint64_t new)
{
	struct vpci_dev *v = d->opaque;

	if (bar != 0)
		return;
	pthread_mutex_lock(&v->lock);
	ioeventfds_set(v, false);
	v->bar0 = new;
	if (v->active)
		ioeventfds_set(v, true);
	pthread_mutex_unlock(&v->lock);
}

static const struct pci_device_ops vpci_pci_ops = { vpci_cfg_write, vpci_bar_moved,
						     vpci_cfg_read };

/* ---------------------------------------------------------------------------------------------
 * Set-up
 */

static int add_virtio_cap(struct vpci_dev *v, uint8_t type, uint32_t off, uint32_t len,
			  bool notify, struct error **errp)
{
	uint8_t cap[20] = { 0 };
	unsigned int n = notify ? 20 : 16;

	cap[2] = (uint8_t)n; /* cap_len */
	cap[3] = type;
	cap[4] = 0;          /* BAR 0 */
	memcpy(&cap[8], &off, 4);
	memcpy(&cap[12], &len, 4);
	if (notify) {
		uint32_t mult = VPCI_NOTIFY_MULT;

		memcpy(&cap[16], &mult, 4);
	}
	return pci_add_capability(&v->pci, PCI_CAP_ID_VNDR, cap, n, NULL, errp) < 0 ? -1 : 0;
}

static int add_pcicfg_cap(struct vpci_dev *v, struct error **errp)
{
	uint8_t cap[20] = { 0 }, mask[20] = { 0 };

	cap[2] = sizeof(cap);
	cap[3] = VIRTIO_PCI_CAP_PCI_CFG;
	mask[4] = 0xff;                /* bar */
	memset(&mask[8], 0xff, 12);    /* offset, length, pci_cfg_data */
	v->pcicfg_cap = pci_add_capability(&v->pci, PCI_CAP_ID_VNDR, cap, sizeof(cap), mask, errp);
	return v->pcicfg_cap < 0 ? -1 : 0;
}

static uint64_t pow2_at_least(uint64_t x)
{
	uint64_t p = 4096;

	while (p < x)
		p <<= 1;
	return p;
}

int vpci_init(struct vpci_dev *v, const struct vpci_host *host, const char *name,
	      uint16_t virtio_id, uint32_t class_code, uint64_t features, unsigned int nr_queues,
	      uint16_t max_queue_size, uint32_t config_len, const struct virtio_device_ops *ops,
	      void *opaque, struct error **errp)
{
	uint64_t table_len, pba_off;

	memset(v, 0, sizeof(*v));
	if (nr_queues == 0 || nr_queues > VPCI_MAX_QUEUES || max_queue_size == 0 ||
	    max_queue_size > VIRTQ_MAX_SIZE || (max_queue_size & (max_queue_size - 1)) ||
	    config_len > VPCI_REGION_SIZE) {
		error_setg(errp, "%s: bad virtio-pci geometry (%u queues of %u)", name, nr_queues,
			   max_queue_size);
		return -1;
	}
	pthread_mutex_init(&v->lock, NULL);
	if (host)
		v->host = *host;
	v->name = name;
	v->ops = ops;
	v->opaque = opaque;
	v->host_features = features | 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_F_EVENT_IDX |
			   1ull << VIRTIO_F_INDIRECT_DESC;
	v->config_len = config_len;
	v->config_vector = VIRTIO_MSI_NO_VECTOR;
	atomic_init(&v->config_efd, -1);
	v->bar0 = PCI_BAR_UNMAPPED;
	v->msix_cap = -1;
	v->pcicfg_cap = -1;
	v->nr_queues = nr_queues;
	v->nr_vectors = nr_queues + 1;
	v->queues = calloc(nr_queues, sizeof(*v->queues));
	v->vectors = calloc(v->nr_vectors, sizeof(*v->vectors));
	if (!v->queues || !v->vectors) {
		error_setg(errp, "%s: out of memory", name);
		free(v->queues);
		free(v->vectors);
		v->queues = NULL;
		v->vectors = NULL;
		pthread_mutex_destroy(&v->lock);
		return -1;
	}
	for (unsigned int i = 0; i < v->nr_vectors; i++) {
		v->vectors[i].efd = -1;
		v->vectors[i].gsi = -1;
		v->vectors[i].ctrl = MSIX_CTRL_MASKBIT; /* vectors start masked */
	}
	for (unsigned int i = 0; i < nr_queues; i++) {
		struct vpci_queue *q = &v->queues[i];

		q->max_size = max_queue_size;
		q->kick_fd = -1;
		q->ioeventfd_addr = PCI_BAR_UNMAPPED;
		q->vq.mem = v->host.mem;
		q->vq.kick_fd = q->vq.call_fd = -1;
		queue_defaults(q);
		q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (q->kick_fd < 0) {
			error_setg_errno(errp, errno, "%s: eventfd for queue %u", name, i);
			goto err;
		}
	}
	for (unsigned int i = 0; i < v->nr_vectors; i++) {
		v->vectors[i].efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (v->vectors[i].efd < 0) {
			error_setg_errno(errp, errno, "%s: eventfd for MSI-X vector %u", name, i);
			goto err;
		}
	}

	pci_device_init(&v->pci, name, VIRTIO_PCI_VENDOR,
			(uint16_t)(VIRTIO_PCI_DEVICE_BASE + virtio_id), class_code, 1,
			&vpci_pci_ops, v);
	v->pci.cfg[PCI_SUBSYSTEM_VENDOR_ID] = VIRTIO_PCI_VENDOR & 0xff;
	v->pci.cfg[PCI_SUBSYSTEM_VENDOR_ID + 1] = VIRTIO_PCI_VENDOR >> 8;
	v->pci.cfg[PCI_SUBSYSTEM_ID] = 0x00;
	v->pci.cfg[PCI_SUBSYSTEM_ID + 1] = 0x11; /* 0x1100, as QEMU */
	table_len = (uint64_t)v->nr_vectors * MSIX_ENTRY_SIZE;
	pba_off = ALIGN_UP(table_len, 8);
	if (pci_device_add_bar(&v->pci, 0, VPCI_BAR0_SIZE, PCI_BAR_F_MEM64 | PCI_BAR_F_PREFETCH,
			       &bar0_ops, v, errp) < 0 ||
	    pci_device_add_bar(&v->pci, VPCI_MSIX_BAR,
			       pow2_at_least(pba_off + DIV_ROUND_UP(v->nr_vectors, 64) * 8), 0,
			       &msix_ops, v, errp) < 0)
		goto err;
	if (add_virtio_cap(v, VIRTIO_PCI_CAP_COMMON_CFG, VPCI_COMMON_OFF, VIRTIO_PCI_COMMON_SIZE,
			   false, errp) ||
	    add_virtio_cap(v, VIRTIO_PCI_CAP_NOTIFY_CFG, VPCI_NOTIFY_OFF,
			   VPCI_NOTIFY_MULT * nr_queues, true, errp) ||
	    add_virtio_cap(v, VIRTIO_PCI_CAP_ISR_CFG, VPCI_ISR_OFF, 1, false, errp) ||
	    (config_len && add_virtio_cap(v, VIRTIO_PCI_CAP_DEVICE_CFG, VPCI_DEVICE_OFF,
					  config_len, false, errp)))
		goto err;
	v->msix_cap = pci_add_msix_capability(&v->pci, v->nr_vectors, VPCI_MSIX_BAR, 0,
					      VPCI_MSIX_BAR, (uint32_t)pba_off, errp);
	if (v->msix_cap < 0 || add_pcicfg_cap(v, errp) < 0)
		goto err;
	return 0;
err:
	vpci_destroy(v);
	return -1;
}

void vpci_destroy(struct vpci_dev *v)
{
	struct error *err = NULL;

	if (!v->queues && !v->vectors)
		return;
	pthread_mutex_lock(&v->lock);
	device_reset(v);
	for (unsigned int i = 0; i < v->nr_vectors && v->vectors; i++) {
		struct vpci_vector *x = &v->vectors[i];

		if (x->irqfd && kvm_wired(v) && vector_irqfd(v, x, false, &err) < 0)
			vpci_log(v, err);
		x->irqfd = false;
		if (x->efd >= 0)
			close(x->efd);
	}
	for (unsigned int i = 0; i < v->nr_queues && v->queues; i++)
		if (v->queues[i].kick_fd >= 0)
			close(v->queues[i].kick_fd);
	pthread_mutex_unlock(&v->lock);
	free(v->queues);
	free(v->vectors);
	v->queues = NULL;
	v->vectors = NULL;
	pthread_mutex_destroy(&v->lock);
}

void vpci_set_needs_reset(struct vpci_dev *v)
{
	/* atomics and one eventfd write only: callable from an iothread while a vCPU holds lock */
	set_needs_reset_locked(v);
}

void vpci_config_changed(struct vpci_dev *v)
{
	int efd;

	pthread_mutex_lock(&v->lock);
	v->config_generation++;
	pthread_mutex_unlock(&v->lock);
	atomic_fetch_or(&v->isr, 2);
	efd = atomic_load(&v->config_efd);
	if (efd >= 0)
		eventfd_write(efd, 1);
}
