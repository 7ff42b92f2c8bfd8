#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds (or finds in the cache) the emulated host's Python: a cpio archive that run.sh appends to
# the L1 base when --vm-program runs Python test programs there (the QMP tests). Debian's own
# /usr/bin/python3 (package python3-minimal; never a pyenv or venv one: its library is elsewhere)
# with its libraries, and only the part of /usr/lib/python3.X that SCRIPTs load, found by
# py-stdlib.py: ~1 MB instead of ~50, byte-compiled. The archive is ~12 MB, most of it the
# interpreter and libc.
#
# usage: build-python.sh [--cache-dir DIR] SCRIPT...
# Prints the archive's path on stdout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cache=
while (($#)); do
	case $1 in
	--cache-dir) cache=$2; shift 2 ;;
	-h | --help) sed -n '3,11p' "$0"; exit 0 ;;
	*) break ;;
	esac
done
(($#)) || e2e_die "build-python.sh: no SCRIPT given"
[[ -n $cache ]] || cache=$(e2e_cache_dir)
mkdir -p "$cache"
e2e_need_cmd cpio ldd readelf sha256sum
py=$(readlink -f /usr/bin/python3 2>/dev/null) || true
[[ -x $py ]] || e2e_die "no /usr/bin/python3 (package python3-minimal)"

files=$("$py" "$E2E_DIR/py-stdlib.py" "$@") ||
	e2e_die "build-python.sh: $py cannot import what $* import" \
		"(packages python3-minimal, libpython3.11-stdlib)"
libs=$({
	e2e_lib_closure "$py"
	for f in $files; do
		if [[ $f == *.so ]]; then e2e_lib_closure "$f"; fi
	done
} | sort -u)

# shellcheck disable=SC2086
key=$(e2e_archive_key "python v1" "$0" "$E2E_DIR/py-stdlib.py" -- "$py" $libs $files)
out=$cache/l1python-$key.cpio
e2e_archive_begin "$out" "the emulated host's Python"
lib=$(dirname "$(grep -m1 '/os\.py$' <<<"$files")")
# the interpreter finds its library by os.py and lib-dynload (a platform-library warning otherwise)
mkdir -p "$stage/usr/bin" "$stage/$lib/lib-dynload" "$stage/etc"
cp -L "$py" "$stage/$py"
ln -s "$(basename "$py")" "$stage/usr/bin/python3"
for f in $files $libs; do
	mkdir -p "$stage/$(dirname "$f")"
	cp -L "$f" "$stage/$f"
done
# Byte-compiled here: L1's emulated CPU takes ~2.5 s to compile them. Unchecked hashes, for the
# archive need not keep the sources' times; tracebacks name the files where L1 has them.
"$py" -I -c 'import compileall, py_compile, sys
sys.exit(not compileall.compile_dir(sys.argv[1], ddir=sys.argv[2], quiet=1,
	invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH))' "$stage/$lib" "$lib" ||
	e2e_die "build-python.sh: byte-compiling the library failed"
# the run archive's /etc/e2e-libpath is vireo's: Python's directories go in a file of their own
for l in $libs; do dirname "$l"; done | sort -u | paste -sd: - >"$stage/etc/e2e-libpath-python"
e2e_archive_end "$out" "$cache/l1python-*.cpio"
e2e_log "the emulated host's Python: $(du -h "$out" | cut -f1), $(wc -w <<<"$files") library files"
printf '%s\n' "$out"
