#!/usr/bin/env python3
"""kubesim under load: N Jobs with simulated pods through their whole lifecycle.

Starts kubesim (plain HTTP), opens a watch on the namespace's Jobs, creates N Jobs one after
another over one keep-alive connection (each Job: one pod, kubesim.kiln.dev/duration 0s), and
waits until the watch has seen every Job Complete. Reports:
  - Jobs per second through the lifecycle: N / (first POST sent .. last Complete seen);
  - create throughput alone (N / time to send all POSTs);
  - watch delivery latency: POST sent -> its ADDED event read from the watch (p50/p99/max);
  - create -> Complete seen per Job (p50/p99/max);
  - kubesim's peak resident memory (VmHWM) and CPU time, from /proc.

Usage: bench/kubesim_jobs.py KUBESIM_BINARY [N] [--cluster FILE]
Standard library only; no client library between the numbers and the wire.
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TOKEN = "bench-token"


def job_body(name):
    return json.dumps({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {
            "metadata": {"annotations": {"kubesim.kiln.dev/duration": "0s"}},
            "spec": {"restartPolicy": "Never",
                     "containers": [{"name": "main", "image": "busybox"}]}}}})


def proc_stats(pid):
    peak_kib = rss_kib = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak_kib = int(line.split()[1])
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu_s = (int(fields[11]) + int(fields[12])) / ticks
    return peak_kib / 1024, rss_kib / 1024, cpu_s


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kubesim")
    ap.add_argument("n", nargs="?", type=int, default=10000)
    ap.add_argument("--cluster", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "kubesim", "clusters",
        "cpu-only.yaml"))
    args = ap.parse_args()
    n = args.n

    tmp = tempfile.mkdtemp(prefix="kubesim-bench-")
    kubeconfig = os.path.join(tmp, "kubeconfig")
    proc = subprocess.Popen([args.kubesim, "--cluster", args.cluster, "--plain", "--token", TOKEN,
                             "--watch-history", str(20 * n + 1000),
                             "--write-kubeconfig", kubeconfig],
                            stderr=open(os.path.join(tmp, "kubesim.log"), "w"))
    try:
        deadline = time.time() + 30
        while not os.path.exists(kubeconfig):  # a benchmark, not a test: polling is fine
            if time.time() > deadline or proc.poll() is not None:
                sys.exit("kubesim did not start")
            time.sleep(0.05)
        with open(kubeconfig) as f:
            server = next(l.split("server: ")[1].strip() for l in f if "server: " in l)
        host, port = server.removeprefix("http://").rsplit(":", 1)
        headers = {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"}
        base = "/apis/batch/v1/namespaces/default/jobs"

        conn = http.client.HTTPConnection(host, int(port))
        conn.request("GET", base, headers=headers)
        rv = json.loads(conn.getresponse().read())["metadata"]["resourceVersion"]

        added = {}
        complete = {}
        done = threading.Event()

        def watch():
            w = http.client.HTTPConnection(host, int(port))
            w.request("GET", f"{base}?watch=1&resourceVersion={rv}", headers=headers)
            res = w.getresponse()
            while True:
                line = res.readline()
                if not line:
                    break
                now = time.perf_counter()
                event = json.loads(line)
                obj = event["object"]
                name = obj["metadata"]["name"]
                if event["type"] == "ADDED":
                    added.setdefault(name, now)
                for c in obj.get("status", {}).get("conditions", []):
                    if c["type"] == "Complete" and c["status"] == "True":
                        complete.setdefault(name, now)
                if len(complete) == n:
                    done.set()
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()

        sent = {}
        start = time.perf_counter()
        for i in range(n):
            name = f"bench-{i:06d}"
            sent[name] = time.perf_counter()
            conn.request("POST", base, body=job_body(name), headers=headers)
            res = conn.getresponse()
            body = res.read()
            if res.status != 201:
                sys.exit(f"create {name}: {res.status} {body[:200]!r}")
        created = time.perf_counter()
        if not done.wait(timeout=max(600, n / 5)):
            sys.exit(f"only {len(complete)} of {n} Jobs completed")
        end = max(complete.values())
        peak_mib, rss_mib, cpu_s = proc_stats(proc.pid)

        watch_latency = [(added[k] - sent[k]) * 1000 for k in sent if k in added]
        lifecycle = [(complete[k] - sent[k]) * 1000 for k in sent]
        print(json.dumps({
            "jobs": n,
            "lifecycle_jobs_per_s": round(n / (end - start), 1),
            "create_jobs_per_s": round(n / (created - start), 1),
            "wall_s": round(end - start, 2),
            "watch_added_latency_ms": {"p50": round(pct(watch_latency, .5), 2),
                                       "p99": round(pct(watch_latency, .99), 2),
                                       "max": round(max(watch_latency), 2)},
            "create_to_complete_ms": {"p50": round(pct(lifecycle, .5), 1),
                                      "p99": round(pct(lifecycle, .99), 1),
                                      "max": round(max(lifecycle), 1)},
            "kubesim_peak_rss_mib": round(peak_mib, 1),
            "kubesim_rss_end_mib": round(rss_mib, 1),
            "kubesim_cpu_s": round(cpu_s, 2),
        }, indent=1))
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
