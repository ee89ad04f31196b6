#!/usr/bin/env bash
# Runs a throwaway PostgreSQL server for kiln's tests: initdb in a new temporary directory,
# listening on 127.0.0.1 on a free port (and a Unix socket in that directory only), trust
# authentication for the superuser "kiln", data thrown away when it stops.
#
#   scripts/with-postgres.sh CMD [ARG]...   starts it, runs CMD with KILN_TEST_POSTGRES_URL set
#                                           (postgresql://kiln@127.0.0.1:PORT/postgres), stops
#                                           it, and exits with CMD's status
#   source scripts/with-postgres.sh         (from a bash script) starts it and exports
#                                           KILN_TEST_POSTGRES_URL; it stops when that script exits
#
# The server binaries come from Debian's postgresql package (/usr/lib/postgresql/<version>/bin,
# the newest there), else from PATH. PostgreSQL refuses to run as root: as root, the server runs
# as the user "postgres" (created by the Debian package), or else a system user "kiln-postgres"
# created here.
# Stopped (immediate mode, then the directory removed) on exit, whether CMD passed, failed or the
# script was interrupted.

kiln_pg_find_bin() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      echo "$dir"
      return
    fi
  done
  local initdb
  initdb=$(command -v initdb || true)
  if [ -z "$initdb" ]; then
    echo "with-postgres: no PostgreSQL server binaries (initdb, pg_ctl) found; run scripts/install-deps.sh" >&2
    return 1
  fi
  dirname "$(readlink -f "$initdb")"
}

# Runs "$@" as the server's user, from the server's directory (the caller's may be unreadable).
kiln_pg_as_user() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd "$KILN_PG_DIR" && runuser -u "$KILN_PG_USER" -- "$@")
  else
    (cd "$KILN_PG_DIR" && "$@")
  fi
}

kiln_pg_stop() {
  if [ -n "${KILN_PG_DIR:-}" ] && [ -d "$KILN_PG_DIR" ]; then
    if [ -f "$KILN_PG_DIR/data/postmaster.pid" ]; then
      kiln_pg_as_user "$KILN_PG_BIN/pg_ctl" -D "$KILN_PG_DIR/data" -m immediate -w stop \
        >/dev/null 2>&1 || true
    fi
    rm -rf "$KILN_PG_DIR"
  fi
}

kiln_pg_start() {
  KILN_PG_BIN=$(kiln_pg_find_bin) || return 1
  if [ "$(id -u)" -eq 0 ]; then
    if id -u postgres >/dev/null 2>&1; then
      KILN_PG_USER=postgres
    else
      KILN_PG_USER=kiln-postgres
      if ! id -u "$KILN_PG_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$KILN_PG_USER"
      fi
    fi
  else
    KILN_PG_USER=$(id -un)
  fi
  KILN_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kiln-postgres.XXXXXX")
  trap kiln_pg_stop EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  if [ "$(id -u)" -eq 0 ]; then chown "$KILN_PG_USER" "$KILN_PG_DIR"; fi
  chmod 700 "$KILN_PG_DIR"

  if ! kiln_pg_as_user "$KILN_PG_BIN/initdb" -D "$KILN_PG_DIR/data" -U kiln --auth=trust \
    --encoding=UTF8 --locale=C --no-sync >"$KILN_PG_DIR/initdb.log" 2>&1; then
    echo "with-postgres: initdb failed:" >&2
    cat "$KILN_PG_DIR/initdb.log" >&2
    return 1
  fi
  # A free port, found by binding port 0; another program may take it before the server does,
  # so a failed start is retried on another one.
  local attempt port
  for attempt in 1 2 3 4 5; do
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # fsync off: the data is thrown away; synchronous_commit stays on as kiln requires.
    if kiln_pg_as_user "$KILN_PG_BIN/pg_ctl" -D "$KILN_PG_DIR/data" -l "$KILN_PG_DIR/server.log" \
      -w -t 60 -o "-c listen_addresses=127.0.0.1 -p $port -k $KILN_PG_DIR -c fsync=off \
      -c full_page_writes=off -c max_connections=300" start >/dev/null; then
      export KILN_TEST_POSTGRES_URL="postgresql://kiln@127.0.0.1:$port/postgres"
      echo "with-postgres: PostgreSQL $("$KILN_PG_BIN/postgres" --version | awk '{print $3}') on" \
        "$KILN_TEST_POSTGRES_URL (data in $KILN_PG_DIR)"
      return 0
    fi
    echo "with-postgres: the server did not start on port $port (attempt $attempt):" >&2
    tail -n 5 "$KILN_PG_DIR/server.log" >&2 || true
  done
  return 1
}

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
  # Sourced: start, and leave the server to the sourcing script's exit.
  kiln_pg_start
else
  set -euo pipefail
  if [ $# -eq 0 ]; then
    echo "usage: $0 CMD [ARG]...  (runs CMD with KILN_TEST_POSTGRES_URL set)" >&2
    exit 2
  fi
  kiln_pg_start
  status=0
  "$@" || status=$?
  exit "$status"
fi
