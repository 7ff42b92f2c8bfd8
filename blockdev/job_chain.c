/* SPDX-License-Identifier: Apache-2.0 */
/* What block-stream and block-commit share (job_chain.h). */
#include "blockdev/job_chain.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "blockdev/blockdev.h"

char *job_chain_backing_name(const struct blockdev *base, const char *given)
{
	char *abs;

	if (!base)
		return NULL;
	if (given)
		return strdup(given);
	/* a node's file name may be relative to the current directory, which an image's header
	 * must not be (it is read relative to the image's own directory) */
	abs = realpath(base->filename, NULL);
	return abs ? abs : strdup(base->filename);
}

bool job_chain_below(const struct blockdev *top, const struct blockdev *b)
{
	for (const struct blockdev *cur = top->backing; cur; cur = cur->backing)
		if (cur == b)
			return true;
	return false;
}
