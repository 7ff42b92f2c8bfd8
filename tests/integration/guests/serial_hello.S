/* Prints "hello from pvh\n" on COM1 by polling LSR.THRE, then exits through the debug port (0 -> 1). */
#include "pvh_note.h"
pvh_start:
	movl $msg, %esi
next:	movb (%esi), %bl
	testb %bl, %bl
	jz done
wait:	movw $0x3fd, %dx
	inb %dx, %al
	testb $0x20, %al
	jz wait
	movw $0x3f8, %dx
	movb %bl, %al
	outb %al, %dx
	incl %esi
	jmp next
done:	movw $0xf4, %dx
	xorl %eax, %eax
	outl %eax, %dx
1:	hlt
	jmp 1b
msg:	.asciz "hello from pvh\n"
