#!/bin/sh
# ec2init post-install: enable the units by preset on first install (an
# upgrade keeps the administrator's choice and the state), and offer the
# ec2-metadata, cloud-init-per, cloud-init and cloud-id commands and
# cloud-init's unit and log names unless another package provides them.
set -e

first_install=0
case "$1" in
  configure) [ -z "$2" ] && first_install=1 ;;   # deb: no previous version
  1) first_install=1 ;;                            # rpm: first instance
esac

if [ ! -e /usr/bin/ec2-metadata ] && [ ! -L /usr/bin/ec2-metadata ]; then
  ln -s /usr/libexec/ec2init/ec2-metadata /usr/bin/ec2-metadata
fi
for cmd in cloud-init-per cloud-init cloud-id; do
  if [ ! -e "/usr/bin/$cmd" ] && [ ! -L "/usr/bin/$cmd" ]; then
    ln -s "/usr/libexec/ec2init/$cmd" "/usr/bin/$cmd"
  fi
done

# cloud-init's names, where cloud-init is not installed: its unit names as
# links to ec2init's units (so After=cloud-final.service orders after
# ec2init's final stage, and `systemctl status cloud-final` shows it), its
# log names as links to ec2init's logs, and its script directories.
# Shipped as links made here, not as Alias= (which would be made by
# `systemctl enable` whatever is installed): a cloud-init unit file of any
# of these names, anywhere systemd looks, means cloud-init is there, and
# then none is made. preremove removes only links that point at ec2init's.
# The logs stay 0600 root (user-data output may hold secrets), not
# cloud-init's 0640 root:adm: reading them through the links needs root.
unitdir=/usr/lib/systemd/system
cloud_init_units="cloud-init-local.service:ec2init-local.service
cloud-init.service:ec2init.service
cloud-init-network.service:ec2init.service
cloud-config.service:ec2init-config.service
cloud-final.service:ec2init-final.service
cloud-init.target:ec2init.target
cloud-config.target:ec2init-network.target"
cloud_init_present=0
for pair in $cloud_init_units; do
  name=${pair%%:*}
  for d in /etc/systemd/system /run/systemd/system /usr/lib/systemd/system /lib/systemd/system; do
    if [ -e "$d/$name" ] || [ -L "$d/$name" ]; then
      case "$(readlink "$d/$name" 2>/dev/null)" in
        ec2init*) ;;   # a link made by an earlier install
        *) cloud_init_present=1 ;;
      esac
    fi
  done
done
if [ "$cloud_init_present" = 0 ] && [ -d "$unitdir" ]; then
  for pair in $cloud_init_units; do
    name=${pair%%:*} target=${pair#*:}
    [ -L "$unitdir/$name" ] || ln -s "$target" "$unitdir/$name"
  done
  for pair in cloud-init-output.log:ec2init-output.log cloud-init.log:ec2init.log; do
    name=${pair%%:*} target=${pair#*:}
    if [ ! -e "/var/log/$name" ] && [ ! -L "/var/log/$name" ]; then
      ln -s "$target" "/var/log/$name"
    fi
  done
  mkdir -p /var/lib/cloud/scripts/per-boot /var/lib/cloud/scripts/per-instance /var/lib/cloud/scripts/per-once
fi

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$first_install" = 1 ] && command -v systemctl >/dev/null 2>&1; then
  systemctl preset ec2init.target ec2init-local.service ec2init.service \
    ec2init-config.service ec2init-final.service >/dev/null 2>&1 || true
fi
exit 0
