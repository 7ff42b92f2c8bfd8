/* SPDX-License-Identifier: Apache-2.0 */
/* 8250/16550A UART at COM1 (0x3f8): output only. */
#ifndef GUEST_UART_H
#define GUEST_UART_H

#include "lib/sys.h"

void uart_init(void);
void uart_write(const char *buf, size_t len);

#endif
