# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# Shared helpers of the emulated-host test bed (sourced by the other scripts, not run).
#
# Everything here builds from what Debian packages put on this machine: the cloud kernel and its
# modules, busybox-static, fio, qemu-system-x86. Archives are cached under e2e_cache_dir, each
# named after a hash of its inputs, so a rerun with unchanged inputs reuses them.

# shellcheck disable=SC2034 # used by the scripts that source this file
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_TCG_LOCK=${E2E_TCG_LOCK:-/tmp/vireo-tcg.lock}

e2e_log() { printf 'e2e: %s\n' "$*" >&2; }
e2e_die() { printf 'e2e: error: %s\n' "$*" >&2; exit 1; }
# Exit status 77 is meson's "skipped"; the reason is always printed.
e2e_skip() { printf 'e2e: SKIP: %s\n' "$*" >&2; exit 77; }

e2e_need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || e2e_die "'$c' is not installed (see the README's apt-get line)"
	done
}

# modinfo lives in /sbin, which an ordinary user's PATH may lack.
e2e_modinfo() {
	if command -v modinfo >/dev/null 2>&1; then
		modinfo "$@"
	else
		/sbin/modinfo "$@"
	fi
}

# The cache directory: $E2E_CACHE_DIR, else $XDG_CACHE_HOME/vireo-e2e, else the build directory's
# e2e-cache (when a build directory was given as $1), else ~/.cache/vireo-e2e.
e2e_cache_dir() {
	local d
	if [[ -n ${E2E_CACHE_DIR:-} ]]; then
		d=$E2E_CACHE_DIR
	elif [[ -n ${XDG_CACHE_HOME:-} ]]; then
		d=$XDG_CACHE_HOME/vireo-e2e
	elif [[ -n ${1:-} ]]; then
		d=$1/e2e-cache
	else
		d=$HOME/.cache/vireo-e2e
	fi
	mkdir -p "$d" || e2e_die "cannot create the cache directory $d"
	printf '%s\n' "$d"
}

# The Debian cloud kernel to use (both as L1 and as L2): $E2E_KVER, else the newest
# /boot/vmlinuz-*-cloud-amd64 that has its modules installed. Prints the version, or nothing.
e2e_kernel_version() {
	local v k
	if [[ -n ${E2E_KVER:-} ]]; then
		printf '%s\n' "$E2E_KVER"
		return
	fi
	v=
	for k in $(printf '%s\n' /boot/vmlinuz-*-cloud-amd64 | sort -V); do
		[[ -e $k ]] || continue
		k=${k#/boot/vmlinuz-}
		[[ -d /lib/modules/$k ]] && v=$k
	done
	[[ -n $v ]] && printf '%s\n' "$v"
	return 0
}

# For the archive builders: fills in $cache (created) and $kver when the caller gave none.
e2e_default_cache_and_kernel() {
	[[ -n $cache ]] || cache=$(e2e_cache_dir)
	mkdir -p "$cache"
	[[ -n $kver ]] || kver=$(e2e_kernel_version)
	[[ -n $kver ]] || e2e_die "no Debian cloud kernel found in /boot (package linux-image-cloud-amd64)"
}

# Why the bed cannot run here, printed as one line; nothing if it can.
e2e_missing_prereq() {
	local kver
	command -v qemu-system-x86_64 >/dev/null 2>&1 ||
		{ echo "qemu-system-x86_64 is not installed (package qemu-system-x86)"; return; }
	kver=$(e2e_kernel_version)
	[[ -n $kver ]] ||
		{ echo "no Debian cloud kernel in /boot (package linux-image-cloud-amd64)"; return; }
	[[ -e /boot/vmlinuz-$kver ]] ||
		{ echo "no /boot/vmlinuz-$kver (package linux-image-cloud-amd64)"; return; }
	[[ -r /boot/vmlinuz-$kver ]] ||
		{ echo "/boot/vmlinuz-$kver is not readable by $(id -un)"; return; }
	[[ -d /lib/modules/$kver ]] ||
		{ echo "no /lib/modules/$kver (package linux-image-cloud-amd64)"; return; }
	if [[ ! -x /bin/busybox ]] || ! file_is_static /bin/busybox; then
		echo "no static /bin/busybox (package busybox-static)"
		return
	fi
	command -v cpio >/dev/null 2>&1 || { echo "cpio is not installed (package cpio)"; return; }
	return 0
}

file_is_static() {
	# A static executable has no program interpreter.
	! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'program interpreter'
}

# Module files for the named modules and everything they depend on, dependencies first, one a line.
# Built-in modules are left out. Dies when a module is missing.
e2e_module_closure() {
	local kver=$1
	shift
	local -A seen=()
	local -a order=()
	_e2e_mod_visit() {
		local m=$1 f deps d
		m=${m//-/_}
		[[ -n ${seen[$m]:-} ]] && return 0
		seen[$m]=1
		f=$(e2e_modinfo -k "$kver" -F filename "$m" 2>/dev/null) ||
			e2e_die "kernel $kver has no module '$m'"
		[[ $f == "(builtin)" ]] && return 0
		deps=$(e2e_modinfo -k "$kver" -F depends "$m")
		for d in ${deps//,/ }; do
			_e2e_mod_visit "$d"
		done
		order+=("$f")
	}
	local m
	for m in "$@"; do
		_e2e_mod_visit "$m"
	done
	printf '%s\n' "${order[@]}"
}

# Copies module file $1 into directory $2 as a plain .ko (busybox insmod takes no compressed ones).
e2e_copy_module() {
	local f=$1 dst=$2 base
	base=$(basename "$f")
	case $f in
	*.ko) cp "$f" "$dst/$base" ;;
	*.ko.xz) xz -dc "$f" >"$dst/${base%.xz}" ;;
	*.ko.zst) zstd -qdc "$f" >"$dst/${base%.zst}" ;;
	*.ko.gz) gzip -dc "$f" >"$dst/${base%.gz}" ;;
	*) e2e_die "unknown module file type: $f" ;;
	esac
}

