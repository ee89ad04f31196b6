#!/usr/bin/env bash
# Checks the runtime stage of the Dockerfile without building the image (there may be no
# container runtime): every package it installs exists in Debian 12 (apt-cache, from this
# machine's package lists), and every shared library the built kiln needs (readelf NEEDED,
# resolved with ldd and dpkg -S) belongs to one of those packages or to libc6.
#
#   check_dockerfile.sh DOCKERFILE KILN
#
# Exits 1 with one line per problem; 77 (ctest: skipped) when this machine is not Debian 12 or
# has no package lists, since the answers would then be about another release.
set -euo pipefail

dockerfile=$1
kiln=$2

if ! grep -q '^12\.' /etc/debian_version 2>/dev/null || ! apt-cache show libc6 >/dev/null 2>&1; then
  echo "check_dockerfile: not Debian 12 with package lists (apt-get update): skipped"
  exit 77
fi

# The packages of the runtime stage's `apt-get install` (the stage of the second FROM): the
# words after "apt-get install" up to the next "&&" or the end of the RUN, options left out.
packages=$(awk '
  /^FROM / { runtime = (++froms == 2) }
  !runtime { next }
  /apt-get install/ { take = 1; sub(/.*apt-get install/, "") }
  take && /^[[:space:]]*&&/ { take = 0 }
  take { line = $0; sub(/#.*/, "", line); print line; if ($0 !~ /\\[[:space:]]*$/) take = 0 }
' "$dockerfile" | tr ' \\' '\n\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' | sort -u)
if [ -z "$packages" ]; then
  echo "check_dockerfile: no apt-get install in the runtime stage of $dockerfile" >&2
  exit 1
fi

problems=0
for p in $packages; do
  if ! apt-cache show --no-all-versions "$p" >/dev/null 2>&1; then
    echo "check_dockerfile: $dockerfile installs $p, which Debian 12 does not have" >&2
    problems=1
  fi
done

for lib in $(readelf -d "$kiln" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
  path=$(ldd "$kiln" | awk -v l="$lib" '$1 == l { print $3 }')
  if [ -z "$path" ]; then
    echo "check_dockerfile: $kiln needs $lib, which ldd does not resolve here" >&2
    problems=1
    continue
  fi
  owner=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null || dpkg -S "$path" 2>/dev/null || true)
  owner=${owner%%:*}
  if [ -z "$owner" ]; then
    echo "check_dockerfile: $lib ($path) belongs to no Debian package here" >&2
    problems=1
  elif [ "$owner" != libc6 ] && ! grep -qx "$owner" <<<"$packages"; then
    echo "check_dockerfile: kiln needs $lib from package $owner, which the runtime stage of $dockerfile does not install" >&2
    problems=1
  fi
done

[ "$problems" -eq 0 ] && echo "check_dockerfile: $(wc -w <<<"$packages") runtime packages exist in Debian 12 and provide every library kiln needs"
exit "$problems"
