#!/usr/bin/env bash
# Footprint, ec2init vs Debian's cloud-init 22.4: peak RSS and CPU seconds of
# a first boot, the events daemon idle, and what each adds to the image.
#
# First boot: the containers of bench/boot-vs-cloudinit.sh (same rootfs,
# simulator and user data), each agent unit measured as it runs:
#   oneshot units (cloud-init's four, ec2init's local/network/config stages)
#     run under GNU time (the host's /usr/bin/time, bound into the
#     container): peak RSS of the process or any child it waited for, and
#     its user+system CPU seconds with its children's;
#   ec2init-final (Type=notify, stays as the events daemon) is read from
#     /proc at READY by an ExecStartPost: VmHWM and utime+stime+cutime+cstime.
#   Per boot: peak RSS = the largest unit's, CPU = the sum over the units.
# Daemon idle: bench/daemon-idle.sh (one 60 s sample; cloud-init has no
#   resident daemon to compare).
# Size: bin/ec2init and its .deb; cloud-init's package alone and with every
#   package `apt-get install cloud-init` added to the base rootfs (python3
#   and libraries included), by dpkg's Installed-Size.
#
# Usage: sudo bench/footprint.sh [--runs N] [--idle SECONDS] [--markdown FILE]
#   --runs N         first boots per agent (default 5)
#   --idle SECONDS   daemon idle sample (default 60)
#   --markdown FILE  also write the tables as Markdown to FILE
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

runs=5 idle=60 markdown=
while [ $# -gt 0 ]; do
  case $1 in
  --runs) runs=$2; shift 2 ;;
  --idle) idle=$2; shift 2 ;;
  --markdown) markdown=$2; shift 2 ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) bench_die "unknown argument $1 (see --help)" ;;
  esac
done
[ "$runs" -ge 1 ] 2>/dev/null || bench_die "--runs wants a number"
[ "$idle" -ge 1 ] 2>/dev/null || bench_die "--idle wants a number of seconds"

bench_require systemd-nspawn systemctl curl jq go make dpkg-deb dpkg-query mountpoint
[ -x /usr/bin/time ] || bench_die "needs GNU time at /usr/bin/time (apt-get install time)"
trap bench_cleanup EXIT
mkdir -p "$BENCH_DIR/runs"
bench_base
bench_build
bench_image_ec2init
bench_image_cloudinit
bench_sim_start --allow-v1 --user-data "$BENCH_REPO/bench/userdata.mime"

out="$BENCH_DIR/results/footprint"
rm -rf "$out"
mkdir -p "$out"

# measure ROOT IMG UNIT...: drop-ins that record each unit's footprint.
measure() {
  local root=$1 img=$2 unit exec d
  shift 2
  for unit in "$@"; do
    d="$root/etc/systemd/system/$unit.d"
    mkdir -p "$d"
    if [ "$unit" = ec2init-final.service ]; then
      # shellcheck disable=SC2016 # $MAINPID is systemd's, not ours
      printf '[Service]\nExecStartPost=/usr/local/lib/bench/procstat.sh $MAINPID %%n\n' >"$d/bench-footprint.conf"
      continue
    fi
    exec=$(sed -n 's/^ExecStart=//p' "$img/usr/lib/systemd/system/$unit" "$img/lib/systemd/system/$unit" 2>/dev/null | head -1)
    [ -n "$exec" ] || bench_die "no ExecStart= in $unit"
    # %% is a literal % for systemd; %n is the unit's name. ec2init-main
    # is Type=notify: its READY comes from time's child.
    printf '[Service]\nNotifyAccess=all\nExecStart=\nExecStart=/usr/local/bin/gnutime -a -o /var/tmp/bench/footprint.txt -f "%%n maxrss_kib=%%%%M cpu_s=%%%%U+%%%%S" %s\n' \
      "$exec" >"$d/bench-footprint.conf"
  done
}

tsv="$out/runs.tsv"
# rss/anon/file: ec2init-final's resident memory at READY and its private
# (RssAnon) and file-backed (RssFile) parts; n/a for cloud-init, whose
# final unit exits. peak_unit: the unit whose process had the peak.
printf 'agent\trun\tpeak_rss_mib\tcpu_s\trss_mib\tanon_mib\tfile_mib\tpeak_unit\n' >"$tsv"
one() {
  local agent=$1 i=$2 units
  local run="$BENCH_DIR/runs/fp-$agent-$i" img="$BENCH_DIR/img-$agent"
  case $agent in
  ec2init) units="ec2init-main.service ec2init-local.service ec2init.service ec2init-config.service ec2init-final.service" ;;
  cloudinit) units="cloud-init-local.service cloud-init.service cloud-config.service cloud-final.service" ;;
  esac
  bench_overlay_up "$img" "$run"
  bench_configure "$agent" "$run/root"
  # shellcheck disable=SC2086
  measure "$run/root" "$img" $units
  bench_sim "instance-id?id=i-0$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  bench_boot "$run/root" "$out/$agent-$i.console" --bind-ro=/usr/bin/time:/usr/local/bin/gnutime
  cp "$run/root/var/tmp/bench/footprint.txt" "$out/$agent-$i.txt" 2>/dev/null ||
    bench_die "$agent run $i: no footprint recorded (console: $out/$agent-$i.console)"
  bench_overlay_down "$run"
  [ "$i" = warmup ] && return
  # shellcheck disable=SC2086
  [ "$(wc -l <"$out/$agent-$i.txt")" -eq "$(set -- $units; echo $#)" ] || bench_die "$agent run $i: not all units recorded (see $out/$agent-$i.txt)"
  awk -v a="$agent" -v i="$i" '
    { for (f = 2; f <= NF; f++) { split($f, kv, "="); v[kv[1]] = kv[2] }
      if (v["maxrss_kib"] + 0 > peak) { peak = v["maxrss_kib"] + 0; unit = $1 }
      n = split(v["cpu_s"], parts, "+"); for (p = 1; p <= n; p++) cpu += parts[p]
      if ($1 == "ec2init-final.service" && v["RssAnon_kib"] != "") {
        rss = sprintf("%.1f", v["VmRSS_kib"] / 1024)
        anon = sprintf("%.1f", v["RssAnon_kib"] / 1024)
        file = sprintf("%.1f", v["RssFile_kib"] / 1024)
      } }
    END { printf "%s\t%s\t%.1f\t%.3f\t%s\t%s\t%s\t%s\n", a, i, peak / 1024, cpu, rss ? rss : "n/a", anon ? anon : "n/a", file ? file : "n/a", unit }' "$out/$agent-$i.txt" >>"$tsv"
}

