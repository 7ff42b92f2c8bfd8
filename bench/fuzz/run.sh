#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/fuzz/run.sh SECONDS [BUILD_DIR]
# Runs every libFuzzer target (tests/fuzz/fuzz_*.c, built as fuzz_<what>-libfuzzer) for SECONDS
# each, one after the other, from a scratch copy of its seed corpus (tests/fuzz/corpus/<what>/),
# and prints one row per target:
#   target  executions  exec/s  cov  ft  crashes
# then the path of every artifact (crash-*, leak-*, timeout-*, oom-*) a run left; those are the
# reproducers (tests/fuzz/README.md says how to minimize one and keep it as a regression input).
#
# BUILD_DIR (default build-fuzz at the top of the tree) is configured when it does not exist:
#   CC=clang meson setup BUILD_DIR -Db_sanitize=none -Dfuzzer=true
# and every fuzz_*-libfuzzer target it defines is built first.
# Exit status: 0 when no target crashed, 1 when one did (or the build failed), 77 (skip) only
# when clang or its libFuzzer runtime is missing (Debian: clang, libclang-rt-14-dev).
# Environment:
#   FUZZ_TARGETS   names to run, e.g. "qcow2_open probe" (default: every target the build has)
#   FUZZ_SCRATCH   scratch directory for corpora, artifacts and logs (default: a new mktemp -d,
#                  removed at the end unless a target crashed)
#   FUZZ_CC        the compiler for a new BUILD_DIR (default clang)
#   FUZZ_TIMEOUT   -timeout per input in seconds (10); FUZZ_RSS_MB: -rss_limit_mb (2048)
# One libFuzzer process at a time: the total time is about SECONDS x targets, plus the build.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-}
build=${2:-$root/build-fuzz}
case $build in /*) ;; *) build=$PWD/$build ;; esac
cc=${FUZZ_CC:-clang}
if ! [[ $secs =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
	echo "usage: $0 SECONDS [BUILD_DIR]" >&2
	exit 2
fi

skip() {
	echo "SKIP: $*" >&2
	exit 77
}

# --- is libFuzzer there? (the only reason to skip: no clang, or no libFuzzer runtime)
command -v "$cc" >/dev/null || skip "no $cc: libFuzzer runs need clang (Debian: clang)"
rtdir=$("$cc" -print-runtime-dir 2>/dev/null)
arch=$(uname -m)
if [ ! -f "$rtdir/libclang_rt.fuzzer-$arch.a" ] && [ ! -f "$rtdir/libclang_rt.fuzzer.a" ]; then
	skip "$cc has no libFuzzer runtime (no libclang_rt.fuzzer in ${rtdir:-its runtime dir};" \
		"Debian: libclang-rt-14-dev)"
fi
# the runtime is there: from here on, a failure to link a fuzzer is a failure, not a skip
probe_dir=$(mktemp -d)
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
	'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
	>"$probe_dir/t.c"
if ! "$cc" -fsanitize=fuzzer,address,undefined -o "$probe_dir/t" "$probe_dir/t.c" \
	>"$probe_dir/log" 2>&1; then
	sed 's/^/  /' "$probe_dir/log" >&2
	rm -rf "$probe_dir"
	echo "FAIL: $cc has the libFuzzer runtime but cannot link -fsanitize=fuzzer,address,undefined" >&2
	exit 1
fi
rm -rf "$probe_dir"

# --- configure and build
if [ ! -f "$build/build.ninja" ]; then
	echo "== configuring $build (CC=$cc, -Dfuzzer=true)"
	CC=$cc meson setup "$build" "$root" -Db_sanitize=none -Dfuzzer=true -Dguest=disabled \
		>"${TMPDIR:-/tmp}/vireo-fuzz-setup.$$.log" 2>&1 || {
		cat "${TMPDIR:-/tmp}/vireo-fuzz-setup.$$.log" >&2
		rm -f "${TMPDIR:-/tmp}/vireo-fuzz-setup.$$.log"
		echo "FAIL: meson setup $build" >&2
		exit 1
	}
	rm -f "${TMPDIR:-/tmp}/vireo-fuzz-setup.$$.log"
elif ! grep -q '"name": "fuzzer", "value": true' "$build/meson-info/intro-buildoptions.json" \
	2>/dev/null; then
	echo "== $build: turning on -Dfuzzer=true"
	meson configure "$build" -Dfuzzer=true >/dev/null ||
		{ echo "FAIL: $build cannot take -Dfuzzer=true (configured with gcc? use CC=clang)" >&2
		  exit 1; }
fi
mapfile -t all < <(ninja -C "$build" -t targets all 2>/dev/null |
	sed -n 's|^\(tests/fuzz/fuzz_[A-Za-z0-9_]*-libfuzzer\):.*|\1|p' | sort -u)
if [ ${#all[@]} -eq 0 ]; then
	echo "FAIL: $build defines no fuzz_*-libfuzzer target" >&2
	exit 1
fi
echo "== building ${#all[@]} libFuzzer targets in $build"
ninja -C "$build" "${all[@]}" >/dev/null || { ninja -C "$build" "${all[@]}" >&2; exit 1; }

if [ -n "${FUZZ_TARGETS:-}" ]; then
	read -ra targets <<<"$FUZZ_TARGETS"
else
	targets=()
	for b in "${all[@]}"; do
		b=${b#tests/fuzz/fuzz_}
		targets+=("${b%-libfuzzer}")
	done
fi

# --- run
if [ -n "${FUZZ_SCRATCH:-}" ]; then
	scratch=$FUZZ_SCRATCH
	mkdir -p "$scratch"
else
	scratch=$(mktemp -d "${TMPDIR:-/tmp}/vireo-fuzz-run.XXXXXX")
fi
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
rows=() artifacts=() crashed=0
for t in "${targets[@]}"; do
	bin=$build/tests/fuzz/fuzz_$t-libfuzzer
	dir=$scratch/$t
	if [ ! -x "$bin" ]; then
		echo "FAIL: no $bin" >&2
		exit 1
	fi
	rm -rf "$dir"
	mkdir -p "$dir/corpus" "$dir/artifacts"
	cp -r "$root/tests/fuzz/corpus/$t/." "$dir/corpus/" 2>/dev/null
	extra=()
	case $t in # README: qmp reaches the 64 KiB message limit, image targets grow images
	qmp | qcow2_open | probe) extra=(-max_len=70000) ;;
	esac
	echo "== $t: ${secs}s"
	# from the target's directory: a run leaves its temp files and logs there
	(cd "$dir" && "$bin" -max_total_time="$secs" -timeout="${FUZZ_TIMEOUT:-10}" \
		-rss_limit_mb="${FUZZ_RSS_MB:-2048}" -print_final_stats=1 "${extra[@]}" \
		-artifact_prefix="$dir/artifacts/" "$dir/corpus" >"$dir/log" 2>&1)
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
	if [ -z "$execs" ]; then # no final stats (killed): the last progress line's count
		execs=$(grep -o '^#[0-9]*' "$dir/log" | tail -1 | tr -d '#')
	fi
	cov=$(grep -o 'cov: [0-9]*' "$dir/log" | tail -1 | cut -d' ' -f2)
	ft=$(grep -o 'ft: [0-9]*' "$dir/log" | tail -1 | cut -d' ' -f2)
	found=()
	for a in "$dir"/artifacts/{crash,leak,timeout,oom}-*; do
		[ -e "$a" ] && found+=("$a")
	done
	if [ $rc -ne 0 ] && [ ${#found[@]} -eq 0 ]; then
		found+=("$dir/log (exit $rc, no artifact)")
	fi
	if [ ${#found[@]} -gt 0 ]; then
		crashed=1
		artifacts+=("${found[@]/#/$t: }")
		grep -m1 -E 'ERROR: |runtime error|fuzz invariant broken' "$dir/log" |
			sed "s|^|   $t: |" || true
	fi
	rows+=("$(printf '%-16s %12s %9s %6s %7s %7s' "$t" "${execs:-?}" "${rate:-?}" \
		"${cov:-?}" "${ft:-?}" "${#found[@]}")")
done

echo
printf '%-16s %12s %9s %6s %7s %7s\n' target executions exec/s cov ft crashes
printf '%s\n' "${rows[@]}"
if [ $crashed -ne 0 ]; then
	echo
	echo "artifacts (replay: build/tests/fuzz/fuzz_<target> FILE; logs in $scratch/<target>/log):"
	printf '  %s\n' "${artifacts[@]}"
	exit 1
fi
[ -n "${FUZZ_SCRATCH:-}" ] || rm -rf "$scratch"
exit 0
