#!/usr/bin/env bash
# Boot overhead, ec2init vs Debian's cloud-init 22.4, side by side: the same
# Debian bookworm rootfs booted with systemd-nspawn, the same IMDS simulator
# on loopback, the same user data (bench/userdata.mime: a no-op script, one
# write_files, one runcmd). Each run is a new instance (a fresh overlay on
# the image, a new instance id), booted twice: the first boot, then a reboot
# of the same instance.
#
# Measured per boot, from PID 1's own unit timestamps (`systemctl show`, read
# in the container by a unit ordered after the agent):
#   window  first agent unit activating -> last agent unit active (READY for
#           ec2init-final, which stays as the events daemon; exit for cloud-final)
#   units   the sum of the agent's units' activating times (ec2init:
#           ec2init-main and the four stage units; their own time, without the
#           systemd work in between)
#   nokeys  a third boot per run, of an image that keeps its host keys
#           (ssh_deletekeys: false): the first boot without host-key generation
#   self    what the agent says: `ec2init analyze boot` ec2init_seconds,
#           cloud-init `analyze show` Total Time
#   IMDS    HTTP requests the simulator answered until the agent finished
#
# Usage: sudo bench/boot-vs-cloudinit.sh [--runs N] [--markdown FILE]
#   --runs N         boots per agent and phase (default 5; one warm-up more)
#   --markdown FILE  also write the table as Markdown to FILE
# Needs root, systemd-nspawn (systemd-container), overlayfs, go, curl, jq,
# and the Debian archive reachable for the cloud-init image's first build.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

bench_args 5 1 "$@"

bench_require systemd-nspawn systemctl curl jq go make dpkg-deb mountpoint
trap bench_cleanup EXIT
mkdir -p "$BENCH_DIR"
bench_base
bench_build
bench_image_ec2init
bench_image_cloudinit
# IMDSv1 allowed: cloud-init asks for a session token only when it has
# identified the platform as AWS from DMI data, which a container lacks.
# ec2init asks for a token all the same.
bench_sim_start --allow-v1 --user-data "$BENCH_REPO/bench/userdata.mime"

out="$BENCH_DIR/results/boot"
rm -rf "$out"
mkdir -p "$out" "$BENCH_DIR/runs"
tsv="$out/runs.tsv"
printf 'agent\tphase\trun\twindow_ms\tunits_ms\tself_ms\tsshkeys_ms\trequests\tstatus\n' >"$tsv"

# collect AGENT PHASE RUN ROOT: keep the run's records, append its numbers.
collect() {
  local agent=$1 phase=$2 i=$3 root=$4
  local dir="$out/$agent-$i-$phase"
  cp -a "$root/var/tmp/bench" "$dir"
  bench_sim_stats >"$dir/imds-stats.json"
  bench_sim_requests >"$dir/imds-requests.json"
  local ms self ssh status requests
  ms=$(bench_unit_ms "$dir/units.txt") || bench_die "$agent run $i $phase: a unit did not start or finish (see $dir/units.txt)"
  case $agent in
  ec2init)
    self=$(jq -r '(.ec2init_seconds // 0) * 1000' "$dir/analyze-boot.json" 2>/dev/null || echo 0)
    ssh=$(jq -r '[.[] | select(.module == "ssh") | .duration_ms] | add // 0' "$dir/analyze-show.json" 2>/dev/null || echo 0)
    status=$(awk '/^status:/ {print $2}' "$dir/status.txt")
    ;;
  cloudinit)
    self=$(awk '/^Total Time:/ {t = $3} END {print t * 1000}' "$dir/analyze-show.txt")
    # This boot's record is the last in the log.
    ssh=$(awk '/^-- Boot Record/ {v = 0} /\(init-network\/config-ssh\)/ {v = $1 + 0} END {print v * 1000}' "$dir/analyze-blame.txt")
    status=$(awk '/^status:/ {print $2}' "$dir/status.txt")
    ;;
  esac
  # Both did the user data's work on the first boot.
  if [ "$phase" = first ] && { [ ! -e "$root/var/tmp/bench-written" ] || [ ! -e "$root/var/tmp/bench-runcmd" ]; }; then
    status="$status,user-data-not-applied"
  fi
  # Per module, as each agent times its own (names made comparable:
  # cloud-init's config-users-groups is ec2init's users_groups).
  case $agent in
  ec2init)
    jq -r '.[] | select((.module // "") != "") | "\(.module)\t\(.duration_ms)"' "$dir/analyze-show.json"
    ;;
  cloudinit)
    awk '/^-- Boot Record/ {n = 0; delete m} /^ +[0-9.]+s \(.*\)$/ {
        name = $2; gsub(/[()]/, "", name); sub(/.*\//, "", name); sub(/^config-/, "", name)
        m[++n] = name "\t" ($1 + 0) * 1000 }
      END { for (i = 1; i <= n; i++) print m[i] }' "$dir/analyze-blame.txt"
    ;;
  esac | awk -F'\t' -v a="$agent" -v p="$phase" -v i="$i" '{
      name = $1; gsub(/-/, "_", name); sub(/:part_[0-9]+$/, "", name)
      t[name] += $2 }
    END { for (n in t) printf "%s\t%s\t%s\t%s\t%.1f\n", a, p, i, n, t[n] }' >>"$out/modules.tsv"
  # Requests answered until the agent finished (ec2init's events daemon,
  # which then keeps polling, is not boot work).
  local finished
  finished=$(cat "$dir/finished-us.txt" 2>/dev/null || true)
  [[ $finished =~ ^[0-9]+$ ]] || bench_die "$agent run $i $phase: no finish time recorded (see $dir)"
  requests=$(jq --argjson f "$finished" '[.[] | select(.t <= $f)] | length' "$dir/imds-requests.json")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$agent" "$phase" "$i" "${ms// /$'\t'}" "$self" "$ssh" "$requests" "${status:-unknown}" >>"$tsv"
}