# Shared libraries a dynamic executable needs, with the program interpreter, one path a line.
e2e_lib_closure() {
	local out
	out=$(LC_ALL=C ldd "$1" 2>&1) || { file_is_static "$1" && return 0; e2e_die "ldd $1: $out"; }
	grep -q 'not found' <<<"$out" && e2e_die "ldd $1: missing libraries:"$'\n'"$out"
	awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
}

# Copies executables and their library closure into staging directory $1, each at its own path
# (dereferenced), and records the library directories in $1/etc/e2e-libpath for LD_LIBRARY_PATH
# (an initramfs has no ld.so.cache).
e2e_stage_programs() {
	local stage=$1 p l libs
	shift
	mkdir -p "$stage/etc"
	for p in "$@"; do
		[[ -x $p ]] || e2e_die "$p is not an executable"
		mkdir -p "$stage/$(dirname "$p")"
		cp -L "$p" "$stage/$p"
		libs=$(e2e_lib_closure "$p")
		for l in $libs; do
			mkdir -p "$stage/$(dirname "$l")"
			[[ -e $stage/$l ]] || cp -L "$l" "$stage/$l"
			dirname "$l" >>"$stage/etc/e2e-libpath.tmp"
		done
	done
	if [[ -e $stage/etc/e2e-libpath.tmp ]]; then
		sort -u "$stage/etc/e2e-libpath.tmp" | paste -sd: >"$stage/etc/e2e-libpath"
		rm -f "$stage/etc/e2e-libpath.tmp"
	fi
}

# Writes an uncompressed newc cpio of directory $1 to file $2 (files owned by root).
e2e_make_cpio() {
	local stage=$1 out=$2
	(cd "$stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc -R 0:0 --reproducible --quiet) >"$out.$$.tmp"
	mv "$out.$$.tmp" "$out"
}

# A line describing a file for cache keys: its name, size and modification time (cheap for the
# large system files; a package upgrade changes them).
e2e_stat_key() {
	stat -L -c '%n %s %Y' "$@"
}

# The cached archives. A builder hashes what goes into its archive (e2e_archive_key), names the
# archive after the hash, and calls e2e_archive_begin: when the cache already holds it, that
# prints its path and exits the builder; otherwise it sets $stage to a fresh directory removed on
# exit. The builder fills $stage and calls e2e_archive_end, which writes the archive, keeps only
# the newest two of its kind and prints its path.

# usage: e2e_archive_key LINE SCRIPT... -- FILE...: a 16-digit hash of LINE, lib.sh, the contents
# of the SCRIPTs and the e2e_stat_key of the FILEs.
e2e_archive_key() {
	local line=$1
	local -a scripts=()
	shift
	while (($#)) && [[ $1 != -- ]]; do
		scripts+=("$1")
		shift
	done
	(($#)) && shift
	{
		echo "$line"
		cat "$E2E_DIR/lib.sh" "${scripts[@]}"
		(($#)) && e2e_stat_key "$@"
	} | sha256sum | cut -c1-16
}

# usage: e2e_archive_begin OUT WHAT
e2e_archive_begin() {
	local out=$1 what=$2
	if [[ -s $out ]]; then
		printf '%s\n' "$out"
		exit 0
	fi
	e2e_log "building $what ($out)"
	stage=$(mktemp -d "$(dirname "$out")/stage.XXXXXX")
	# shellcheck disable=SC2064 # $stage is meant to expand now
	trap "rm -rf '$stage'" EXIT
}

# usage: e2e_archive_end OUT PRUNE_GLOB
e2e_archive_end() {
	e2e_make_cpio "$stage" "$1"
	e2e_prune "$2" 2
}

# Copies the module files $2... into $1/lib/e2e-modules, with the load order in its file "order".
e2e_stage_modules() {
	local stage=$1 m b
	shift
	mkdir -p "$stage/lib/e2e-modules"
	for m in "$@"; do
		e2e_copy_module "$m" "$stage/lib/e2e-modules"
		b=$(basename "$m")
		echo "${b%%.ko*}.ko" >>"$stage/lib/e2e-modules/order"
	done
}

# Removes all but the $2 newest files matching glob $1 (the cache would otherwise grow per build).
e2e_prune() {
	local glob=$1 keep=$2
	# shellcheck disable=SC2086
	ls -t $glob 2>/dev/null | tail -n +"$((keep + 1))" | while read -r f; do rm -f "$f"; done
}
