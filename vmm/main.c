/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>

int main(void)
{
	fprintf(stderr, "vireo: under construction\n");
	return 1;
}
