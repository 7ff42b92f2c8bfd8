# SPDX-License-Identifier: Apache-2.0
# tap.sh: what the interop scripts share, sourced before they start (TAP-style lines).
#   tap_start NAME TOOL...  exit 77 naming a missing tool; make and enter a temporary directory
#                           $T (/tmp/vireo-NAME.XXXXXX, removed at exit); zero the counts
#   ok NAME / bad NAME      one passed / failed check
#   run NAME COMMAND...     a check that COMMAND succeeds (its output shown when it does not)
#   tap_end                 the summary line; fails when a check did
#   both ARGS...            vireo-img ARGS and qemu-img ARGS: their status in vrc/qrc, output
#                           in v.out/q.out, v.err/q.err; a vireo-img killed by a signal fails
#   same_rc NAME            both exited alike (their messages shown when not)
#   same_text NAME          both printed the same
tap_start() {
	local name=$1 t
	shift
	for t in "$@"; do
		command -v "$t" >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
	done
	T=$(mktemp -d "/tmp/vireo-$name.XXXXXX")
	trap 'rm -rf "$T"' EXIT
	cd "$T" || exit 2
	failures=0
	tests=0
}

ok() { tests=$((tests + 1)); echo "ok $tests - $1"; }
bad() { tests=$((tests + 1)); failures=$((failures + 1)); echo "not ok $tests - $1"; }
run() { # name command...: succeeds
	if "${@:2}" >run.out 2>&1; then ok "$1"; else bad "$1"; sed 's/^/#   /' run.out; fi
}

both() {
	"$VI" "$@" >v.out 2>v.err; vrc=$?
	qemu-img "$@" >q.out 2>q.err; qrc=$?
	[ $vrc -lt 128 ] || { bad "$* (vireo-img killed by a signal: $vrc)"; return 1; }
}
same_rc() {
	if [ $vrc = $qrc ]; then ok "$1: exit status $vrc"; return 0; fi
	bad "$1: exit status $vrc, qemu-img's $qrc"
	sed 's/^/#   vireo-img: /' v.err; sed 's/^/#   qemu-img: /' q.err
	return 1
}
same_text() {
	if cmp -s v.out q.out; then ok "$1: same output"; return; fi
	bad "$1: same output"; diff q.out v.out | sed 's/^/#   /' | head -20
}

tap_end() {
	echo "$((tests - failures)) passed, $failures failed"
	[ $failures = 0 ]
}
