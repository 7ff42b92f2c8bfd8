# SPDX-License-Identifier: Apache-2.0
# guest-lib.sh: what the *-guest.sh scripts share (the test guest on an image of each format),
# sourced first with the script's arguments: VIREO VIREO_IMG GUEST_ELF KIND.
#   sets VIREO, VI, ELF, KIND, GUEST (tests/guest); exit 77 without /dev/kvm, qemu-img or
#   qemu-io; makes and enters $T (/tmp/vireo-NAME.XXXXXX, removed at exit)
#   fail MSG...        the script fails with MSG
#   run CMD...         CMD echoed and run; fail when it fails
#   read_same FMT IMG  vireo-img and qemu-img convert IMG to raw with the same bytes, and
#                      qemu-io reads what ${tail[@]} (its -c commands) expects of IMG
guest_lib_name=$(basename "$0" .sh)
VIREO=$(realpath "$1")
VI=$(realpath "$2")
ELF=$(realpath "$3")
KIND=$4
GUEST=$(dirname "$(realpath "$0")")/../guest

[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm is not available"; exit 77; }
for t in qemu-img qemu-io; do
	command -v $t >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
T=$(mktemp -d "/tmp/vireo-$guest_lib_name.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
run() { echo "+ $*"; "$@" || fail "'$*' failed"; }

read_same() {
	run "$VI" convert -f "$1" -O raw "$2" ours.raw
	run qemu-img convert -f "$1" -O raw "$2" theirs.raw
	cmp ours.raw theirs.raw || fail "vireo-img and qemu-img read different content"
	run qemu-io -r -f "$1" "${tail[@]}" "$2" >/dev/null
}
