/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio 1.2 core and PCI transport constants (sections 2.1, 6, 4.1) shared by the device side
 * (devices/) and the test guest's driver. Definitions only: the freestanding guest includes this.
 */
#ifndef VIREO_COMMON_SPEC_VIRTIO_H
#define VIREO_COMMON_SPEC_VIRTIO_H

/* device_status bits */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED 128

/* reserved (transport and ring) feature bits */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

/* virtio-pci */
#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040 /* + virtio device id (modern) */
#define VIRTIO_MSI_NO_VECTOR 0xffff

#endif
