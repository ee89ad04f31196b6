#!/usr/bin/env bash
# kiln server's REST API under load (issue 6): wrk against GET of a 100-node workflow and GET of
# the list of 1,000 workflows, on SQLite and on PostgreSQL, with nginx serving the same JSON as
# static files in the same run as the upper bound; then workflow submissions per second (POST).
#
#   bench/api_bench.sh [KILN_BINARY] [--duration S] [--connections N] [--threads N]
#                      [--workflows N] [--no-postgres] [--out FILE]
#
# KILN_BINARY defaults to $KILN_BINARY, else build/kiln. Needs wrk and nginx
# (scripts/install-deps.sh --bench), python3, and for PostgreSQL the server binaries that
# scripts/with-postgres.sh uses. Everything lives in one temporary directory, removed on exit;
# kiln and nginx listen on free 127.0.0.1 ports. The tables (markdown) go to stdout, and to
# FILE with --out. Takes about 3-4 minutes with the defaults (10 s per wrk run, 8 runs).
#
# What it does, per store (SQLite in the data directory, then a throwaway PostgreSQL):
#   1. kiln server --no-sandbox; submits (YAML) "fan100", steps over withSequence count 100, each
#      step running `true` (102 nodes: the workflow, one step group, 100 Pods) and waits until it
#      Succeeded; then submits WORKFLOWS-1 workflows whose entrypoint is `suspend: {}` (they stay
#      Running and cost nothing), so that namespace "bench" lists WORKFLOWS workflows.
#   2. Saves GET /api/v1/workflows/bench/fan100 and GET /api/v1/workflows/bench as files; nginx
#      (SQLite pass only; its figures stand for both stores) serves them as application/json.
#   3. wrk -t THREADS -c CONNECTIONS -d DURATION --timeout 30s --latency against kiln, then nginx.
#   4. Submissions: wrk POSTs {"workflow": {generateName, suspend entrypoint}} to namespace
#      "bench-submit"; accepted/s = (requests - non-2xx) / duration; the namespace's list is then
#      counted to check that they were recorded (it also holds those still in flight when wrk
#      stopped, up to CONNECTIONS more than wrk counted).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KILN=${KILN_BINARY:-$ROOT/build/kiln}
DURATION=10
CONNECTIONS=64
THREADS=2
WORKFLOWS=1000
POSTGRES=1
OUT=""

while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --workflows) WORKFLOWS=$2; shift 2 ;;
    --no-postgres) POSTGRES=0; shift ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "api_bench: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) KILN=$1; shift ;;
  esac
done

log() { echo "api_bench: $*" >&2; }
die() { log "$*"; exit 1; }

# ---- dependencies ---------------------------------------------------------------------------------
[ -x "$KILN" ] || die "no kiln binary at $KILN (pass its path, or set KILN_BINARY; build: cmake -G Ninja -S . -B build -DCMAKE_BUILD_TYPE=Release && ninja -C build kiln)"
KILN=$(readlink -f "$KILN")
WRK=$(command -v wrk || true)
NGINX=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true)
missing=()
[ -n "$WRK" ] || missing+=(wrk)
[ -n "$NGINX" ] || missing+=(nginx)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  die "missing ${missing[*]}: run scripts/install-deps.sh --bench (installs wrk and nginx-light from Debian)"
fi

# ---- the temporary directory and cleanup -----------------------------------------------------------
T=$(mktemp -d "${TMPDIR:-/tmp}/api-bench-kiln.XXXXXX")
PIDS=()
cleanup() {
  local pid _
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if declare -F kiln_pg_stop >/dev/null; then kiln_pg_stop; fi
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Work from there, so that nothing lands in the caller's directory.
[ -z "$OUT" ] || OUT=$(realpath -m "$OUT")
cd "$T"
# nginx's workers run as "nobody" when started as root: they must reach the files.
chmod 711 "$T"
mkdir -p "$T/www" "$T/nginx/tmp" "$T/wrk"
chmod 755 "$T/www"

CLK_TCK=$(getconf CLK_TCK)

# ---- the HTTP helper (setup only; the measuring is wrk's) -----------------------------------------
cat >"$T/kb.py" <<'PY'
import http.client, json, sys, time, urllib.parse

def conn(base):
    u = urllib.parse.urlsplit(base)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=60)

