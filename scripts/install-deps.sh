#!/usr/bin/env bash
# Installs kiln's build and test dependencies from Debian 12 packages, only those missing.
# Idempotent: a second run installs nothing. No downloads outside apt.
#
#   scripts/install-deps.sh           build and test dependencies
#   scripts/install-deps.sh --bench   the same, plus what bench/api_bench.sh needs (wrk, nginx)
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache
  libboost-dev libboost-system-dev libboost-filesystem-dev
  libyaml-dev libyaml-cpp-dev nlohmann-json3-dev
  libpq-dev postgresql
  libsqlite3-dev sqlite3
  catch2 libcli11-dev libhowardhinnant-date-dev
  libssl-dev bubblewrap libbenchmark-dev
  python3 python3-kubernetes python3-yaml
)
# Only for the benchmarks (bench/api_bench.sh): the load generator and the static-file baseline.
BENCH_PACKAGES=(wrk nginx-light)

for arg in "$@"; do
  case "$arg" in
    --bench) PACKAGES+=("${BENCH_PACKAGES[@]}") ;;
    -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-deps: unknown argument \"$arg\" (expected --bench)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
