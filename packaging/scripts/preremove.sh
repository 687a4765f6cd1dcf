#!/bin/sh
# ec2init pre-removal: on removal (not upgrade) disable the units and drop
# the ec2-metadata link if it is ours. State in /var/lib/ec2init stays.
set -e

removing=0
case "$1" in
  remove|purge) removing=1 ;;   # deb
  0) removing=1 ;;              # rpm: last instance going away
esac
[ "$removing" = 1 ] || exit 0

if command -v systemctl >/dev/null 2>&1; then
  systemctl --no-reload disable ec2init.target ec2init-local.service ec2init.service \
    ec2init-config.service ec2init-final.service >/dev/null 2>&1 || true
fi
if [ "$(readlink /usr/bin/ec2-metadata 2>/dev/null)" = /usr/libexec/ec2init/ec2-metadata ]; then
  rm -f /usr/bin/ec2-metadata
fi
if [ "$(readlink /usr/bin/cloud-init-per 2>/dev/null)" = /usr/libexec/ec2init/cloud-init-per ]; then
  rm -f /usr/bin/cloud-init-per
fi
exit 0
