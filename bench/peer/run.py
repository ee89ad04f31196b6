#!/usr/bin/env python3
"""Per-step overhead of kiln against make, ninja and a serial shell floor, in the same run.

Usage: run.py --kiln PATH [--runs N] [--engines RE] [--workloads RE] [--work DIR] [--out FILE]

Generates the workloads (gen.py) under --work (default: a fresh /tmp/kiln-peer-XXXX), then runs
every engine on every workload N times (default 5), round-robin (run 1 of every engine, then run
2, ...) so that load drifting on a shared machine hits every engine alike. Each run starts from a
clean output directory (and, for kiln, a fresh --data-dir under the work directory) and is
timed with a monotonic clock; GNU time reports its CPU time (user+sys, children included) and
peak RSS. Every run is checked: exit status 0 and one output file per step (see engines()).

kiln runs make's commands (workflow.yaml) only without the sandbox: in the sandbox the host is
read-only and /tmp private to each step, and kiln's local executor binds no volumes, so steps
cannot write a shared output directory. The sandbox rows therefore run private.yaml (the same DAG,
one `sh -c "echo NAME > /tmp/out"` per step), and so does one row without the sandbox, so that
the sandbox's own cost is the difference between two rows of the same manifest.

Figures follow ../shared/bench/README.md: ms/step = median wall time / steps. The steps are
trivial (echo/cat), so their own work on the critical path is negligible and the wall time is
orchestration overhead (process start included, as for every engine).

Prints a markdown table (and writes it to --out when given).
"""
import argparse
import glob
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = ["w1", "w2s", "w3", "w2"]
WL_NAME = {"w1": "W1 chain 200", "w2s": "W2s fan-200", "w2": "W2 fan-1000", "w3": "W3 layered 10x100"}


def engines(kiln):
    # name, directory under <wl>/, command (run in that directory; {data}: a fresh data dir,
    # {dir}: the directory), check: "out" (one out/*.out per step), "private" (one /tmp/out per
    # step, in the steps' private /tmp dirs under the data dir), "rc" (exit status only: without
    # the sandbox, private.yaml's steps all write the host's /tmp/out)
    k = f"{kiln} run --data-dir {{data}} -p outdir={{dir}}/out"
    return [
        ("make -j2", "make", "make -j2 --quiet", "out"),
        ("ninja -j2", "ninja", "ninja -j2 --quiet", "out"),
        ("floor_sh (serial)", "floor", "bash steps.sh", "out"),
        ("kiln --no-sandbox", "argo", f"{k} --no-sandbox workflow.yaml", "out"),
        ("kiln --no-sandbox, cpu: 1", "argo", f"{k} --no-sandbox workflow-cpu1.yaml", "out"),
        ("kiln --no-sandbox, private.yaml", "argo", f"{k} --no-sandbox private.yaml", "rc"),
        ("kiln (sandbox), private.yaml", "argo", f"{k} private.yaml", "private"),
        ("kiln (sandbox), private.yaml, cpu: 1", "argo", f"{k} private-cpu1.yaml", "private"),
        ("kiln --no-sandbox --durability process, private.yaml", "argo",
         f"{k} --no-sandbox --durability process private.yaml", "rc"),
        ("kiln (sandbox) --durability process, private.yaml", "argo",
         f"{k} --durability process private.yaml", "private"),
    ]


