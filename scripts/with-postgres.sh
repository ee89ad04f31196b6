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
# A second server, for the tests that restart theirs (tests/api/postgres_restart_test.cc), runs
# beside it so that restarting it cannot break the tests that ctest runs at the same time:
#   KILN_TEST_POSTGRES_RESTART_URL   the same form of URL, on that server
#   KILN_TEST_POSTGRES_RESTART_CTL   a shell command (for sh -c) that runs that server's pg_ctl as
#                                    the server's user, with its data directory, log and options
#                                    (-w: it waits); append "stop -m fast", "start" or
#                                    "restart -m fast"
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
    local data
    for data in "$KILN_PG_DIR/data" "$KILN_PG_DIR/restart/data"; do
      if [ -f "$data/postmaster.pid" ]; then
        kiln_pg_as_user "$KILN_PG_BIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
      fi
    done
    rm -rf "$KILN_PG_DIR"
  fi
}

# Creates a server in directory $1 (data in $1/data, its log $1/server.log, its Unix socket in
# $1) and starts it on a free port. Sets KILN_PG_URL, and KILN_PG_CTL: the pg_ctl command line of
# that server (see KILN_TEST_POSTGRES_RESTART_CTL above).
kiln_pg_server() {
  local dir=$1
  if ! kiln_pg_as_user "$KILN_PG_BIN/initdb" -D "$dir/data" -U kiln --auth=trust \
    --encoding=UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1; then
    echo "with-postgres: initdb failed:" >&2
    cat "$dir/initdb.log" >&2
    return 1
  fi
  # A free port, found by binding port 0; another program may take it before the server does,
  # so a failed start is retried on another one.
  local attempt port options
  for attempt in 1 2 3 4 5; do
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # fsync off: the data is thrown away; synchronous_commit stays on as kiln requires.
    options="-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c full_page_writes=off -c max_connections=300"
    if kiln_pg_as_user "$KILN_PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "$options" start >/dev/null; then
      KILN_PG_URL="postgresql://kiln@127.0.0.1:$port/postgres"
      # For sh -c: from the server's directory (the caller's may be unreadable), as its user.
      KILN_PG_CTL="cd $(printf %q "$KILN_PG_DIR") && "
      if [ "$(id -u)" -eq 0 ]; then KILN_PG_CTL+="runuser -u $(printf %q "$KILN_PG_USER") -- "; fi
      KILN_PG_CTL+="$(printf %q "$KILN_PG_BIN/pg_ctl") -D $(printf %q "$dir/data")"
      KILN_PG_CTL+=" -l $(printf %q "$dir/server.log") -w -t 60 -o $(printf %q "$options")"
      return 0
    fi
    echo "with-postgres: the server did not start on port $port (attempt $attempt):" >&2
    tail -n 5 "$dir/server.log" >&2 || true
  done
  return 1
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

  kiln_pg_server "$KILN_PG_DIR" || return 1
  export KILN_TEST_POSTGRES_URL=$KILN_PG_URL
  local version
  version=$("$KILN_PG_BIN/postgres" --version | awk '{print $3}')
  echo "with-postgres: PostgreSQL $version on $KILN_TEST_POSTGRES_URL (data in $KILN_PG_DIR)"

  mkdir "$KILN_PG_DIR/restart"
  if [ "$(id -u)" -eq 0 ]; then chown "$KILN_PG_USER" "$KILN_PG_DIR/restart"; fi
  kiln_pg_server "$KILN_PG_DIR/restart" || return 1
  export KILN_TEST_POSTGRES_RESTART_URL=$KILN_PG_URL
  export KILN_TEST_POSTGRES_RESTART_CTL=$KILN_PG_CTL
  echo "with-postgres: PostgreSQL $version for restart tests on $KILN_TEST_POSTGRES_RESTART_URL"
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
