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
for cmd in cloud-init-per cloud-init cloud-id; do
  if [ "$(readlink "/usr/bin/$cmd" 2>/dev/null)" = "/usr/libexec/ec2init/$cmd" ]; then
    rm -f "/usr/bin/$cmd"
  fi
done
# cloud-init's names: only the links that point at ec2init's units and logs
# (a cloud-init installed since has replaced them with its own).
for name in cloud-init-local.service cloud-init.service cloud-init-network.service \
    cloud-config.service cloud-final.service cloud-init.target cloud-config.target; do
  case "$(readlink "/usr/lib/systemd/system/$name" 2>/dev/null)" in
    ec2init*) rm -f "/usr/lib/systemd/system/$name" ;;
  esac
done
for name in cloud-init-output.log cloud-init.log; do
  case "$(readlink "/var/log/$name" 2>/dev/null)" in
    ec2init*) rm -f "/var/log/$name" ;;
  esac
done
exit 0