def call(c, method, path, body=None, ctype=None):
    headers = {"Content-Type": ctype} if ctype else {}
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    return r.status, r.read()

cmd, base = sys.argv[1], sys.argv[2]
c = conn(base)
if cmd == "submit":  # submit BASE NS FILE CTYPE COUNT: COUNT POSTs on one connection
    ns, path, ctype, count = sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
    body = open(path, "rb").read()
    t0 = time.monotonic()
    for i in range(count):
        status, data = call(c, "POST", "/api/v1/workflows/" + ns, body, ctype)
        if status != 200:
            sys.exit("POST /api/v1/workflows/%s -> %d %s" % (ns, status, data[:500]))
    print("%d submitted in %.1f s" % (count, time.monotonic() - t0))
elif cmd == "wait":  # wait BASE NS NAME TIMEOUT_S: until the workflow Succeeded
    ns, name, timeout = sys.argv[3], sys.argv[4], float(sys.argv[5])
    deadline = time.monotonic() + timeout
    while True:
        status, data = call(c, "GET", "/api/v1/workflows/%s/%s" % (ns, name))
        if status != 200:
            sys.exit("GET %s/%s -> %d %s" % (ns, name, status, data[:500]))
        st = json.loads(data).get("status", {})
        phase, nodes = st.get("phase"), st.get("nodes", {})
        if phase == "Succeeded":
            pods = sum(1 for n in nodes.values() if n.get("type") == "Pod")
            print("%s Succeeded: %d nodes, %d Pods" % (name, len(nodes), pods))
            break
        if phase in ("Failed", "Error"):
            sys.exit("%s ended %s: %s" % (name, phase, st.get("message")))
        if time.monotonic() > deadline:
            sys.exit("%s still %s after %.0f s" % (name, phase, timeout))
        time.sleep(0.2)
elif cmd == "save":  # save BASE PATH OUT: GET to a file; prints bytes and items
    path, out = sys.argv[3], sys.argv[4]
    status, data = call(c, "GET", path)
    if status != 200:
        sys.exit("GET %s -> %d %s" % (path, status, data[:500]))
    open(out, "wb").write(data)
    j = json.loads(data)
    print(len(data), len(j.get("items", [])) if "items" in j else len(j.get("status", {}).get("nodes", {})))
elif cmd == "count":  # count BASE NS: workflows listed in NS
    status, data = call(c, "GET", "/api/v1/workflows/" + sys.argv[3])
    if status != 200:
        sys.exit("list %s -> %d" % (sys.argv[3], status))
    print(len(json.loads(data).get("items", [])))
elif cmd == "ok":  # ok BASE PATH: exit 0 when GET answers 200
    try:
        sys.exit(0 if call(c, "GET", sys.argv[3])[0] == 200 else 1)
    except OSError:
        sys.exit(1)
PY
kb() { python3 "$T/kb.py" "$@"; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# CPU seconds (user + system) of a process and its children, from /proc.
cpu_ticks() {
  local total=0 p t
  for p in "$@" $(ps -o pid= --ppid "$1" 2>/dev/null || true); do
    # (A process may end between ps and here.)
    t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}' || true)
    total=$((total + ${t:-0}))
  done
  echo "$total"
}

