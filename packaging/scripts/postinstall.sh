#!/bin/sh
# ec2init post-install: enable the units by preset on first install (an
# upgrade keeps the administrator's choice and the state), and offer the
# ec2-metadata command unless another package already provides it.
set -e

first_install=0
case "$1" in
  configure) [ -z "$2" ] && first_install=1 ;;   # deb: no previous version
  1) first_install=1 ;;                            # rpm: first instance
esac

if [ ! -e /usr/bin/ec2-metadata ] && [ ! -L /usr/bin/ec2-metadata ]; then
  ln -s /usr/libexec/ec2init/ec2-metadata /usr/bin/ec2-metadata
fi
if [ ! -e /usr/bin/cloud-init-per ] && [ ! -L /usr/bin/cloud-init-per ]; then
  ln -s /usr/libexec/ec2init/cloud-init-per /usr/bin/cloud-init-per
fi

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$first_install" = 1 ] && command -v systemctl >/dev/null 2>&1; then
  systemctl preset ec2init.target ec2init-local.service ec2init.service \
    ec2init-config.service ec2init-final.service >/dev/null 2>&1 || true
fi
exit 0
