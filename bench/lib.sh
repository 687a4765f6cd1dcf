# shellcheck shell=bash
# Shared by the side-by-side benchmarks (bench/*-vs-cloudinit.sh,
# bench/footprint.sh): the fresh ec2init package, the two container images
# (ec2init's .deb, Debian's cloud-init 22.4) made from the e2e rootfs, the
# IMDS simulator with a request counter, one container boot, and the
# statistics. Sourced, not run.
#
# Environment:
#   EC2INIT_E2E_ROOTFS  base Debian rootfs (default /var/tmp/ec2init-rootfs,
#                       made by test/e2e/mkrootfs.sh; never written to)
#   EC2INIT_BENCH_DIR   work and cache directory (default /var/tmp/ec2init-bench)
#   EC2INIT_BENCH_PORT  simulator port; the control port is the next one
#                       (default 18338)

BENCH_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_BASE=${EC2INIT_E2E_ROOTFS:-/var/tmp/ec2init-rootfs}
BENCH_DIR=${EC2INIT_BENCH_DIR:-/var/tmp/ec2init-bench}
BENCH_PORT=${EC2INIT_BENCH_PORT:-18338}
BENCH_CONTROL_PORT=$((BENCH_PORT + 1))
BENCH_IMDS="http://127.0.0.1:$BENCH_PORT"
BENCH_CONTROL="http://127.0.0.1:$BENCH_CONTROL_PORT"
# Bump when what the images hold changes, so cached images are rebuilt.
BENCH_IMAGE_VERSION=1

bench_die() {
  echo "${0##*/}: $*" >&2
  exit 1
}

bench_log() { echo "[${0##*/} $(date +%H:%M:%S)] $*" >&2; }

# bench_args DEFAULT_RUNS MIN_RUNS ARG...: the options of the side-by-side
# scripts, --runs N and --markdown FILE (and --help: the calling script's
# header); sets runs and markdown.
# shellcheck disable=SC2034 # runs and markdown are the calling script's
bench_args() {
  runs=$1 markdown=
  local min=$2
  shift 2
  while [ $# -gt 0 ]; do
    case $1 in
    --runs) runs=$2; shift 2 ;;
    --markdown) markdown=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) bench_die "unknown argument $1 (see --help)" ;;
    esac
  done
  [ "$runs" -ge "$min" ] 2>/dev/null || bench_die "--runs wants a number of at least $min"
}

