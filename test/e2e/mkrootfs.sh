#!/usr/bin/env bash
# Build the Debian rootfs the e2e tests boot with systemd-nspawn: a minimal
# bookworm with systemd, and what the modules act on for real (sshd, sudo).
# Usage: test/e2e/mkrootfs.sh [DIR]. Rebuilt when the package list changes.
set -euo pipefail
dir=${1:-/var/tmp/ec2init-rootfs}
include=systemd,systemd-sysv,dbus,ca-certificates,openssh-server,sudo
stamp="$dir/.ec2init-rootfs"
if [ -x "$dir/lib/systemd/systemd" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$include" ]; then
  echo "rootfs: $dir is current"
  exit 0
fi
tmp="$dir.partial"
rm -rf "$tmp"
debootstrap --variant=minbase --include="$include" bookworm "$tmp" http://deb.debian.org/debian
# No getty on the container console: the tests read the boot log instead.
chroot "$tmp" systemctl mask console-getty.service getty@.service >/dev/null 2>&1 || true
# Host keys are the instance's business: ec2init makes them on first boot.
rm -f "$tmp"/etc/ssh/ssh_host_*
echo "$include" > "$tmp/.ec2init-rootfs"
rm -rf "$dir"
mv "$tmp" "$dir"
echo "rootfs: $dir built"
