# SPDX-License-Identifier: Apache-2.0
# crash-lib.sh: what the crash tests share; sourced by qcow2-crash.sh, vhdx-crash.sh and
# vpc-vdi-crash.sh. When they kill their writer (crash_kill_after, below); qcow2-crash.sh's and
# vhdx-crash.sh's guest writer, the reaping of a writer, the check of what it left, and keeping
# a failing round's files (crash_vm_writer, crash_reap, crash_compare, crash_keep).
#
# A fixed window (kill after 2-150 ms) lets a fast machine's writer finish before most kills:
# CI's did, 1 kill in 12 rounds. Here the window starts at the caller's figure and shrinks, per
# key (a configuration and cache mode), to 3/4 of the quickest run that ended unkilled, so kills
# land while the writer still writes on any machine. Bash 5's EPOCHREALTIME times it, no fork.
declare -A crash_window_ms

crash_now_us() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }

# crash_run_for KEY MS: lets the writer ($pid, just started) run up to MS ms; if it ends first,
# KEY's window shrinks to 3/4 of its run (at least 5 ms)
crash_run_for() {
	local key=$1 t0 now end ms
	t0=$(crash_now_us)
	end=$((t0 + $2 * 1000))
	while kill -0 "$pid" 2>/dev/null; do
		now=$(crash_now_us)
		[ "$now" -ge "$end" ] && return 0
		sleep 0.004
	done
	ms=$(( ($(crash_now_us) - t0) * 3 / 4000 ))
	[ $ms -lt 5 ] && ms=5
	[ $ms -lt "${crash_window_ms[$key]:-999999}" ] && crash_window_ms[$key]=$ms
	return 0
}

# crash_kill_after KEY DEFAULT_MS: one round in 8 lets the writer finish (up to 5 s); the others
# kill it after a random 2 ms..window (DEFAULT_MS until a run of KEY ended by itself)
crash_kill_after() {
	local w=${crash_window_ms[$1]:-$2}
	if [ $((RANDOM % 8)) -eq 0 ]; then
		crash_run_for "$1" 5000
	else
		crash_run_for "$1" $(( (RANDOM * 32768 + RANDOM) % (w > 3 ? w - 1 : 2) + 2 ))
	fi
}

# crash_linger N: waits up to N times 50 ms for the writer ($pid) to end by itself
crash_linger() {
	local i
	for i in $(seq 1 "$1"); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.05
	done
}

# crash_vm_writer FORMAT IMG LOG: the test guest's blk-crashwriter under $VIREO (guest $ELF,
# $VM_OPS operations, seed $round, cache $cache) on IMG, console to LOG; $pid is vireo, left
# running after a random 50 ms..1.5 x VM_OPS ms, or, 1 round in 8, once it finished (the guest
# makes ~700 operations a second after ~50 ms of boot). Not under timeout(1): the caller's kill
# must reach vireo itself.
crash_vm_writer() {
	"$VIREO" run --kernel "$ELF" --cpus 1 --memory 256M --serial "file:$3" \
		--cmdline "blk-crashwriter crash-seed=$round crash-ops=$VM_OPS blk-require=1" \
		--drive "file=$2,format=$1,if=virtio-blk,num-queues=2,iothreads=2,cache=$cache" \
		</dev/null >/dev/null 2>writer.err &
	pid=$!
	local ms=$(( (RANDOM * 32768 + RANDOM) % (VM_OPS * 3 / 2) + 50 ))
	if [ $((RANDOM % 8)) -eq 0 ]; then
		crash_linger $((VM_OPS / 10 + 100))
	else
		sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
	fi
}

# crash_reap: kills the writer ($pid) and counts how it ended in killed[$key] (137: killed
# mid-run, as meant) or finished[$key] (img_io's 0, the guest's pass 33); any other exit is a
# failure of round $round
crash_reap() {
	local rc
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rc=$?
	if [ $rc -eq 137 ]; then
		killed[$key]=$(( ${killed[$key]:-0} + 1 ))
	elif [ $rc -eq 0 ] || { [ "$path" = vm ] && [ $rc -eq 33 ]; }; then
		finished[$key]=$(( ${finished[$key]:-0} + 1 ))
	else
		echo "not ok - round $round ($key): the writer exited with $rc"
		tail -5 writer.err log 2>/dev/null
		failures=$((failures + 1))
	fi
}

# crash_compare WHAT: crash_check of the content before ($raw), the writer's log and after.raw;
# on a failure says so (WHAT: after what), adds to lost[$key] and stray[$key] and returns its
# exit status. crash_line is the checker's summary line (flushed=, unflushed=, ...).
crash_compare() {
	local rc v
	"$CHECK" "$raw" log after.raw >check.out 2>&1
	rc=$?
	crash_line=$(grep '^crash_check:' check.out)
	[ $rc -eq 0 ] && return 0
	echo "not ok - round $round ($key): crash_check exit $rc$1"
	head -12 check.out
	v=$(sed -n 's/.* lost_writes=\([0-9]*\).*/\1/p' <<<"$crash_line")
	lost[$key]=$(( ${lost[$key]:-0} + ${v:-0} ))
	v=$(sed -n 's/.* stray_bytes=\([0-9]*\).*/\1/p' <<<"$crash_line")
	stray[$key]=$(( ${stray[$key]:-0} + ${v:-0} ))
	failures=$((failures + 1))
	return $rc
}

# crash_keep PREFIX WHY: keeps round $round's image ($img), its content before ($raw, also as
# before.raw), the log, the check's output and after.raw in /tmp/PREFIX-$round
crash_keep() {
	local d=/tmp/$1-$round
	mkdir -p "$d"
	cp "$img" "$raw" log check.out "$d/" 2>/dev/null
	cp "$raw" "$d/before.raw" 2>/dev/null
	cp after.raw "$d/after.raw" 2>/dev/null
	echo "# kept in $d: $2"
}
