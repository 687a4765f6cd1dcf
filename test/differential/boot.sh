#!/usr/bin/env bash
# The differential test's container side, on bench/lib.sh: the two images
# (ec2init's fresh .deb; Debian bookworm's cloud-init 22.4 from the archive)
# made from the e2e rootfs and cached, and one boot of one agent with the
# effects collected inside the container (collect.sh) once the agent says
# it is done.
#
# Usage:
#   boot.sh prepare AGENT        AGENT's image (ec2init: the .deb built from
#                                this tree, installed; cloudinit: Debian's
#                                package), cached and rebuilt when its
#                                inputs change
#   boot.sh boot AGENT OUT       boot a fresh overlay of AGENT's image
#                                (ec2init or cloudinit) against the
#                                simulator on EC2INIT_BENCH_PORT; the
#                                collected effects land in OUT
#
# Environment: EC2INIT_BENCH_PORT (the simulator's port, required for
# boot), DIFF_CA_FILE (a CA certificate the booted system trusts),
# EC2INIT_BENCH_DIR (default /var/tmp/ec2init-differential: its own
# cache, so a benchmark running at the same time keeps its own),
# EC2INIT_E2E_ROOTFS (the base rootfs, never written to).
set -euo pipefail
export EC2INIT_BENCH_DIR=${EC2INIT_BENCH_DIR:-/var/tmp/ec2init-differential}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/../../bench/lib.sh"

# The tree the package is built from: this one, unless EC2INIT_DIFF_SRC
# names another (a clean export of a commit, say).
BENCH_REPO=${EC2INIT_DIFF_SRC:-$BENCH_REPO}

# prepare AGENT: AGENT's image, built when its inputs changed.
prepare() {
  bench_require systemd-nspawn systemctl make go dpkg-deb mountpoint chroot flock
  [ -x "$BENCH_BASE/lib/systemd/systemd" ] || bench_die "no rootfs at $BENCH_BASE (run test/e2e/mkrootfs.sh)"
  mkdir -p "$BENCH_DIR"
  # One preparer at a time: the images and dist/ are shared.
  exec 9>"$BENCH_DIR/.lock"
  flock 9
  case $1 in
  ec2init) bench_build; bench_image_ec2init ;;
  cloudinit) bench_image_cloudinit ;;
  *) bench_die "unknown agent $1" ;;
  esac
}

# configure AGENT ROOT: bench's configuration (the agent pointed at the
# simulator), then this test's: an image as a Debian AMI ships it, sshd off
# the host's port 22 (the container shares the host's network), and the
# done unit collecting the effects.
configure() {
  local agent=$1 root=$2 wait
  bench_configure "$agent" "$root"
  case $agent in
  ec2init) wait='ec2init status --wait --timeout 150s >$out/status.txt 2>&1; echo "exit=$?" >>$out/status.txt' ;;
  cloudinit)
    wait='cloud-init status --wait --long >$out/status.txt 2>&1; echo "exit=$?" >>$out/status.txt'
    # Debian's EC2 images name the default user admin (debian-cloud-images'
    # cloud.cfg.d); Debian's package alone says debian. ec2init's Debian
    # default is admin.
    printf 'system_info:\n  default_user:\n    name: admin\n' >"$root/etc/cloud/cloud.cfg.d/01_debian_cloud.cfg"
    ;;
  esac
  mkdir -p "$root/etc/ssh/sshd_config.d"
  printf 'Port %s\nListenAddress 127.0.0.1\n' "$((BENCH_PORT + 2))" >"$root/etc/ssh/sshd_config.d/50-differential.conf"
  install -m 0755 "$here/collect.sh" "$root/usr/local/lib/bench/collect.sh"
  # The CA of the test's https server (what #include fetches), trusted as
  # an image builder would trust a private CA.
  if [ -n "${DIFF_CA_FILE:-}" ]; then
    install -m 0644 "$DIFF_CA_FILE" "$root/usr/local/share/ca-certificates/differential-test.crt"
    chroot "$root" update-ca-certificates >/dev/null 2>&1 || bench_die "update-ca-certificates in the image failed"
  fi
  # The done script is for the container's shell: nothing expands here.
  # shellcheck disable=SC2016
  case $agent in
  ec2init) bench_done_unit "$root" ec2init-final.service ec2init.target "$wait"'
/usr/local/lib/bench/collect.sh $out /var/lib/differential-marker
exit 0' ;;
  cloudinit) bench_done_unit "$root" cloud-final.service cloud-init.target "$wait"'
/usr/local/lib/bench/collect.sh $out /var/lib/differential-marker
exit 0' ;;
  esac
  # Everything changed after this moment is the boot's doing.
  touch "$root/var/lib/differential-marker"
  sleep 0.01
}

boot() {
  local agent=$1 out=$2
  [ -n "${EC2INIT_BENCH_PORT:-}" ] || bench_die "EC2INIT_BENCH_PORT: the simulator's port"
  # global: the EXIT trap reads it after this function returned
  mkdir -p "$BENCH_DIR/runs"
  run=$(mktemp -d "$BENCH_DIR/runs/$agent-XXXXXX")
  trap 'bench_overlay_down "$run"' EXIT
  bench_overlay_up "$BENCH_DIR/img-$agent" "$run"
  configure "$agent" "$run/root"
  mkdir -p "$out"
  rm -rf "$run/root/var/tmp/bench"
  mkdir -p "$run/root/var/tmp/bench"
  timeout --kill-after=20 "${DIFF_BOOT_TIMEOUT:-170}" \
    systemd-nspawn -q -D "$run/root" --boot --register=no --keep-unit >"$out/console.txt" 2>&1 || true
  cp -a "$run/root/var/tmp/bench/." "$out/"
  [ -e "$out/collected" ] || { tail -30 "$out/console.txt" >&2; bench_die "$agent: the container finished without collecting (console: $out/console.txt)"; }
  # The users and groups as the image had them, to tell what the boot made.
  cp "$BENCH_DIR/img-$agent/etc/passwd" "$out/image-passwd"
  cp "$BENCH_DIR/img-$agent/etc/group" "$out/image-group"
}

case ${1:-} in
prepare) [ $# -eq 2 ] || bench_die "usage: prepare AGENT"; prepare "$2" ;;
boot) [ $# -eq 3 ] || bench_die "usage: boot AGENT OUT"; boot "$2" "$3" ;;
*) bench_die "usage: boot.sh prepare AGENT | boot AGENT OUT" ;;
esac
