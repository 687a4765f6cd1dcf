#!/usr/bin/env bash
# Build the Debian rootfs the e2e tests boot with systemd-nspawn: a minimal
# bookworm with systemd. Usage: test/e2e/mkrootfs.sh [DIR]
set -euo pipefail
dir=${1:-/var/tmp/ec2init-rootfs}
if [ -x "$dir/lib/systemd/systemd" ]; then
  echo "rootfs: $dir exists"
  exit 0
fi
tmp="$dir.partial"
rm -rf "$tmp"
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,ca-certificates \
  bookworm "$tmp" http://deb.debian.org/debian
# No getty on the container console: the test reads the boot log instead.
chroot "$tmp" systemctl mask console-getty.service getty@.service >/dev/null 2>&1 || true
mv "$tmp" "$dir"
echo "rootfs: $dir built"
