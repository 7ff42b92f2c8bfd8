# SPDX-License-Identifier: Apache-2.0
# nbd-lib.sh: what nbd-client.sh and nbd-tls.sh share, sourced once their tools are checked
# and $T is made: the servers' pids killed at exit ($PIDS, with $T removed), TAP-style checks
# (ok, not_ok, check, same, refused; the counts $pass and $fail) and a free TCP port.
PIDS=""
cleanup() {
	for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
	cd /
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$T" || exit 1
pass=0 fail=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
not_ok() {
	echo "not ok - $1"
	shift
	[ $# -gt 0 ] && printf '%s\n' "$@" | head -c 3000 | sed 's/^/# /'
	fail=$((fail + 1))
}
# check NAME CMD...: ok when CMD succeeds (its output shown on failure)
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name" "$out"; fi
}
# same NAME "CMD A" "CMD B": both succeed with the same output
same() {
	local a b
	a=$(eval "$2" 2>&1) || { not_ok "$1" "vireo: $a"; return; }
	b=$(eval "$3" 2>&1) || { not_ok "$1" "qemu: $b"; return; }
	if [ "$a" = "$b" ]; then ok "$1"; else not_ok "$1" "$(diff <(echo "$a") <(echo "$b"))"; fi
}
# refused NAME WANT CMD...: CMD fails (not by a signal) with WANT in its output
refused() {
	local name=$1 want=$2 out rc
	shift 2
	out=$("$@" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] && [ $rc -lt 128 ] && [[ "$out" == *"$want"* ]]; then
		ok "$name"
	else
		not_ok "$name" "status $rc, wanted a message with '$want':" "$out"
	fi
}
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
