/* The Xen PVH entry note every tiny guest carries (XEN_ELFNOTE_PHYS32_ENTRY = 18). */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4
	.long 4
	.long 18
	.asciz "Xen"
	.long pvh_start
	.text
	.code32
	.globl pvh_start