bench_log "warm-up boots (not counted)"
one ec2init warmup
one cloudinit warmup
for i in $(seq "$runs"); do
  bench_log "first boot $i/$runs"
  one ec2init "$i"
  one cloudinit "$i"
done
bench_sim_stop

bench_log "daemon idle for $idle s (bench/daemon-idle.sh)"
idle_line=$("$BENCH_REPO/bench/daemon-idle.sh" "$idle" | tail -1)
echo "$idle_line" >"$out/daemon-idle.txt"

# Sizes, from dpkg's records (KiB).
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
bin_kib=$(($(stat -c %s "$BENCH_REPO/bin/ec2init") / 1024))
deb_kib=$(($(stat -c %s "$BENCH_DEB") / 1024))
ec2init_inst=$(dpkg-deb -f "$BENCH_DEB" Installed-Size)
ec2init_deps=$(dpkg-deb -f "$BENCH_DEB" Depends)
ci_db="$BENCH_DIR/img-cloudinit/var/lib/dpkg"
ci_inst=$(dpkg-query --admindir="$ci_db" -W -f '${Installed-Size}' cloud-init)
ci_pydir=$(du -sk "$BENCH_DIR/img-cloudinit/usr/lib/python3/dist-packages/cloudinit" | cut -f1)
dpkg-query --admindir="$BENCH_BASE/var/lib/dpkg" -W -f '${Package}\n' | sort >"$out/base-packages.txt"
dpkg-query --admindir="$ci_db" -W -f '${Package}\t${Installed-Size}\n' | sort >"$out/cloudinit-packages.tsv"
read -r added_n added_kib < <(awk -F'\t' 'NR == FNR {base[$1] = 1; next} !($1 in base) {n++; k += $2} END {print n + 0, k + 0}' \
  "$out/base-packages.txt" "$out/cloudinit-packages.tsv")

printf 'bin_kib=%s\ndeb_kib=%s\nec2init_installed_kib=%s\ncloudinit_installed_kib=%s\ncloudinit_pydir_kib=%s\ncloudinit_added_kib=%s\ncloudinit_added_packages=%s\n' \
  "$bin_kib" "$deb_kib" "$ec2init_inst" "$ci_inst" "$ci_pydir" "$added_kib" "$added_n" >"$out/sizes.env"

vals() { awk -F'\t' -v a="$1" -v c="$2" 'NR > 1 && $1 == a {print $c}' "$tsv"; }
median() { awk '{print $1}' <<<"$1"; }
table() {
  local er ec cr cc
  er=$(vals ec2init 3 | bench_stats) cr=$(vals cloudinit 3 | bench_stats)
  ec=$(vals ec2init 4 | bench_stats 2) cc=$(vals cloudinit 4 | bench_stats 2)
  echo "| first boot, $runs runs, median (min–max) | ec2init | cloud-init 22.4 | cloud-init / ec2init |"
  echo "|---|---|---|---|"
  echo "| peak RSS of an agent process, MiB | $(bench_cell "$er") | $(bench_cell "$cr") | $(bench_ratio "$(median "$cr")" "$(median "$er")") |"
  echo "| CPU seconds, all the agent's units | $(bench_cell "$ec") | $(bench_cell "$cc") | $(bench_ratio "$(median "$cc")" "$(median "$ec")") |"
  echo "| ec2init-final at READY: resident, MiB | $(bench_cell "$(vals ec2init 5 | bench_stats)") | (exits) | |"
  echo "| of which private (RssAnon), MiB | $(bench_cell "$(vals ec2init 6 | bench_stats)") | | |"
  echo "| of which file pages (RssFile: the binary's, clean, shared), MiB | $(bench_cell "$(vals ec2init 7 | bench_stats)") | | |"
  echo
  echo "| size | ec2init | cloud-init 22.4 |"
  echo "|---|---|---|"
  echo "| the program on disk | bin/ec2init $(mib "$bin_kib") MiB (static, stripped) | /usr/lib/python3/dist-packages/cloudinit $(mib "$ci_pydir") MiB (du, with the .pyc compiled at install) |"
  echo "| its package, installed (dpkg Installed-Size) | $(mib "$ec2init_inst") MiB (.deb $(mib "$deb_kib") MiB), depends: ${ec2init_deps:-nothing} | $(mib "$ci_inst") MiB |"
  echo "| added to the Debian base rootfs | $(mib "$ec2init_inst") MiB, 1 package | $(mib "$added_kib") MiB, $added_n packages (python3, its libraries, locales, isc-dhcp-client, recommends) |"
  echo
  echo "Events daemon idle (ec2init-final after READY; one ${idle} s sample, bench/daemon-idle.sh): $idle_line"
}
table | tee "$out/table.md"
[ -z "$markdown" ] || cp "$out/table.md" "$markdown"
bench_log "raw records: $out"
