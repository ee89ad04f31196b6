#!/usr/bin/env bash
# Install what is missing, build, and run every test: once in a normal build with -Werror, once
# under AddressSanitizer + UndefinedBehaviorSanitizer, with a throwaway PostgreSQL server for the
# store tests (scripts/with-postgres.sh). Prints ctest's summaries.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh

# The store tests run against PostgreSQL too. Unless KILN_TEST_POSTGRES_URL names a server
# already, a throwaway one runs on loopback for both test runs below, and is stopped when this
# script exits, whether the tests passed or not.
if [ -z "${KILN_TEST_POSTGRES_URL:-}" ]; then
  # shellcheck source=scripts/with-postgres.sh
  source ./scripts/with-postgres.sh
fi

jobs=$(nproc 2>/dev/null || echo 2)

echo "== build (RelWithDebInfo, -Werror)"
cmake -G Ninja -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_WERROR=ON >/dev/null
cmake --build build
echo "== tests"
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== build (ASan + UBSan)"
cmake -G Ninja -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DKILN_SANITIZE=ON -DKILN_WERROR=ON \
  -DKILN_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan
echo "== tests under sanitizers"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs"
