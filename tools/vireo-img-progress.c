/* SPDX-License-Identifier: Apache-2.0 */
/* vireo-img -p: qemu-img's progress line, "    (12.00/100%)\r", redrawn at each whole percent. */
#include "tools/vireo-img.h"

#include <stdio.h>

#include "common/util.h"

void img_progress_start(struct img_progress *p, bool on, uint64_t total)
{
	*p = (struct img_progress){ .on = on, .total = total, .last = -1 };
	img_progress_update(p, 0);
}

void img_progress_update(struct img_progress *p, uint64_t done)
{
	int pct = p->total ? (int)(MIN(done, p->total) * 100 / p->total) : 100;

	if (!p->on || pct == p->last)
		return;
	p->last = pct;
	printf("    (%.2f/100%%)\r", (double)pct);
	fflush(stdout);
}

void img_progress_end(struct img_progress *p, bool ok)
{
	if (!p->on)
		return;
	printf(ok ? "    (100.00/100%%)\n" : "\n"); /* as qemu-img: 100 % only for a success */
	fflush(stdout);
}