# one AGENT RUN: a new instance, its first boot and a reboot.
one() {
  local agent=$1 i=$2
  local run="$BENCH_DIR/runs/$agent-$i" id
  id="i-0$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  bench_overlay_up "$BENCH_DIR/img-$agent" "$run"
  bench_configure "$agent" "$run/root"
  bench_sim "instance-id?id=$id"
  local phase
  for phase in first reboot; do
    bench_sim reset
    bench_boot "$run/root" "$out/$agent-$i-$phase.console"
    [ "$i" = warmup ] || collect "$agent" "$phase" "$i" "$run/root"
  done
  bench_overlay_down "$run"
  # "nokeys": the first boot of another new instance whose image keeps
  # its host keys (made beforehand, ssh_deletekeys: false in
  # /etc/cloud/cloud.cfg.d, which both agents read): the first boot
  # without host-key generation, measured, not computed. Subtracting the
  # ssh module's time no longer isolates it: ec2init generates the keys
  # while the modules before ssh run.
  id="i-0$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  bench_overlay_up "$BENCH_DIR/img-$agent" "$run"
  bench_configure "$agent" "$run/root"
  chroot "$run/root" ssh-keygen -A >/dev/null
  mkdir -p "$run/root/etc/cloud/cloud.cfg.d"
  echo "ssh_deletekeys: false" >"$run/root/etc/cloud/cloud.cfg.d/95-bench-keepkeys.cfg"
  bench_sim "instance-id?id=$id"
  bench_sim reset
  bench_boot "$run/root" "$out/$agent-$i-nokeys.console"
  [ "$i" = warmup ] || collect "$agent" nokeys "$i" "$run/root"
  bench_overlay_down "$run"
}

bench_log "warm-up boots (not counted)"
one ec2init warmup
one cloudinit warmup
for i in $(seq "$runs"); do
  bench_log "run $i/$runs"
  # Interleaved, so drifting load on the machine hits both alike.
  one ec2init "$i"
  one cloudinit "$i"
done

# The table.
stat_of() {
  local decimals=1
  [ "$3" != 8 ] || decimals=0 # request counts
  awk -F'\t' -v a="$1" -v p="$2" -v c="$3" 'NR > 1 && $1 == a && $2 == p {print $c}' "$tsv" | bench_stats "$decimals"
}
median() { awk '{print $1}' <<<"$1"; }
table() {
  echo "| $runs runs each, median (min–max) | ec2init | cloud-init 22.4 | cloud-init / ec2init |"
  echo "|---|---|---|---|"
  local row phase col label e c
  for row in "first:4:first boot: first agent unit start → agent finished, ms" \
    "first:5:first boot: sum of the agent's units, ms" \
    "nokeys:5:first boot without host-key generation (the image keeps its keys): sum of the agent's units, ms" \
    "first:6:first boot: agent's own report, ms" "first:8:first boot: IMDS HTTP requests" \
    "reboot:4:reboot: first agent unit start → agent finished, ms" "reboot:5:reboot: sum of the agent's units, ms" \
    "reboot:6:reboot: agent's own report, ms" "reboot:8:reboot: IMDS HTTP requests"; do
    phase=${row%%:*} col=${row#*:} label=${row#*:*:}
    col=${col%%:*}
    e=$(stat_of ec2init "$phase" "$col")
    c=$(stat_of cloudinit "$phase" "$col")
    echo "| $label | $(bench_cell "$e") | $(bench_cell "$c") | $(bench_ratio "$(median "$c")" "$(median "$e")") |"
  done
  # Modules both agents ran on the first boot, as each times them itself.
  # (cloud-init's runcmd only writes a script; its scripts_user runs it and
  # the user data's script. ec2init's runcmd runs the commands itself.)
  echo
  echo "| first boot, per module, median ms (each agent's own timing) | ec2init | cloud-init 22.4 |"
  echo "|---|---|---|"
  local m
  awk -F'\t' '$2 == "first" {seen[$1 FS $4] = 1; names[$4] = 1}
      END {for (n in names) if (seen["ec2init" FS n] && seen["cloudinit" FS n]) print n}' "$out/modules.tsv" | sort |
  while read -r m; do
    echo "| $m | $(awk -F'\t' -v m="$m" '$1 == "ec2init" && $2 == "first" && $4 == m {print $5}' "$out/modules.tsv" | bench_stats | cut -d' ' -f1) |" \
      "$(awk -F'\t' -v m="$m" '$1 == "cloudinit" && $2 == "first" && $4 == m {print $5}' "$out/modules.tsv" | bench_stats | cut -d' ' -f1) |"
  done
  local bad
  bad=$(awk -F'\t' 'NR > 1 && $9 != "done" {print $1 " run " $3 " " $2 ": " $9}' "$tsv")
  if [ -n "$bad" ]; then
    echo
    echo "Runs whose agent did not report a clean finish (status):"
    echo
    echo "- ${bad//$'\n'/$'\n'- }"
  fi
}
table | tee "$out/table.md"
[ -z "$markdown" ] || cp "$out/table.md" "$markdown"
bench_log "raw records: $out"
