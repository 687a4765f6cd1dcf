#!/bin/sh
# collect.sh OUT MARKER: inside the booted container, once the agent said it
# was done, record the boot's effects for the differential test (which
# compares them between the agents; it normalises, this records as is).
#
#   OUT/files.txt    every path whose inode changed after MARKER (created,
#                    written, chmod, chown: ctime), on the root file system
#                    and /tmp, and each one's parent directories, as
#                    "c|a <TAB> path <TAB> type <TAB> mode <TAB> owner:group
#                    <TAB> sha256 or link target" (c: changed, a: an
#                    ancestor only)
#   OUT/content/     a copy of each changed regular file up to 64 KiB
#   OUT/users.txt    every user: passwd fields, groups, password state,
#                    home and ~/.ssh, subordinate ids, and for login users
#                    what sudo allows
#   OUT/group.txt    /etc/group after the boot
#   OUT/collected    written last
set -u
out=$1 marker=$2
mkdir -p "$out/content"

{
  find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path "$out" -o -path /var/log/journal \) -prune \
    -o -cnewer "$marker" ! -path "$marker" -print
  find /tmp -cnewer "$marker" -print
} 2>/dev/null | sort -u >"$out/changed.lst"

# The changed paths, then every ancestor of one.
awk '{print "c\t" $0; p = $0; while (sub(/\/[^\/]*$/, "", p) && p != "") print "a\t" p}' "$out/changed.lst" |
  sort -t "$(printf '\t')" -k2,2 -k1,1r | awk -F'\t' '!seen[$2]++' >"$out/paths.lst"

tab=$(printf '\t')
while IFS="$tab" read -r kind p; do
  [ -e "$p" ] || [ -L "$p" ] || continue
  meta=$(stat -c "%F$tab%a$tab%U:%G" "$p")
  case $meta in
  "regular file"* | "regular empty file"*)
    sum=$(sha256sum "$p" | cut -d' ' -f1)
    if [ "$kind" = c ] && [ "$(stat -c %s "$p")" -le 65536 ]; then
      mkdir -p "$out/content$(dirname "$p")"
      cp "$p" "$out/content$p"
    fi
    ;;
  "symbolic link"*) sum="-> $(readlink "$p")" ;;
  *) sum=- ;;
  esac
  printf '%s\t%s\t%s\t%s\n' "$kind" "$p" "$meta" "$sum"
done <"$out/paths.lst" >"$out/files.txt"

# Users. One line each, "name<TAB>key=value<TAB>...".
while IFS=: read -r name _ uid gid gecos home shell; do
  group=$(getent group "$gid" | cut -d: -f1)
  groups=$(id -Gn "$name" 2>/dev/null | tr ' ' '\n' | sort | tr '\n' ',' | sed 's/,$//')
  # The password field's kind, never the hash.
  pw=$(getent shadow "$name" | awk -F: '{p = $2; if (p == "") k = "empty"; else if (p ~ /^[!*]+$/) k = p; else if (p ~ /^!/) k = "!hash"; else k = "hash"; print k ":" $3 ":" $4 ":" $5 ":" $7 ":" $8}')
  homeinfo=$(stat -c '%F %a %U:%G' "$home" 2>/dev/null || echo missing)
  sshinfo=$(stat -c '%F %a %U:%G' "$home/.ssh" 2>/dev/null || echo missing)
  keysinfo=$(stat -c '%F %a %U:%G' "$home/.ssh/authorized_keys" 2>/dev/null || echo missing)
  # Sorted: cloud-init 22.4 writes a user's keys in a random order (a set).
  keys=$(sort "$home/.ssh/authorized_keys" 2>/dev/null | sha256sum | cut -d' ' -f1)
  subid="$(grep "^$name:" /etc/subuid | cut -d: -f2-) $(grep "^$name:" /etc/subgid | cut -d: -f2-)"
  sudo=-
  if [ "$uid" -ge 1000 ] && [ "$uid" -ne 65534 ]; then
    sudo=$(sudo -n -l -U "$name" 2>&1 | sed -n '/may run the following/,$p' | sed 's/^ *//' | tr '\n' '|')
  fi
  printf '%s\tuid=%s\tgid=%s\tgroup=%s\tgroups=%s\tgecos=%s\thome=%s\tshell=%s\tshadow=%s\thome-dir=%s\tssh-dir=%s\tauthorized_keys=%s %s\tsubuid-subgid=%s\tsudo=%s\n' \
    "$name" "$uid" "$gid" "$group" "$groups" "$gecos" "$home" "$shell" "$pw" "$homeinfo" "$sshinfo" "$keysinfo" "$keys" "$subid" "$sudo"
done </etc/passwd >"$out/users.txt"
cp /etc/group "$out/group.txt"
date +%s >"$out/collected"
