#!/usr/bin/env bash
# Reading the instance metadata, ec2init vs cloud-init 22.4's Ec2 crawl,
# against the IMDS simulator on loopback (IMDSv2 tokens required, as on a
# current instance) with 0 ms and 1 ms of latency added to every request.
#
#   ec2init metadata --all    what Amazon Linux's ec2-metadata --all prints
#   ec2init metadata --json   the typed instance, as JSON
#   ec2init metadata --tree   every path of meta-data/ and dynamic/
#   cloud-init helper         a token PUT, then cloudinit.sources.helpers.ec2.
#                             get_instance_metadata() (the meta-data tree)
#   cloud-init datasource     DataSourceEc2.crawl_metadata() as on AWS: token,
#                             API version probe, user-data, meta-data,
#                             identity documents
# cloud-init runs with the python3 of the cloud-init image (chroot into an
# overlay of it; bench/cloudinit_crawl.py). Wall time is the whole process
# (hyperfine); for cloud-init the crawl alone, timed inside the interpreter,
# is shown too, so interpreter start-up and imports can be told apart.
# Requests are what the simulator answered for one run.
#
# Usage: sudo bench/metadata-vs-cloudinit.sh [--runs N] [--markdown FILE]
#   --runs N         hyperfine runs per command and latency (default 10)
#   --markdown FILE  also write the table as Markdown to FILE
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

bench_args 10 2 "$@"

bench_require hyperfine curl jq go make chroot mountpoint
trap bench_cleanup EXIT
mkdir -p "$BENCH_DIR/runs"
bench_base
bench_log "building bin/ec2init"
make -s -C "$BENCH_REPO" build
bench_image_cloudinit
bench_sim_start --user-data "$BENCH_REPO/bench/userdata.mime"

run="$BENCH_DIR/runs/metadata"
bench_overlay_up "$BENCH_DIR/img-cloudinit" "$run"
mkdir -p "$run/root/usr/local/lib/bench"
cp "$BENCH_REPO/bench/cloudinit_crawl.py" "$run/root/usr/local/lib/bench/"

out="$BENCH_DIR/results/metadata"
rm -rf "$out"
mkdir -p "$out"
ec2init="$BENCH_REPO/bin/ec2init"
names=("ec2init metadata --all" "ec2init metadata --json" "ec2init metadata --tree" "cloud-init helper" "cloud-init datasource")
cmds=(
  "$ec2init metadata --all --endpoint $BENCH_IMDS"
  "$ec2init metadata --json --endpoint $BENCH_IMDS"
  "$ec2init metadata --tree --endpoint $BENCH_IMDS"
  "chroot $run/root python3 /usr/local/lib/bench/cloudinit_crawl.py helper $BENCH_IMDS"
  "chroot $run/root python3 /usr/local/lib/bench/cloudinit_crawl.py datasource $BENCH_IMDS"
)
latencies=(0ms 1ms)
tsv="$out/results.tsv"
printf 'latency\tcommand\twall_med_ms\twall_min_ms\twall_max_ms\tinproc_ms\trequests\n' >"$tsv"

for lat in "${latencies[@]}"; do
  bench_sim "latency?d=$lat"
  for k in "${!cmds[@]}"; do
    bench_log "latency $lat: ${names[$k]}"
    # Requests of one run, and that the command works at all.
    bench_sim reset
    # shellcheck disable=SC2086 # the command is words, no shell
    ${cmds[$k]} >"$out/$lat-$k.out" 2>"$out/$lat-$k.err" ||
      { cat "$out/$lat-$k.err" >&2; bench_die "${names[$k]} failed"; }
    requests=$(bench_sim_stats | jq .Requests)
    json="$out/$lat-$k.json"
    hyperfine -N --style none --warmup 2 --runs "$runs" --export-json "$json" "${cmds[$k]}" >/dev/null
    read -r med min max < <(jq -r '.results[0] | "\(.median * 1000) \(.min * 1000) \(.max * 1000)"' "$json")
    inproc=-
    if [[ ${names[$k]} == cloud-init* ]]; then
      # The crawl timed inside the interpreter, over as many runs.
      inproc=$(for _ in $(seq "$runs"); do
        # shellcheck disable=SC2086
        ${cmds[$k]} | awk '{print $1}'
      done | bench_stats 1)
    fi
    printf '%s\t%s\t%.1f\t%.1f\t%.1f\t%s\t%s\n' "$lat" "${names[$k]}" "$med" "$min" "$max" "$inproc" "$requests" >>"$tsv"
  done
done
bench_overlay_down "$run"

wall() { awk -F'\t' -v l="$1" -v c="$2" '$1 == l && $2 == c {print $3}' "$tsv"; }
table() {
  echo "| median (min–max) of $runs runs, ms | wall, 0 ms latency | crawl only | requests | wall, 1 ms latency | crawl only | requests |"
  echo "|---|---|---|---|---|---|---|"
  local name row lat
  for name in "${names[@]}"; do
    row="| $name "
    for lat in "${latencies[@]}"; do
      row+=$(awk -F'\t' -v l="$lat" -v c="$name" '$1 == l && $2 == c {
        inproc = "–"
        if (split($6, p, " ") == 3) inproc = sprintf("%s (%s–%s)", p[1], p[2], p[3])
        printf "| %s (%s–%s) | %s | %s ", $3, $4, $5, inproc, $7 }' "$tsv")
    done
    echo "$row|"
  done
  echo
  echo "| wall-time ratio (median) | 0 ms latency | 1 ms latency |"
  echo "|---|---|---|"
  local ci e
  for ci in "cloud-init helper" "cloud-init datasource"; do
    for e in "ec2init metadata --all" "ec2init metadata --json" "ec2init metadata --tree"; do
      echo "| $ci ÷ $e | $(bench_ratio "$(wall 0ms "$ci")" "$(wall 0ms "$e")") | $(bench_ratio "$(wall 1ms "$ci")" "$(wall 1ms "$e")") |"
    done
  done
}
table | tee "$out/table.md"
[ -z "$markdown" ] || cp "$out/table.md" "$markdown"
bench_log "raw records: $out"
