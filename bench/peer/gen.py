#!/usr/bin/env python3
"""Write the peer-comparison workloads for make, ninja, a serial shell floor, and kiln (Argo).

The DAGs and step commands are those of the project's shared peer benchmark
(../shared/bench/gen.py, whose baseline figures cover snakemake and cwltool), so figures compare:
  w1 chain   : 200 steps in a line
  w2 fan     : 1 root -> 1000 independent steps -> 1 join   (1002 steps)
  w2s fan200 : 1 root -> 200 independent steps -> 1 join    (202 steps)
  w3 layered : 10 layers x 100 steps, each step of layer L>0 depends on 2 random distinct steps
               of layer L-1 (random.Random(42))              (1000 steps)
Step semantics (identical across engines):
  step without deps ("rNNNN"): echo x > out/<name>.out
  step with deps    ("sNNNN"): cat <dep outputs...> > out/<name>.out

kiln gets four manifests of the same DAG:
  argo/workflow.yaml       make's commands, run in the directory given by -p outdir=...; no resource
                           requests, so kiln's local executor admits every ready step at once (a
                           request of zero always fits, executor/resources.h)
  argo/workflow-cpu1.yaml  the same, each step requesting cpu: 1, so on 2 CPUs kiln runs 2 at a
                           time, as make -j2 does
  argo/private.yaml, argo/private-cpu1.yaml
                           for the sandbox: each step runs `sh -c "echo NAME > /tmp/out"`. In the
                           sandbox the host is read-only and /tmp private to the step, and kiln's
                           local executor binds no volumes, so the steps cannot share an output
                           directory; the DAG (depends) is the same, one sh process per step.

Unlike ../shared/bench/gen.py, spec.arguments gives outdir a placeholder value (`.`): `kiln run
-p outdir=...` refuses a workflow parameter without a value at lint time, before -p applies (a
kiln bug, reported in docs/benchmarks.md).

Usage: gen.py OUTROOT     writes OUTROOT/<wl>/{make,ninja,floor,argo}/ and OUTROOT/<wl>/NSTEPS
"""
import os
import random
import sys

SEED = 42


def chain(n=200):
    steps = [("r0000", [])]
    for i in range(1, n):
        steps.append((f"s{i:04d}", [steps[-1][0]]))
    return steps


def fan(width=1000):
    steps = [("r0000", [])]
    for i in range(1, width + 1):
        steps.append((f"s{i:04d}", ["r0000"]))
    steps.append((f"s{width + 1:04d}", [f"s{i:04d}" for i in range(1, width + 1)]))
    return steps


def layered(layers=10, width=100, seed=SEED):
    rng = random.Random(seed)
    steps = []
    prev = []
    idx = 0
    for layer in range(layers):
        cur = []
        for _ in range(width):
            if layer == 0:
                name = f"r{idx:04d}"
                deps = []
            else:
                name = f"s{idx:04d}"
                deps = sorted(rng.sample(prev, 2))
            steps.append((name, deps))
            cur.append(name)
            idx += 1
        prev = cur
    return steps


WORKLOADS = {"w1": chain, "w2s": lambda: fan(200), "w2": fan, "w3": layered}


def sinks(steps):
    used = {d for _, ds in steps for d in ds}
    return [n for n, _ in steps if n not in used]


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def gen_make(d, steps):
    lines = [".PHONY: all", "all: " + " ".join(f"out/{n}.out" for n in sinks(steps)), ""]
    for n, deps in steps:
        if deps:
            lines.append(f"out/{n}.out: " + " ".join(f"out/{x}.out" for x in deps))
            lines.append("\tcat $^ > $@")
        else:
            lines.append(f"out/{n}.out:")
            lines.append("\techo x > $@")
    write(os.path.join(d, "Makefile"), "\n".join(lines) + "\n")


