/* Halts forever with interrupts off: a VM that just sits there (for RSS measurements). */
#include "pvh_note.h"
pvh_start:
	cli
1:	hlt
	jmp 1b
