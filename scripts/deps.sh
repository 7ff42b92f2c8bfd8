#!/usr/bin/env bash
# Installs every Debian 12 package vireo builds, tests and benchmarks with. Run as root.
# QEMU 10 (the peer we measure against, and the emulated host's engine) comes from bookworm-backports.
# python3-minimal, libpython3.11-stdlib: Debian's own python3, which e2e-guest copies into the
# emulated host for the QMP tests (tests/e2e/build-python.sh).
# gnutls-bin: certtool and psktool, which the NBD TLS tests make certificates and keys with.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
src=/etc/apt/sources.list.d/vireo-backports.sources
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
	[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
	cat >"$src" <<EOT
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
fi
apt-get update -q
apt-get install -y -q --no-install-recommends \
	build-essential meson ninja-build pkg-config git \
	liburing-dev libseccomp-dev libcap-ng-dev zlib1g-dev libzstd-dev libjson-c-dev libssl-dev \
	libdeflate-dev \
	libcmocka-dev clang lld llvm libclang-rt-14-dev jq libgnutls28-dev gnutls-bin \
	acpica-tools cpio busybox-static fio libnbd-bin sg3-utils kmod strace \
	python3-minimal libpython3.11-stdlib \
	linux-image-cloud-amd64
apt-get install -y -q --no-install-recommends -t bookworm-backports \
	qemu-system-x86 qemu-utils qemu-system-common
