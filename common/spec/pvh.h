/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PVH boot's hvm_start_info (version 1) and its tables, little-endian, as Xen's public
 * arch-x86/hvm/start_info.h lays them out: vmm/boot_pvh.c writes them, the test guest reads them.
 * Definitions only.
 */
#ifndef VIREO_COMMON_SPEC_PVH_H
#define VIREO_COMMON_SPEC_PVH_H

#include <stdint.h>

#define HVM_START_MAGIC 0x336ec578

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;  /* version 1 */
	uint32_t memmap_entries;
	uint32_t reserved;
} __attribute__((packed));

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
} __attribute__((packed));

struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
} __attribute__((packed));

_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info is 56 bytes");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry is 32 bytes");
_Static_assert(sizeof(struct hvm_memmap_entry) == 24, "hvm_memmap_table_entry is 24 bytes");

#endif
