#!/usr/bin/env bash
# The whole test suite: a normal build with every suite, then a sanitizer build
# (-Db_sanitize=address,undefined) running the unit, integration, fuzz and guest suites and
# e2e-guest again, then a ThreadSanitizer build over the cross-thread code.
# Suites that need /dev/kvm or the emulated host skip (exit 77) with a reason when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${VIREO_TEST_JOBS:-2}

run_build() { # dir, meson-options..., -- suites...
	local dir=$1; shift
	local opts=()
	while [ "$1" != "--" ]; do opts+=("$1"); shift; done
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "${opts[@]}"
	fi
	ninja -C "$dir"
	local suites=()
	for s in "$@"; do suites+=(--suite "$s"); done
	meson test -C "$dir" --print-errorlogs --num-processes "$jobs" "${suites[@]}"
}

run_build build -- unit integration fuzz guest interop e2e
run_build build-asan -Db_sanitize=address,undefined -Db_lundef=false -- unit integration fuzz guest
# the guest suite's vireo runs with the sanitized vireo inside the emulated host too: where the
# machine has no /dev/kvm, that is where hostile descriptors meet ASan and UBSan
meson test -C build-asan --no-rebuild --print-errorlogs e2e-guest

# ThreadSanitizer over the lock-free and cross-thread code: the qcow2 cluster cache stress test,
# the iothreads, the async engine, the node graph's registry, the copy primitive's workers, the
# job thread against the control plane, dirty bitmaps marked from many threads, the virtio-blk
# device's drained sections (reset, resize, node swap) against its iothreads, and virtio-scsi's
# task management across its iothreads (aborts waiting for requests in flight, hot-plugged LUNs,
# resize), VHD and VDI blocks allocated from two iothreads at once.
# setarch -R: TSan needs the address space ASLR would scatter.
if [ ! -f build-tsan/build.ninja ]; then
	meson setup build-tsan -Db_sanitize=thread -Db_lundef=false -Dguest=disabled
fi
tsan_tests=(qcow2_cache qcow2_io qcow2_engine qcow2_lazy luks_engine iothread blockdev_engine blockdev_graph
	blockdev_copy block_jobs blockdev_bitmap virtio_blk_dev virtio_scsi_dev vmdk_engine vpc_vdi_engine)
ninja -C build-tsan "${tsan_tests[@]/#/tests/unit/test_}"
meson test -C build-tsan --no-rebuild --print-errorlogs --wrapper 'setarch -R' "${tsan_tests[@]}"