def run_once(workdir, wl, edir, cmd, check, log):
    d = os.path.join(workdir, wl, edir)
    shutil.rmtree(os.path.join(d, "out"), ignore_errors=True)
    for junk in (".ninja_log", ".ninja_deps"):
        if os.path.exists(os.path.join(d, junk)):
            os.remove(os.path.join(d, junk))
    os.makedirs(os.path.join(d, "out"))
    data = os.path.join(workdir, "kiln-data")
    shutil.rmtree(data, ignore_errors=True)
    full = cmd.format(data=data, dir=d)
    tfile = os.path.join(workdir, "time.txt")
    with open(log, "w") as out:
        t0 = time.perf_counter()
        rc = subprocess.call(["/usr/bin/time", "-f", "%U %S %M", "-o", tfile, "timeout", "600", "sh", "-c", full],
                             cwd=d, stdout=out, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - t0
    user, sys_, rss_kb = open(tfile).read().split()[-3:]
    if check == "out":
        outputs = len([f for f in os.listdir(os.path.join(d, "out")) if f.endswith(".out")])
    elif check == "private":
        outputs = len(glob.glob(os.path.join(data, "workflows", "*", "steps", "*", "tmp", "out")))
    else:
        outputs = None
    return dict(rc=rc, wall=wall, cpu=float(user) + float(sys_), rss=int(rss_kb) / 1024, outputs=outputs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kiln", required=True, help="the kiln binary")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--engines", default=".*", help="regex over engine names")
    ap.add_argument("--workloads", default=".*", help="regex over w1, w2s, w2, w3")
    ap.add_argument("--work", help="work directory (default: a fresh one under /tmp)")
    ap.add_argument("--out", help="also write the markdown table here")
    args = ap.parse_args()
    kiln = os.path.abspath(args.kiln)
    workdir = args.work or tempfile.mkdtemp(prefix="kiln-peer-")
    subprocess.check_call([sys.executable, os.path.join(HERE, "gen.py"), workdir])
    wls = [w for w in WORKLOADS if re.fullmatch(args.workloads, w)]
    engs = [e for e in engines(kiln) if re.search(args.engines, e[0])]
    results = {}
    failures = []
    for r in range(args.runs):
        for wl in wls:
            steps = int(open(os.path.join(workdir, wl, "NSTEPS")).read())
            for e, (name, edir, cmd, check) in enumerate(engs):
                log = os.path.join(workdir, f"{wl}.engine{e}.run{r + 1}.log")
                res = run_once(workdir, wl, edir, cmd, check, log)
                ok = res["rc"] == 0 and res["outputs"] in (None, steps)
                print(f"run {r + 1}/{args.runs} {wl} {name}: {res['wall']:.3f} s wall, {res['cpu']:.3f} s cpu, "
                      f"rc={res['rc']} outputs={res['outputs']}/{steps}" + ("" if ok else f"  FAILED, log: {log}"),
                      file=sys.stderr, flush=True)
                if not ok:
                    failures.append(f"{wl} {name}: rc={res['rc']} outputs={res['outputs']}/{steps} (log {log})")
                results.setdefault((wl, name), []).append(dict(res, ok=ok, steps=steps))

    lines = ["| workload | engine | steps | runs ok | wall median s (min-max) | ms/step (wall) | "
             "CPU ms/step (user+sys) | peak RSS MiB |",
             "|---|---|---|---|---|---|---|---|"]
    per_step = {}
    for wl in wls:
        for name, _, _, _ in engs:
            rs = results.get((wl, name))
            if not rs:
                continue
            walls = [x["wall"] for x in rs]
            steps = rs[0]["steps"]
            med = statistics.median(walls)
            per_step[(wl, name)] = 1000 * med / steps
            cpu = 1000 * statistics.median(x["cpu"] for x in rs) / steps
            lines.append(f"| {WL_NAME[wl]} | {name} | {steps} | {sum(x['ok'] for x in rs)}/{len(rs)} | "
                         f"{med:.3f} ({min(walls):.3f}-{max(walls):.3f}) | {per_step[(wl, name)]:.2f} | "
                         f"{cpu:.2f} | {max(x['rss'] for x in rs):.0f} |")
    # Goals: kiln without the sandbox <= 1.5x make -j2; with it <= make -j2 + 5 ms per step.
    goal = ["", "| workload | kiln variant | ms/step | make -j2 ms/step | goal | met |", "|---|---|---|---|---|---|"]
    for wl in wls:
        mk = per_step.get((wl, "make -j2"))
        if mk is None:
            continue
        for name, _, _, _ in engs:
            if not name.startswith("kiln") or (wl, name) not in per_step:
                continue
            k = per_step[(wl, name)]
            if "--no-sandbox" in name:
                g, met = f"<= 1.5 x make = {1.5 * mk:.2f}", k <= 1.5 * mk
            else:
                g, met = f"<= make + 5 = {mk + 5:.2f}", k <= mk + 5
            goal.append(f"| {WL_NAME[wl]} | {name} | {k:.2f} | {mk:.2f} | {g} | {'yes' if met else 'no'} |")
    text = "\n".join(lines + goal) + "\n"
    if failures:
        text += "\nFailed runs:\n" + "".join(f"- {f}\n" for f in failures)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(f"work directory: {workdir}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