def gen_ninja(d, steps):
    lines = ["rule root", "  command = echo x > $out", "rule step", "  command = cat $in > $out", ""]
    for n, deps in steps:
        if deps:
            lines.append(f"build out/{n}.out: step " + " ".join(f"out/{x}.out" for x in deps))
        else:
            lines.append(f"build out/{n}.out: root")
    lines.append("build all: phony " + " ".join(f"out/{n}.out" for n in sinks(steps)))
    lines.append("default all")
    write(os.path.join(d, "build.ninja"), "\n".join(lines) + "\n")


def gen_floor(d, steps):
    """Not an engine: the same commands run serially in topological order, each via /bin/sh -c."""
    lines = ["set -e"]
    for n, ds in steps:
        cmd = ("cat " + " ".join(f"out/{x}.out" for x in ds) if ds else "echo x") + f" > out/{n}.out"
        lines.append(f"/bin/sh -c '{cmd}'")
    write(os.path.join(d, "steps.sh"), "\n".join(lines) + "\n")


def gen_argo(path, steps, name, cpu=None, private=False):
    """The same DAG as an Argo Workflow: each task runs make's recipe with sh -c in `outdir`
    (private: writes its name to its own /tmp/out instead)."""
    res = [f"    resources: {{requests: {{cpu: \"{cpu}\"}}}}"] if cpu else []
    root_cmd = "echo {{inputs.parameters.name}} > /tmp/out" if private else \
        "cd {{workflow.parameters.outdir}} && echo x > {{inputs.parameters.name}}.out"
    step_cmd = "echo {{inputs.parameters.name}} > /tmp/out" if private else \
        "cd {{workflow.parameters.outdir}} && cat {{inputs.parameters.deps}} > {{inputs.parameters.name}}.out"
    lines = [
        "apiVersion: argoproj.io/v1alpha1",
        "kind: Workflow",
        "metadata:",
        f"  generateName: peer-{name}-",
        "spec:",
        "  entrypoint: main",
        "  arguments:",
        "    parameters:",
        "    - name: outdir",
        # run.py passes -p outdir=...; the placeholder value is only there because `kiln run`
        # lints before it applies -p, and refuses a parameter without a value (a kiln bug).
        "      value: .",
        "  templates:",
        "  - name: root",
        "    inputs: {parameters: [{name: name}]}",
        "    container:",
        "      image: busybox",
        "      command: [sh, -c]",
        "      args: [\"" + root_cmd + "\"]",
        *["  " + r for r in res],
        "  - name: step",
        "    inputs: {parameters: [{name: name}, {name: deps}]}",
        "    container:",
        "      image: busybox",
        "      command: [sh, -c]",
        "      args: [\"" + step_cmd + "\"]",
        *["  " + r for r in res],
        "  - name: main",
        "    dag:",
        "      tasks:",
    ]
    for n, ds in steps:
        lines.append(f"      - name: {n}")
        if ds:
            lines.append("        template: step")
            lines.append("        depends: " + repr(" && ".join(ds)))
            lines.append("        arguments: {parameters: [{name: name, value: %s}, {name: deps, value: %r}]}"
                         % (n, " ".join(f"{x}.out" for x in ds)))
        else:
            lines.append("        template: root")
            lines.append(f"        arguments: {{parameters: [{{name: name, value: {n}}}]}}")
    write(path, "\n".join(lines) + "\n")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen.py OUTROOT")
    root = sys.argv[1]
    for wl, fn in WORKLOADS.items():
        steps = fn()
        base = os.path.join(root, wl)
        gen_make(os.path.join(base, "make"), steps)
        gen_ninja(os.path.join(base, "ninja"), steps)
        gen_floor(os.path.join(base, "floor"), steps)
        gen_argo(os.path.join(base, "argo", "workflow.yaml"), steps, wl)
        gen_argo(os.path.join(base, "argo", "workflow-cpu1.yaml"), steps, wl, cpu=1)
        gen_argo(os.path.join(base, "argo", "private.yaml"), steps, wl, private=True)
        gen_argo(os.path.join(base, "argo", "private-cpu1.yaml"), steps, wl, cpu=1, private=True)
        write(os.path.join(base, "NSTEPS"), f"{len(steps)}\n")


if __name__ == "__main__":
    main()
