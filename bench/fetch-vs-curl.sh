#!/usr/bin/env bash
# Throughput of ec2init's artifact fetcher against curl, on the same
# loopback HTTPS server (HTTP/1.1, a throwaway private CA) and the same file.
# The fetcher does what an install needs: TLS, SHA-256 computed in the same
# pass as the write into the cache, fsync and rename. curl is shown three
# ways: to /dev/null (the issue's yardstick), to a file, and piped to
# sha256sum (the nearest shell equivalent of the fetcher). Runs are
# interleaved so load from elsewhere falls on every tool alike.
# Usage: bench/fetch-vs-curl.sh [RUNS] (default 5); SIZE_MIB (default 256).
set -euo pipefail
runs=${1:-5}
size_mib=${SIZE_MIB:-256}
cd "$(dirname "$0")/.."
command -v curl >/dev/null || { echo "fetch-vs-curl: curl is required" >&2; exit 1; }

work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
go build -o "$work/fileserver" ./bench/fileserver
go build -o "$work/fetchget" ./bench/fetchget
mkdir "$work/www"
head -c $((size_mib << 20)) /dev/urandom >"$work/www/artifact.bin"
sum=$(sha256sum "$work/www/artifact.bin" | cut -d' ' -f1)
bytes=$((size_mib << 20))

"$work/fileserver" -dir "$work/www" -ca "$work/ca.pem" >"$work/base" &
server=$!
for _ in $(seq 100); do [ -s "$work/base" ] && break; sleep 0.05; done
url="$(head -n1 "$work/base")/artifact.bin"

now() { date +%s.%N; }
rate() { awk -v b="$bytes" -v s="$1" -v e="$2" 'BEGIN { printf "%.0f\n", b / (e - s) }'; }

for i in $(seq "$runs"); do
  curl -sS -o /dev/null --cacert "$work/ca.pem" -w '%{speed_download}\n' "$url" >>"$work/curl-null"

  rm -f "$work/out"
  curl -sS -o "$work/out" --cacert "$work/ca.pem" -w '%{speed_download}\n' "$url" >>"$work/curl-file"
  rm -f "$work/out"

  s=$(now)
  got=$(curl -sS --cacert "$work/ca.pem" "$url" | sha256sum | cut -d' ' -f1)
  e=$(now)
  [ "$got" = "$sum" ] || { echo "fetch-vs-curl: curl | sha256sum gave $got, want $sum" >&2; exit 1; }
  rate "$s" "$e" >>"$work/curl-sha"

  rm -rf "$work/cache"
  "$work/fetchget" -url "$url" -sha256 "$sum" -ca "$work/ca.pem" -cache "$work/cache" >>"$work/ec2init"
  echo "run $i/$runs done" >&2
done

median() { sort -g "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mibs() { awk -v r="$1" 'BEGIN { printf "%.0f", r / 1048576 }'; }
all() { awk '{ printf "%s%.0f", (NR > 1 ? " " : ""), $1 / 1048576 }' "$1"; }
base=$(median "$work/curl-null")

printf '%s MiB over loopback HTTPS, median of %s runs (MiB/s)\n\n' "$size_mib" "$runs"
printf '%-44s %8s %9s  %s\n' "client" "median" "% of curl" "runs"
for row in "curl -o /dev/null:curl-null" "curl -o FILE:curl-file" "curl | sha256sum:curl-sha" \
  "ec2init fetch (sha256 in the same pass, fsync):ec2init"; do
  name=${row%%:*}
  file=$work/${row##*:}
  m=$(median "$file")
  pct=$(awk -v m="$m" -v b="$base" 'BEGIN { printf "%.0f%%", 100 * m / b }')
  printf '%-44s %8s %9s  %s\n' "$name" "$(mibs "$m")" "$pct" "$(all "$file")"
done
