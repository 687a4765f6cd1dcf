#!/usr/bin/env bash
# Host-key generation, each type on its own: what issue #15's first-boot
# target is made of ("the whole first boot is at most the slowest single
# key's generation + 50 ms").
#
# The image's own ssh-keygen (bench's ec2init image), chrooted into a
# throw-away overlay of it, makes each type the agents make, with
# ssh-keygen's default size as they use it: rsa, ecdsa, ed25519
# (`ssh-keygen -q -t TYPE -N '' -f /tmp/...`), timed by hyperfine without a
# shell, the key files removed before each run. One type after the other,
# nothing else of the bench running.
#
# Usage: sudo bench/hostkeys.sh [--runs N] [--markdown FILE]
#   --runs N         generations per type (default 5)
#   --markdown FILE  also write the table as Markdown to FILE
# Writes $EC2INIT_BENCH_DIR/results/hostkeys/runs.tsv (type, run, ms).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

bench_args 5 1 "$@"

bench_require hyperfine chroot jq go make dpkg-deb mountpoint
trap bench_cleanup EXIT
mkdir -p "$BENCH_DIR/runs"
bench_base
bench_build
bench_image_ec2init

out="$BENCH_DIR/results/hostkeys"
rm -rf "$out"
mkdir -p "$out"
run="$BENCH_DIR/runs/hostkeys"
bench_overlay_up "$BENCH_DIR/img-ec2init" "$run"
root="$run/root"
dir=$(mktemp -d "$root/tmp/bench-hostkeys.XXXXXX")
key="/tmp/${dir##*/}/key" # as the chrooted ssh-keygen sees it
version=$(chroot "$root" ssh -V 2>&1 || true)

tsv="$out/runs.tsv"
printf 'type\trun\tms\n' >"$tsv"
for t in rsa ecdsa ed25519; do
  bench_log "ssh-keygen -t $t, $runs runs"
  hyperfine --style none --shell=none --runs "$runs" \
    --prepare "rm -f $root$key $root$key.pub" \
    --export-json "$out/$t.json" \
    "chroot $root ssh-keygen -q -t $t -N '' -f $key" >"$out/$t.txt" 2>&1 ||
    { cat "$out/$t.txt" >&2; bench_die "ssh-keygen -t $t failed in $root"; }
  jq -r --arg t "$t" '.results[0].times | to_entries[] | "\($t)\t\(.key + 1)\t\(.value * 1000)"' "$out/$t.json" >>"$tsv"
done
bench_overlay_down "$run"

table() {
  echo "| ssh-keygen in the image ($version), $runs runs, median (min–max) ms | |"
  echo "|---|---|"
  local t
  for t in rsa ecdsa ed25519; do
    echo "| $t | $(bench_cell "$(awk -F'\t' -v t="$t" 'NR > 1 && $1 == t {print $3}' "$tsv" | bench_stats 1)") |"
  done
}
table | tee "$out/table.md"
[ -z "$markdown" ] || cp "$out/table.md" "$markdown"
bench_log "raw records: $out"
