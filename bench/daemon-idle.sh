#!/usr/bin/env bash
# Idle footprint of the events daemon: RSS and CPU over SECONDS (default 60)
# against the IMDS simulator on loopback, polling at the default interval.
# Usage: bench/daemon-idle.sh [SECONDS]
set -euo pipefail
secs=${1:-60}
cd "$(dirname "$0")/.."
make -s build
port=$(( 20000 + RANDOM % 20000 ))
bin/ec2init imds serve --addr "127.0.0.1:$port" >/dev/null 2>&1 &
sim=$!
root=$(mktemp -d)
trap 'kill $sim $daemon 2>/dev/null; rm -rf "$root"' EXIT
sleep 0.5
bin/ec2init daemon --root "$root" --endpoint "http://127.0.0.1:$port" --log-level warn &
daemon=$!
sleep 2 # start-up (the instance facts crawl) is not idle time
ticks=$(getconf CLK_TCK)
cpu0=$(awk '{print $14+$15}' /proc/$daemon/stat)
peak=0
for _ in $(seq "$secs"); do
  rss=$(awk '/VmRSS/ {print $2}' /proc/$daemon/status)
  [ "$rss" -gt "$peak" ] && peak=$rss
  sleep 1
done
cpu1=$(awk '{print $14+$15}' /proc/$daemon/stat)
awk -v c0="$cpu0" -v c1="$cpu1" -v t="$ticks" -v s="$secs" -v p="$peak" 'BEGIN {
  cpu = (c1 - c0) / t
  printf "daemon idle for %d s: peak RSS %.1f MiB, CPU %.3f s (%.3f%% of one core)\n", s, p / 1024, cpu, 100 * cpu / s
}'
