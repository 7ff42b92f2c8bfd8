/* SPDX-License-Identifier: Apache-2.0 */
/* The version every program prints (--version) and QMP's query-version answers. */
#ifndef VIREO_COMMON_VERSION_H
#define VIREO_COMMON_VERSION_H

#define VIREO_VERSION_MAJOR 0
#define VIREO_VERSION_MINOR 1
#define VIREO_VERSION_MICRO 0
#define VIREO_VERSION "0.1.0"

#endif