# "TID CPU_NS RUNQUEUE_WAIT_NS" for each thread of a process (/proc/.../schedstat): whether one
# thread is the limit, and how long it waited for a CPU that other work held.
thread_times() {
  local f
  for f in /proc/"$1"/task/*/schedstat; do
    [ -r "$f" ] || continue
    echo "$(basename "$(dirname "$f")") $(cat "$f")"
  done 2>/dev/null || true
}

# ---- the workflows ---------------------------------------------------------------------------------
cat >"$T/fan100.yaml" <<'YAML'
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: fan100
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: step
        template: noop
        withSequence: {count: "100"}
  - name: noop
    container: {image: busybox, command: ["true"]}
YAML
cat >"$T/suspended.yaml" <<'YAML'
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: idle-
spec:
  entrypoint: main
  templates:
  - name: main
    suspend: {}
YAML
SUBMIT_BODY='{"workflow": {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "sub-"}, "spec": {"entrypoint": "main", "templates": [{"name": "main", "suspend": {}}]}}}'
cat >"$T/submit.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$SUBMIT_BODY'
LUA

# ---- kiln ------------------------------------------------------------------------------------------
KILN_URL=""
KILN_PID=""
start_kiln() {  # start_kiln NAME [--store URL]
  local dir="$T/$1"; shift
  mkdir -p "$dir"
  : >"$dir/server.log"  # before the background start opens it, so that the loop below can read it
  "$KILN" server --data-dir "$dir/data" --listen 127.0.0.1:0 --no-sandbox "$@" >"$dir/server.log" 2>&1 &
  KILN_PID=$!
  PIDS+=("$KILN_PID")
  local _
  for _ in $(seq 1 300); do
    KILN_URL=$(sed -n 's|^kiln server listening on \(http://[^ ]*\).*|\1|p' "$dir/server.log" || true)
    [ -n "$KILN_URL" ] && return 0
    kill -0 "$KILN_PID" 2>/dev/null || { cat "$dir/server.log" >&2; die "kiln server exited at start"; }
    sleep 0.1
  done
  cat "$dir/server.log" >&2
  die "kiln server did not say where it listens within 30 s"
}
stop_kiln() {
  kill -TERM "$KILN_PID" 2>/dev/null || true
  local _
  for _ in $(seq 1 300); do kill -0 "$KILN_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$KILN_PID" 2>/dev/null || true
  wait "$KILN_PID" 2>/dev/null || true
  local p rest=()
  for p in "${PIDS[@]}"; do [ "$p" = "$KILN_PID" ] || rest+=("$p"); done
  PIDS=("${rest[@]}")
}

# Steps 1 and 2 of the header: the workflows, and their GET answers saved under www/.
prepare() {  # prepare STORE_LABEL
  local label=$1 out
  out=$(kb submit "$KILN_URL" bench "$T/fan100.yaml" application/yaml 1) || die "$label: setup failed (see above)"
  out=$(kb wait "$KILN_URL" bench fan100 120) || die "$label: setup failed (see above)"
  log "$label: $out"
  out=$(kb submit "$KILN_URL" bench "$T/suspended.yaml" application/yaml $((WORKFLOWS - 1))) || die "$label: setup failed (see above)"
  log "$label: $((WORKFLOWS - 1)) suspended workflows: $out"
  out=$(kb save "$KILN_URL" /api/v1/workflows/bench/fan100 "$T/www/$label-workflow.json") || die "$label: setup failed (see above)"
  read -r WF_BYTES WF_NODES <<<"$out"
  out=$(kb save "$KILN_URL" /api/v1/workflows/bench "$T/www/$label-list.json") || die "$label: setup failed (see above)"
  read -r LIST_BYTES LIST_ITEMS <<<"$out"
  chmod 644 "$T/www/"*.json
  [ "$LIST_ITEMS" -eq "$WORKFLOWS" ] || die "$label: the list has $LIST_ITEMS workflows, expected $WORKFLOWS"
  log "$label: GET workflow $WF_BYTES bytes ($WF_NODES nodes), GET list $LIST_BYTES bytes ($LIST_ITEMS workflows)"
  eval "${label}_WF_BYTES=$WF_BYTES ${label}_WF_NODES=$WF_NODES ${label}_LIST_BYTES=$LIST_BYTES"
}

# ---- nginx -----------------------------------------------------------------------------------------
NGINX_URL=""
NGINX_PID=""
start_nginx() {
  local attempt port
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    cat >"$T/nginx/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $T/nginx/tmp/body;
  proxy_temp_path $T/nginx/tmp/proxy;
  fastcgi_temp_path $T/nginx/tmp/fastcgi;
  uwsgi_temp_path $T/nginx/tmp/uwsgi;
  scgi_temp_path $T/nginx/tmp/scgi;
  types { }
  default_type application/json;
  sendfile on;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port;
    root $T/www;
  }
}
CONF
    "$NGINX" -p "$T/nginx/" -e "$T/nginx/error.log" -c "$T/nginx/nginx.conf" >"$T/nginx/stdout.log" 2>&1 &
    NGINX_PID=$!
    local _
    for _ in $(seq 1 50); do
      if kb ok "http://127.0.0.1:$port" /sqlite-workflow.json 2>/dev/null; then
        PIDS+=("$NGINX_PID")
        NGINX_URL="http://127.0.0.1:$port"
        return 0
      fi
      kill -0 "$NGINX_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -TERM "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
    log "nginx did not start on port $port (attempt $attempt):"
    tail -n 5 "$T/nginx/error.log" "$T/nginx/stdout.log" >&2 2>/dev/null || true
  done
  die "nginx did not start"
}

# ---- wrk -------------------------------------------------------------------------------------------
# run_wrk LABEL PID URL [LUA]: one wrk run; sets W_RPS W_P50 W_P99 W_REQ W_SECS W_NON2XX W_SOCKERR
# W_CPU_MS (CPU of PID and its children during the run, ms per request answered), W_STORE_MS
# (the same for PostgreSQL's server processes, when STORE_PID is set), W_CORES, W_TOP_THREAD.
STORE_PID=""
run_wrk() {
  local label=$1 pid=$2 url=$3 lua=${4:-} before after
  # --timeout 30s: wrk's default (2 s) drops slower answers from the latency figures.
  local args=(-t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 30s --latency)
  [ -n "$lua" ] && args+=(-s "$lua")
  log "wrk ${args[*]} $url  ($label)"
  thread_times "$pid" >"$T/wrk/$label.threads-before"
  local store_before=0 store_after=0
  [ -z "$STORE_PID" ] || store_before=$(cpu_ticks "$STORE_PID")
  before=$(cpu_ticks "$pid")
  "$WRK" "${args[@]}" "$url" >"$T/wrk/$label.txt" 2>&1 || { cat "$T/wrk/$label.txt" >&2; die "wrk failed"; }
  after=$(cpu_ticks "$pid")
  [ -z "$STORE_PID" ] || store_after=$(cpu_ticks "$STORE_PID")
  thread_times "$pid" >"$T/wrk/$label.threads-after"
  local f="$T/wrk/$label.txt"
  to_ms='function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v }'
  W_RPS=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$f")
  W_P50=$(awk "$to_ms"' $1 == "50%" {printf "%.2f", ms($2)}' "$f")
  W_P99=$(awk "$to_ms"' $1 == "99%" {printf "%.2f", ms($2)}' "$f")
  W_REQ=$(awk '/requests in/ {print $1}' "$f")
  W_SECS=$(awk '/requests in/ {sub(/s,$/, "", $4); print $4}' "$f")
  W_NON2XX=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$f")
  W_NON2XX=${W_NON2XX:-0}
  W_SOCKERR=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$f")
  W_SOCKERR=${W_SOCKERR:-0}
  W_CPU_MS=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$W_REQ" 'BEGIN {printf "%.2f", (n > 0) ? t / hz * 1000 / n : 0}')
  W_STORE_MS="-"
  [ -z "$STORE_PID" ] || W_STORE_MS=$(awk -v t=$((store_after - store_before)) -v hz="$CLK_TCK" -v n="$W_REQ" 'BEGIN {printf "%.2f", (n > 0) ? t / hz * 1000 / n : 0}')
  # The server's CPU over the run in % of one core: all threads; its busiest thread, and how long
  # that thread waited in the run queue (runnable, but the CPUs were busy with other work).
  # (From /proc/PID/stat, with its children: nginx's workers; or, where larger, the sum over its
  # threads from schedstat, which counts in ns rather than clock ticks.)
  W_CORES=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v s="$W_SECS" 'NR == FNR {c[$1] = $2; next}
    ($1 in c) {sum += $2 - c[$1]} END {a = 100 * t / hz / s; b = 100 * sum / 1e9 / s; printf "%.0f", (a > b) ? a : b}' \
    "$T/wrk/$label.threads-before" "$T/wrk/$label.threads-after")
  W_TOP_THREAD=$(awk -v s="$W_SECS" 'NR == FNR {c[$1] = $2; w[$1] = $3; next}
    ($1 in c) {d = $2 - c[$1]; if (d > m) {m = d; q = $3 - w[$1]}}
    END {printf "%.0f (%.0f)", 100 * m / 1e9 / s, 100 * q / 1e9 / s}' \
    "$T/wrk/$label.threads-before" "$T/wrk/$label.threads-after")
  log "  $W_RPS req/s, p50 $W_P50 ms, p99 $W_P99 ms, $W_REQ requests in ${W_SECS}s, non-2xx $W_NON2XX, socket errors $W_SOCKERR," \
    "server CPU $W_CPU_MS ms/request (PostgreSQL: $W_STORE_MS), $W_CORES% of a core (busiest thread $W_TOP_THREAD% running (waiting for a CPU))"
  if [ -z "$W_RPS" ] || [ -z "$W_P99" ]; then cat "$f" >&2; die "could not read wrk's output"; fi
}

# ---- the runs --------------------------------------------------------------------------------------
READ_ROWS=()
SUBMIT_ROWS=()
NGINX_WF_RPS="" NGINX_WF_P50="" NGINX_WF_P99="" NGINX_WF_CPU=""
NGINX_LIST_RPS="" NGINX_LIST_P50="" NGINX_LIST_P99="" NGINX_LIST_CPU=""

verdict() {  # verdict KILN_RPS KILN_P99 NGINX_RPS -> "62% | yes" style cells
  awk -v k="$1" -v p="$2" -v n="$3" 'BEGIN {
    r = n > 0 ? 100 * k / n : 0
    printf "%.1f%% | %s", r, (r >= 50 && p < 10) ? "yes" : "no (" ((r < 50) ? "req/s" : "") ((r < 50 && p >= 10) ? ", " : "") ((p >= 10) ? "p99" : "") ")"
  }'
}

bench_store() {  # bench_store LABEL [--store URL]
  local label=$1; shift
  start_kiln "$label" "$@"
  log "$label: kiln at $KILN_URL"
  prepare "$label"
  if [ -z "$NGINX_URL" ]; then
    start_nginx
    log "nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') at $NGINX_URL"
  fi
  local wf_bytes_var=${label}_WF_BYTES list_bytes_var=${label}_LIST_BYTES nodes_var=${label}_WF_NODES

  run_wrk "$label-kiln-workflow" "$KILN_PID" "$KILN_URL/api/v1/workflows/bench/fan100"
  local k_wf=("$W_RPS" "$W_P50" "$W_P99" "$W_CPU_MS" "$W_NON2XX" "$W_SOCKERR" "$W_CORES" "$W_TOP_THREAD" "$W_STORE_MS")
  if [ -z "$NGINX_WF_RPS" ]; then
    run_wrk "nginx-workflow" "$NGINX_PID" "$NGINX_URL/$label-workflow.json"
    NGINX_WF_RPS=$W_RPS NGINX_WF_P50=$W_P50 NGINX_WF_P99=$W_P99 NGINX_WF_CPU=$W_CPU_MS
  fi
  run_wrk "$label-kiln-list" "$KILN_PID" "$KILN_URL/api/v1/workflows/bench"
  local k_list=("$W_RPS" "$W_P50" "$W_P99" "$W_CPU_MS" "$W_NON2XX" "$W_SOCKERR" "$W_CORES" "$W_TOP_THREAD" "$W_STORE_MS")
  if [ -z "$NGINX_LIST_RPS" ]; then
    run_wrk "nginx-list" "$NGINX_PID" "$NGINX_URL/$label-list.json"
    NGINX_LIST_RPS=$W_RPS NGINX_LIST_P50=$W_P50 NGINX_LIST_P99=$W_P99 NGINX_LIST_CPU=$W_CPU_MS
  fi
  READ_ROWS+=("| $label | GET workflow (${!nodes_var} nodes) | $(awk -v b="${!wf_bytes_var}" 'BEGIN {printf "%.1f", b / 1024}') | ${k_wf[0]} | ${k_wf[1]} / ${k_wf[2]} | ${k_wf[3]} | ${k_wf[8]} | ${k_wf[6]} / ${k_wf[7]} | $((k_wf[4] + k_wf[5])) | $NGINX_WF_RPS | $NGINX_WF_P50 / $NGINX_WF_P99 | $NGINX_WF_CPU | $(verdict "${k_wf[0]}" "${k_wf[2]}" "$NGINX_WF_RPS") |")
  READ_ROWS+=("| $label | GET list ($WORKFLOWS workflows) | $(awk -v b="${!list_bytes_var}" 'BEGIN {printf "%.1f", b / 1024}') | ${k_list[0]} | ${k_list[1]} / ${k_list[2]} | ${k_list[3]} | ${k_list[8]} | ${k_list[6]} / ${k_list[7]} | $((k_list[4] + k_list[5])) | $NGINX_LIST_RPS | $NGINX_LIST_P50 / $NGINX_LIST_P99 | $NGINX_LIST_CPU | $(verdict "${k_list[0]}" "${k_list[2]}" "$NGINX_LIST_RPS") |")

  run_wrk "$label-kiln-submit" "$KILN_PID" "$KILN_URL/api/v1/workflows/bench-submit" "$T/submit.lua"
  local accepted recorded goal
  accepted=$(awk -v r="$W_REQ" -v n="$W_NON2XX" -v s="$W_SECS" 'BEGIN {printf "%.0f", (r - n) / s}')
  recorded=$(kb count "$KILN_URL" bench-submit) || recorded="?"
  if [ "$label" = postgresql ]; then
    goal=$([ "$accepted" -ge 500 ] && echo yes || echo no)
  else
    goal="(no goal)"
  fi
  SUBMIT_ROWS+=("| $label | $W_REQ | $W_NON2XX | $W_SOCKERR | $recorded | $accepted | $W_P50 / $W_P99 | $W_CPU_MS | $W_STORE_MS | $W_CORES / $W_TOP_THREAD | $goal |")
  stop_kiln
}

UPTIME_BEFORE=$(uptime)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
log "start $STARTED; $(nproc) CPUs; uptime: $UPTIME_BEFORE"
log "kiln $KILN ($("$KILN" version 2>/dev/null | head -n 1 || echo '?'))"

bench_store sqlite
PG_VERSION=""
if [ "$POSTGRES" = 1 ]; then
  # Sourced: starts PostgreSQL and exports KILN_TEST_POSTGRES_URL; it replaces the EXIT trap
  # with its own stop, so ours (which calls it) is put back.
  pg_started=1
  # shellcheck disable=SC1091
  source "$ROOT/scripts/with-postgres.sh" >&2 || pg_started=0
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  [ "$pg_started" = 1 ] || die "PostgreSQL did not start (scripts/with-postgres.sh)"
  PG_VERSION=$("$KILN_PG_BIN/postgres" --version | awk '{print $3}')
  STORE_PID=$(head -n 1 "$KILN_PG_DIR/data/postmaster.pid")
  bench_store postgresql --store "$KILN_TEST_POSTGRES_URL"
fi
UPTIME_AFTER=$(uptime)

# ---- the report ------------------------------------------------------------------------------------
report() {
  echo "Run of $STARTED, $(nproc) CPUs; wrk $("$WRK" -v 2>&1 | awk 'NR == 1 {print $2}') -t$THREADS -c$CONNECTIONS -d${DURATION}s --timeout 30s --latency;" \
    "nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') (worker_processes 2, access_log off, sendfile)${PG_VERSION:+; PostgreSQL $PG_VERSION (scripts/with-postgres.sh: fsync off)}."
  echo
  echo "- uptime before: \`${UPTIME_BEFORE#"${UPTIME_BEFORE%%[! ]*}"}\`"
  echo "- uptime after: \`${UPTIME_AFTER#"${UPTIME_AFTER%%[! ]*}"}\`"
  echo
  echo "Reads (nginx serves the SQLite run's answers as static files; its figures stand for both stores):"
  echo
  echo "| store | request | response KiB | kiln req/s | kiln p50 / p99 ms | kiln CPU ms/req | PostgreSQL CPU ms/req | kiln CPU % of a core: all / busiest thread (its run-queue wait %) | kiln errors | nginx req/s | nginx p50 / p99 ms | nginx CPU ms/req | kiln / nginx req/s | goal (>= 50%, p99 < 10 ms) |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${READ_ROWS[@]}"
  echo
  echo "Submissions (POST /api/v1/workflows/bench-submit, a workflow whose entrypoint is \`suspend: {}\`):"
  echo
  echo "| store | POSTs answered | non-2xx | socket errors | recorded (listed after) | accepted/s | p50 / p99 ms | kiln CPU ms/req | PostgreSQL CPU ms/req | kiln CPU % of a core: all / busiest thread (its run-queue wait %) | goal (>= 500/s on PostgreSQL) |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${SUBMIT_ROWS[@]}"
}
if [ -n "$OUT" ]; then report | tee "$OUT"; else report; fi
