#!/bin/sh
# cli_test.sh VIREO GUEST: bad command lines and bad kernels are refused with a message naming
# what is wrong, before any guest runs. POSIX sh: the emulated host runs it with busybox, where
# the checks that need /dev/kvm run on machines without one (tests/e2e, e2e-guest).
set -u
vireo=$1 guest=$2
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
expect() { # expect STATUS TEXT -- ARGS...
	want=$1 text=$2; shift 3
	out=$(timeout 30 "$vireo" "$@" 2>&1); status=$?
	if [ "$status" -ne "$want" ] || ! printf '%s\n' "$out" | grep -qF -- "$text"; then
		echo "FAIL: vireo $*: status $status (wanted $want), output: $out (wanted '$text')"
		fails=$((fails + 1))
	else
		echo "ok: vireo $* -> $status: $out" | head -1
	fi
}
expect 0 "Usage: vireo" -- --help
expect 0 "vireo 0." -- --version
expect 2 "--cpus" -- run --kernel "$guest" --cpus 0
expect 2 "--memory" -- run --kernel "$guest" --memory lots
expect 2 "--kernel" -- run
expect 2 "--kernel" -- run --kernel "$tmp/missing"
expect 2 "--serial" -- run --kernel "$guest" --serial pty
expect 2 "unknown option" -- run --kernel "$guest" --frobnicate
expect 2 "the VM has 1 vCPU" -- run --kernel "$guest" --affinity vcpu1=0
expect 2 "not a CPU list" -- run --kernel "$guest" --affinity io0=0-
if [ -c /dev/kvm ]; then
	head -c 4096 /dev/urandom >"$tmp/random.bin"
	expect 1 "not a bootable kernel" -- run --kernel "$tmp/random.bin"
	head -c 100 "$guest" >"$tmp/truncated.elf"
	expect 1 "truncated.elf" -- run --kernel "$tmp/truncated.elf"
	# --affinity: names are checked against the VM built, CPUs against the host
	truncate -s 1M "$tmp/d.raw"
	cpu=$(taskset -pc $$ | sed 's/.*: //; s/[-,].*//')
	expect 85 "" -- run --kernel "$guest" --serial none --drive "file=$tmp/d.raw" \
		--affinity "io0=$cpu" --affinity "vcpu0=$cpu"
	expect 1 "--affinity io1=0: no drive has iothread io1" -- run --kernel "$guest" \
		--drive "file=$tmp/d.raw" --affinity io1=0
	expect 1 "none of these CPUs is online" -- run --kernel "$guest" --serial none \
		--drive "file=$tmp/d.raw" --affinity io0=1023
	# --object / --blockdev / --device: refused by name before the guest runs
	expect 1 "--blockdev: node-name is missing" -- run --kernel "$guest" \
		--blockdev "driver=file,filename=$tmp/d.raw"
	expect 1 "--device: drive=d0: no node of that name" -- run --kernel "$guest" \
		--device virtio-blk-pci,drive=d0
	expect 1 "--device: no iothread 'x'" -- run --kernel "$guest" \
		--blockdev "driver=file,node-name=d0,filename=$tmp/d.raw" \
		--device virtio-blk-pci,drive=d0,iothread=x
	expect 1 "virtio-blk1 needs write, which virtio-blk0, using it already, does not share" \
		-- run --kernel "$guest" --blockdev "driver=file,node-name=d0,filename=$tmp/d.raw" \
		--device virtio-blk-pci,drive=d0 --device virtio-blk-pci,drive=d0
	expect 1 "--object: type 'memory-backend-ram' is not supported" -- run --kernel "$guest" \
		--object memory-backend-ram,id=m0
	expect 85 "" -- run --kernel "$guest" --serial none --object iothread,id=fast \
		--blockdev "{\"driver\": \"raw\", \"node-name\": \"d0\", \"read-only\": true, \"file\": {\"driver\": \"file\", \"filename\": \"$tmp/d.raw\"}}" \
		--device virtio-blk-pci,drive=d0,iothread=fast
else
	echo "note: /dev/kvm missing, kernel-file checks skipped"
fi
[ "$fails" -eq 0 ] || exit 1
echo "all command-line checks passed"
