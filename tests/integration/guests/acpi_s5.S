/* Enters ACPI S5 by writing SLP_TYP=5 | SLP_EN to PM1a_CNT (port 0x604): vireo exits 0. */
#include "pvh_note.h"
pvh_start:
	movw $0x604, %dx
	movw $((5 << 10) | (1 << 13)), %ax
	outw %ax, %dx
1:	hlt
	jmp 1b
