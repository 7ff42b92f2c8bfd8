/* Loads an empty IDT and raises #UD: no handler, no double-fault handler, so a triple fault. */
#include "pvh_note.h"
pvh_start:
	lidt idtr
	ud2
	.balign 8
idtr:	.word 0
	.long 0
