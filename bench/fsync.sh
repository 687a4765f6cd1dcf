#!/usr/bin/env bash
# fsync calls per first boot and per reboot (issue #15: at most 12 and 4),
# counted with strace on the real binary, each stage its own process as
# systemd runs them: `ec2init boot --stage S` for local, network, config
# and final, against the bench simulator with bench/userdata.mime.
#
# The root is a fresh overlay of the bench's ec2init image (the .deb
# installed, its own /etc/ec2init, sshd, the shadow tools), booted with
# --root and --chroot, so the boot does what it does in the container: host
# keys, the default user, the user data. Between the first boot and the
# reboot its /run is emptied, as a reboot does, and the boot id changes
# (the hidden --boot-id flag, as the CLI tests simulate reboots). Each run is
# a new instance (new instance id, new overlay).
#
# Counted: fsync, fdatasync, sync_file_range, syncfs and sync, by every
# thread and child (strace -f). "ec2init" are the calls of the ec2init
# process itself; "tools" those of programs it ran (useradd, ssh-keygen,
# user scripts...), named in tools.tsv. The final stage runs without
# --daemon: its events daemon is not boot work.
#
# Usage: sudo bench/fsync.sh [--runs N] [--markdown FILE]
#   --runs N         instances, each a first boot and a reboot (default 5)
#   --markdown FILE  also write the table as Markdown to FILE
# Writes $EC2INIT_BENCH_DIR/results/fsync/runs.tsv (run, phase, stage,
# ec2init, tools, and the IMDS requests the phase made).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

bench_args 5 1 "$@"

bench_require strace curl jq go make dpkg-deb mountpoint
trap bench_cleanup EXIT
mkdir -p "$BENCH_DIR/runs"
bench_base
bench_build
bench_image_ec2init
bench_sim_start --user-data "$BENCH_REPO/bench/userdata.mime"

out="$BENCH_DIR/results/fsync"
rm -rf "$out"
mkdir -p "$out"
tsv="$out/runs.tsv"
printf 'run\tphase\tstage\tec2init\ttools\trequests\ttoken_puts\tgets\n' >"$tsv"
printf 'run\tphase\tstage\ttool\tcalls\n' >"$out/tools.tsv"

# count TRACE BINARY TOOLS: "ec2init tools" sync calls in an strace -f log;
# each program's count into the file TOOLS as "tool<TAB>calls" lines. A pid that execs
# anything but BINARY is a program ec2init ran (or one of its children).
count() {
  awk -v bin="$2" -v tools="$3" '
    /execve\(/ {
      prog = $0; sub(/^[^"]*"/, "", prog); sub(/".*$/, "", prog)
      if (prog != bin) { n = split(prog, p, "/"); child[$1] = p[n] }
    }
    $2 ~ /^(fsync|fdatasync|sync_file_range|syncfs|sync)\(/ {
      if ($1 in child) { t++; by[child[$1]]++ } else e++
    }
    END {
      for (c in by) print c "\t" by[c] > tools
      printf "%d %d\n", e, t
    }' "$1"
}

# boot ROOT RUN PHASE BOOTID: the four stages, each its own traced process.
boot() {
  local root=$1 i=$2 phase=$3 bootid=$4 st own tools stats
  local bin="$root/usr/bin/ec2init"
  bench_sim reset
  for st in local network config final; do
    local trace="$out/$i-$phase-$st.strace"
    strace -f -qq -e signal=none -e trace=fsync,fdatasync,sync_file_range,syncfs,sync,execve -o "$trace" \
      "$bin" --root "$root" --endpoint "$BENCH_IMDS" --boot-id="$bootid" \
      boot --chroot --stage "$st" >"$out/$i-$phase-$st.log" 2>&1 ||
      { tail -20 "$out/$i-$phase-$st.log" >&2; bench_die "run $i $phase: stage $st failed (log: $out/$i-$phase-$st.log)"; }
    : >"$out/$i-$phase-$st.tools"
    read -r own tools < <(count "$trace" "$bin" "$out/$i-$phase-$st.tools")
    awk -v i="$i" -v p="$phase" -v s="$st" '{print i "\t" p "\t" s "\t" $0}' "$out/$i-$phase-$st.tools" >>"$out/tools.tsv"
    stats=$(bench_sim_stats | jq -r '"\(.Requests)\t\(.TokenPuts)\t\(.Gets)"')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$i" "$phase" "$st" "$own" "$tools" "$stats" >>"$tsv"
  done
  # The simulator's counts are cumulative over the phase: keep the
  # last stage's as the phase's (the others are zeroed below).
  awk -F'\t' -v i="$i" -v p="$phase" 'BEGIN {OFS = FS} $1 == i && $2 == p && $3 != "final" {$6 = $7 = $8 = 0} {print}' "$tsv" >"$tsv.new"
  mv "$tsv.new" "$tsv"
}

for i in $(seq "$runs"); do
  bench_log "instance $i/$runs: first boot and reboot under strace"
  run="$BENCH_DIR/runs/fsync-$i"
  bench_overlay_up "$BENCH_DIR/img-ec2init" "$run"
  bench_sim "instance-id?id=i-0$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  boot "$run/root" "$i" first "$(cat /proc/sys/kernel/random/uuid)"
  # A reboot: /run is a tmpfs, empty again.
  find "$run/root/run" -mindepth 1 -delete
  boot "$run/root" "$i" reboot "$(cat /proc/sys/kernel/random/uuid)"
  bench_overlay_down "$run"
done

# per PHASE COLUMN: the per-run sums over the four stages -> stats.
per() {
  awk -F'\t' -v p="$1" -v c="$2" 'NR > 1 && $2 == p {s[$1] += $c} END {for (r in s) print s[r]}' "$tsv" | bench_stats 0
}
table() {
  echo "| $runs runs, median (min–max) | first boot | reboot | target (issue #15) |"
  echo "|---|---|---|---|"
  echo "| fsync-family calls by the ec2init processes (4 stages) | $(bench_cell "$(per first 4)") | $(bench_cell "$(per reboot 4)") | <= 12 / <= 4 |"
  echo "| by the programs they ran | $(bench_cell "$(per first 5)") | $(bench_cell "$(per reboot 5)") | |"
  local st
  for st in local network config final; do
    echo "| stage $st: ec2init + programs | $(awk -F'\t' -v p=first -v s="$st" 'NR > 1 && $2 == p && $3 == s {print $4 + $5}' "$tsv" | bench_stats 0 | cut -d' ' -f1) | $(awk -F'\t' -v p=reboot -v s="$st" 'NR > 1 && $2 == p && $3 == s {print $4 + $5}' "$tsv" | bench_stats 0 | cut -d' ' -f1) | |"
  done
  echo "| IMDS requests (token PUTs) | $(per first 6 | cut -d' ' -f1) ($(per first 7 | cut -d' ' -f1)) | $(per reboot 6 | cut -d' ' -f1) ($(per reboot 7 | cut -d' ' -f1)) | |"
  local by
  by=$(awk -F'\t' 'NR > 1 && $2 == "first" {s[$4] += $5} END {for (t in s) printf "%s %s\n", t, s[t]}' "$out/tools.tsv" |
    sort -k2,2nr | awk -v n="$runs" '{printf "%s%s %.0f", sep, $1, $2 / n; sep = ", "}')
  echo
  echo "Programs' calls on a first boot, per run (mean): ${by:-none}."
}
table | tee "$out/table.md"
[ -z "$markdown" ] || cp "$out/table.md" "$markdown"
bench_log "raw records: $out"
