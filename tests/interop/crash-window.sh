# SPDX-License-Identifier: Apache-2.0
# crash-window.sh: when the crash tests kill their writer; sourced by qcow2-crash.sh,
# vhdx-crash.sh and vpc-vdi-crash.sh.
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