# bench_require TOOL... : root and the named commands, or a clear error.
bench_require() {
  [ "$(id -u)" = 0 ] || bench_die "needs root (it boots containers and mounts overlays)"
  local t missing=()
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  [ ${#missing[@]} -eq 0 ] || bench_die "missing tools: ${missing[*]} (Debian: apt-get install systemd-container debootstrap hyperfine time jq curl strace)"
}

# bench_base: the e2e rootfs, built with test/e2e/mkrootfs.sh when absent
# (an existing one is used as it is).
bench_base() {
  if [ ! -x "$BENCH_BASE/lib/systemd/systemd" ]; then
    bench_log "no base rootfs at $BENCH_BASE: building it with test/e2e/mkrootfs.sh"
    "$BENCH_REPO/test/e2e/mkrootfs.sh" "$BENCH_BASE" >&2
  fi
}

# bench_build: bin/ec2init and the .deb, fresh from the working tree, into
# $BENCH_DIR/dist; sets BENCH_DEB.
bench_build() {
  local dist="$BENCH_DIR/dist"
  rm -rf "$dist"
  mkdir -p "$dist"
  bench_log "building bin/ec2init and the .deb (make package)"
  make -s -C "$BENCH_REPO" package DIST="$dist" >"$BENCH_DIR/build.log" 2>&1 ||
    { tail -20 "$BENCH_DIR/build.log" >&2; bench_die "make package failed (log: $BENCH_DIR/build.log)"; }
  BENCH_DEB=$(ls "$dist"/*.deb)
  [ -f "$BENCH_DEB" ] || bench_die "make package made no .deb in $dist"
}

# bench_stamp_base: identifies the base rootfs build (mkrootfs replaces the
# directory when it rebuilds it).
bench_stamp_base() {
  stat -c '%i %Y' "$BENCH_BASE/.ec2init-rootfs" 2>/dev/null || echo none
  cat "$BENCH_BASE/.ec2init-rootfs" 2>/dev/null || true
}

# bench_common DIR: what both agents' runs get. A persistent journal, the
# results directory, and the locale a Debian cloud image sets (without it
# cloud-init's locale module fails on update-locale and reports an error).
bench_common() {
  local root=$1
  mkdir -p "$root/var/log/journal" "$root/var/tmp/bench" "$root/usr/local/lib/bench"
  echo "LANG=C.UTF-8" >"$root/etc/default/locale"
  # ExecStartPost of ec2init-final (footprint runs): the agent process's
  # peak RSS and CPU seconds (its own and its reaped children's) at READY,
  # and its resident memory then split into private (RssAnon) and pages of
  # files (RssFile: mostly the binary's, clean and shared).
  cat >"$root/usr/local/lib/bench/procstat.sh" <<'EOF'
#!/bin/sh
# procstat.sh PID UNIT: peak RSS (KiB) and CPU seconds of PID so far, and
# its RSS now by kind (KiB).
hz=$(getconf CLK_TCK)
rss=$(awk '/^VmHWM:/ {print $2}' "/proc/$1/status")
kinds=$(awk '/^(VmRSS|RssAnon|RssFile|RssShmem):/ {printf " %s_kib=%s", $1, $2}' "/proc/$1/status" | tr -d :)
cpu=$(awk -v hz="$hz" '{sub(/^.*\) /, ""); printf "%.3f", ($12+$13+$14+$15)/hz}' "/proc/$1/stat")
echo "$2 maxrss_kib=$rss cpu_s=$cpu$kinds" >> /var/tmp/bench/footprint.txt
EOF
  chmod 0755 "$root/usr/local/lib/bench/procstat.sh"
}

# bench_done_unit DIR AFTER WANTEDBY SCRIPT: the unit that, once the agent's
# last unit is done, runs SCRIPT (recording timings) and powers off.
bench_done_unit() {
  local root=$1 after=$2 wantedby=$3 script=$4
  {
    cat <<'EOF'
#!/bin/sh
out=/var/tmp/bench
EOF
    printf '%s\n' "$script"
  } >"$root/usr/local/lib/bench/done.sh"
  chmod 0755 "$root/usr/local/lib/bench/done.sh"
  cat >"$root/etc/systemd/system/bench-done.service" <<EOF
[Unit]
Description=bench: record the agent's timings, then power off
After=$after
[Service]
Type=oneshot
ExecStart=/usr/local/lib/bench/done.sh
ExecStartPost=/bin/systemctl poweroff --no-block
[Install]
WantedBy=$wantedby
EOF
  systemctl --root="$root" enable bench-done.service >/dev/null 2>&1
}

# bench_image NAME STAMP BUILDER: a cached image under $BENCH_DIR/img-NAME,
# rebuilt (a copy of the base rootfs, then BUILDER DIR) when STAMP changed.
bench_image() {
  local name=$1 stamp=$2 builder=$3
  local img="$BENCH_DIR/img-$name"
  if [ -f "$img/.bench-stamp" ] && [ "$(cat "$img/.bench-stamp")" = "$stamp" ]; then
    bench_log "image $name is current ($img)"
    return
  fi
  bench_log "building image $name ($img)"
  rm -rf "$img.partial"
  cp -a "$BENCH_BASE" "$img.partial"
  "$builder" "$img.partial"
  printf '%s' "$stamp" >"$img.partial/.bench-stamp"
  rm -rf "$img"
  mv "$img.partial" "$img"
}

# The ec2init image: the freshly built .deb installed with dpkg, as an AMI
# builder would (its postinst enables the units by preset).
bench_build_ec2init() {
  local root=$1
  cp "$BENCH_DEB" "$root/tmp/ec2init.deb"
  chroot "$root" dpkg -i /tmp/ec2init.deb >/dev/null
  rm -f "$root/tmp/ec2init.deb"
}

bench_image_ec2init() {
  bench_image ec2init "v$BENCH_IMAGE_VERSION $(bench_stamp_base) $(
    { dpkg-deb --fsys-tarfile "$BENCH_DEB" | tar -xO; dpkg-deb --ctrl-tarfile "$BENCH_DEB" | tar -xO; } | sha256sum
  )" bench_build_ec2init
}

# The cloud-init image: Debian bookworm's cloud-init from the Debian archive
# (apt-get install, recommends included, as a user would).
bench_build_cloudinit() {
  local root=$1
  cp "$root/etc/resolv.conf" "$root/etc/resolv.conf.bench" 2>/dev/null || true
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -q update >&2
  chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -q install -y cloud-init >&2
  chroot "$root" apt-get clean
  if [ -f "$root/etc/resolv.conf.bench" ]; then
    mv "$root/etc/resolv.conf.bench" "$root/etc/resolv.conf"
  fi
}

bench_image_cloudinit() {
  bench_image cloudinit "v$BENCH_IMAGE_VERSION $(bench_stamp_base)" bench_build_cloudinit
}

# bench_configure AGENT ROOT: the bench's own parts (the unit that records
# and powers off) and the agent pointed at the simulator, written per run
# into the run's overlay, so the cached images hold only what apt/dpkg put
# there.
bench_configure() {
  local agent=$1 root=$2
  bench_common "$root"
  # The done scripts are for the container's shell: nothing expands here.
  # shellcheck disable=SC2016
  case $agent in
  ec2init)
    mkdir -p "$root/etc/ec2init/conf.d"
    printf 'imds:\n  endpoint: %s\n' "$BENCH_IMDS" >"$root/etc/ec2init/conf.d/50-bench.yaml"
    bench_done_unit "$root" ec2init-final.service ec2init.target '
ec2init status --wait --timeout 120s --long >$out/status.txt 2>&1
echo "exit=$?" >>$out/status.txt
systemctl show -p Id -p InactiveExitTimestampMonotonic -p ActiveEnterTimestampMonotonic -p Result \
  ec2init-main.service ec2init-local.service ec2init.service ec2init-config.service ec2init-final.service >$out/units.txt
# When the boot work was done, on the wall clock the simulator stamps
# requests with: the events daemon polls IMDS after READY, and that is not
# boot work.
date -d "$(systemctl show -p ActiveEnterTimestamp --value --timestamp=us+utc ec2init-final.service)" +%s%6N >$out/finished-us.txt
ec2init analyze show --json >$out/analyze-show.json 2>&1
ec2init analyze boot --json >$out/analyze-boot.json 2>&1
ec2init analyze show >$out/analyze-show.txt 2>&1
exit 0'
    ;;
  cloudinit)
    # ds-identify's "enabled" mode: cloud-init runs without a platform
    # check (a container shows no EC2 DMI data), with datasource_list as
    # given below.
    echo "policy: enabled" >"$root/etc/cloud/ds-identify.cfg"
    bench_done_unit "$root" cloud-final.service cloud-init.target '
cloud-init status --wait --long >$out/status.txt 2>&1
echo "exit=$?" >>$out/status.txt
systemctl show -p Id -p InactiveExitTimestampMonotonic -p ActiveEnterTimestampMonotonic -p Result \
  cloud-init-local.service cloud-init.service cloud-config.service cloud-final.service >$out/units.txt
date -d "$(systemctl show -p ActiveEnterTimestamp --value --timestamp=us+utc cloud-final.service)" +%s%6N >$out/finished-us.txt
cloud-init analyze show >$out/analyze-show.txt 2>&1
cloud-init analyze blame >$out/analyze-blame.txt 2>&1
cloud-init analyze boot >$out/analyze-boot.txt 2>&1
grep -h "metadata version\|Using metadata source\|Crawl of metadata" /var/log/cloud-init.log >$out/datasource.txt 2>&1
exit 0'

    # timeout/max_wait bound a lost simulator; they cost nothing when it
    # answers. strict_id false: run although the platform is not proven EC2.
    cat >"$root/etc/cloud/cloud.cfg.d/90-bench.cfg" <<EOF
datasource_list: [Ec2]
datasource:
  Ec2:
    metadata_urls: ['$BENCH_IMDS']
    strict_id: false
    timeout: 5
    max_wait: 30
EOF
    ;;
  *) bench_die "unknown agent $agent" ;;
  esac
}

# The simulator, built from this tree, with a control port for counting.
bench_sim_start() {
  mkdir -p "$BENCH_DIR/bin"
  (cd "$BENCH_REPO" && go build -o "$BENCH_DIR/bin/benchsim" ./bench/benchsim) ||
    bench_die "go build ./bench/benchsim failed"
  "$BENCH_DIR/bin/benchsim" --addr "127.0.0.1:$BENCH_PORT" --control "127.0.0.1:$BENCH_CONTROL_PORT" "$@" \
    >"$BENCH_DIR/benchsim.log" 2>&1 &
  BENCH_SIM_PID=$!
  # Ready when this process says it listens (a stale simulator on the
  # same ports must not pass for this one).
  local _
  for _ in $(seq 100); do
    kill -0 "$BENCH_SIM_PID" 2>/dev/null || break
    grep -q "control on" "$BENCH_DIR/benchsim.log" && return
    sleep 0.1
  done
  cat "$BENCH_DIR/benchsim.log" >&2
  bench_die "the simulator did not start on ports $BENCH_PORT/$BENCH_CONTROL_PORT (set EC2INIT_BENCH_PORT)"
}

bench_sim_stop() {
  if [ -n "${BENCH_SIM_PID:-}" ]; then
    kill "$BENCH_SIM_PID" 2>/dev/null || true
    wait "$BENCH_SIM_PID" 2>/dev/null || true
    BENCH_SIM_PID=
  fi
}

bench_sim() { curl -fsS -X POST "$BENCH_CONTROL/$1" >/dev/null; }
bench_sim_stats() { curl -fsS "$BENCH_CONTROL/stats"; }
bench_sim_requests() { curl -fsS "$BENCH_CONTROL/requests"; }

# bench_overlay_up IMG RUN: a throw-away writable view of IMG at RUN/root.
bench_overlay_up() {
  local img=$1 run=$2
  mkdir -p "$run/upper" "$run/work" "$run/root"
  mount -t overlay overlay -o "lowerdir=$img,upperdir=$run/upper,workdir=$run/work" "$run/root"
}

bench_overlay_down() {
  local run=$1
  if mountpoint -q "$run/root"; then
    umount "$run/root" || umount -l "$run/root"
  fi
  rm -rf "$run"
}

# bench_cleanup: stop the simulator, unmount what a run left mounted.
bench_cleanup() {
  bench_sim_stop
  local m
  awk -v d="$BENCH_DIR/runs/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r |
    while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
  rm -rf "$BENCH_DIR/runs"
}

# bench_boot ROOT LOG [NSPAWN-ARGS...]: boot ROOT's systemd until the
# bench-done unit powers it off; fail when it does not within the timeout.
bench_boot() {
  local root=$1 log=$2
  shift 2
  rm -rf "$root/var/tmp/bench"
  mkdir -p "$root/var/tmp/bench"
  if ! timeout --kill-after=20 "${BENCH_BOOT_TIMEOUT:-180}" \
    systemd-nspawn -q -D "$root" --boot --register=no --keep-unit "$@" >"$log" 2>&1; then
    [ -s "$root/var/tmp/bench/units.txt" ] ||
      { tail -30 "$log" >&2; bench_die "the container did not finish (console: $log)"; }
  fi
  [ -s "$root/var/tmp/bench/units.txt" ] || { tail -30 "$log" >&2; bench_die "no timings recorded (console: $log)"; }
}

# bench_unit_ms UNITS-FILE: from `systemctl show` of the agent's units (four
# stage units; ec2init's also ec2init-main, the process that runs them)
# (in order), print "window_ms units_ms": first unit activating to last unit
# active (for a notify unit: READY), and the sum of each unit's own
# activating time.
bench_unit_ms() {
  awk -F= '
    /^Id=/ {id = $2; n++}
    /^InactiveExitTimestampMonotonic=/ {start[n] = $2}
    /^ActiveEnterTimestampMonotonic=/ {end[n] = $2}
    END {
      if (n < 4) exit 1
      for (i = 1; i <= n; i++) {
        if (start[i] == 0 || end[i] == 0) exit 1
        sum += end[i] - start[i]
      }
      printf "%.1f %.1f\n", (end[4] - start[1]) / 1000, sum / 1000
    }' "$1"
}

# bench_stats [DECIMALS]: numbers on stdin -> "median min max" (default
# one decimal; 0 for counts).
bench_stats() {
  sort -g | awk -v d="${1:-1}" '{v[NR] = $1} END {
    if (NR == 0) { print "n/a n/a n/a"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    f = "%." d "f"
    printf f " " f " " f "\n", m, v[1], v[NR]
  }'
}

# bench_cell "median min max" -> "median (min–max)"
bench_cell() { awk '{printf "%s (%s–%s)", $1, $2, $3}' <<<"$1"; }

# bench_ratio A B -> A/B as "12.3x", or n/a
bench_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "n/a" }'; }
