#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# vm_test.sh VIREO GUEST EXPECTED_STATUS|nonzero EXPECTED_TEXT
# Runs GUEST under vireo and checks the exit status and that EXPECTED_TEXT appears in its output
# ("-" or empty: no text; "A || B": either). POSIX sh: the emulated host runs it with busybox.
set -u
vireo=$1 guest=$2 want=$3 text=$4
if [ ! -c /dev/kvm ] || ! [ -r /dev/kvm ]; then
	echo "SKIP: /dev/kvm is not available"; exit 77
fi
out=$(timeout 30 "$vireo" run --kernel "$guest" --memory 64M 2>&1)
status=$?
printf '%s\n' "$out"
if [ "$want" = nonzero ]; then
	[ "$status" -ne 0 ] && [ "$status" -ne 124 ] || { echo "FAIL: status $status, wanted non-zero"; exit 1; }
else
	[ "$status" -eq "$want" ] || { echo "FAIL: status $status, wanted $want"; exit 1; }
fi
if [ -n "$text" ] && [ "$text" != - ]; then
	pats=$(printf '%s\n' "$text" | sed 's/ || /\n/g')
	printf '%s\n' "$out" | grep -qF -e "$pats" || { echo "FAIL: output lacks '$text'"; exit 1; }
fi
echo "ok: status $status"
