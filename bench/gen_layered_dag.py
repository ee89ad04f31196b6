#!/usr/bin/env python3
"""Write an Argo Workflow with one large layered DAG, for benchmarking kiln.

Usage: gen_layered_dag.py N [--layers L] [-o FILE]

One dag template of N tasks in L layers (default: layers of 100 tasks). Each task after the
first layer depends on 1-3 distinct tasks of the layer before (`depends: "a && b"`) and passes
one parent's output parameter ({{tasks.<parent>.outputs.parameters.out}}) as its `msg` input to a
script template that declares input `msg` and output `out` (valueFrom.path), as an Argo user's
DAG would. Deterministic: a 64-bit LCG seeded with 42, the same as bench/dag_bench.cc, so
`dag_bench --yaml N` prints the same bytes as `gen_layered_dag.py N`.
"""
import argparse
import math
import sys

MASK = (1 << 64) - 1


class Lcg:
    def __init__(self, seed=42):
        self.state = seed

    def next(self):
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) & MASK
        return self.state >> 33


def task_name(layer, i):
    return f"t{layer}-{i}"


def generate(n, width):
    out = [
        "apiVersion: argoproj.io/v1alpha1\n",
        "kind: Workflow\n",
        "metadata:\n",
        "  generateName: layered-\n",
        "spec:\n",
        "  entrypoint: main\n",
        "  templates:\n",
        "  - name: main\n",
        "    dag:\n",
        "      tasks:\n",
    ]
    rng = Lcg()
    for k in range(n):
        layer, i = divmod(k, width)
        out.append(f"      - name: {task_name(layer, i)}\n")
        msg = f"seed-{i}"
        if layer > 0:
            parents = min(1 + rng.next() % 3, width)
            picked = []
            while len(picked) < parents:
                p = rng.next() % width
                if p not in picked:
                    picked.append(p)
            deps = " && ".join(task_name(layer - 1, p) for p in picked)
            out.append(f'        depends: "{deps}"\n')
            msg = "{{tasks." + task_name(layer - 1, picked[0]) + ".outputs.parameters.out}}"
        out.append("        template: work\n"
                   "        arguments:\n"
                   "          parameters:\n"
                   "          - name: msg\n"
                   f'            value: "{msg}"\n')
    out.append("  - name: work\n"
               "    inputs:\n"
               "      parameters:\n"
               "      - name: msg\n"
               "    outputs:\n"
               "      parameters:\n"
               "      - name: out\n"
               "        valueFrom:\n"
               "          path: /tmp/out\n"
               "    script:\n"
               "      image: python:3.12-alpine\n"
               "      command: [python]\n"
               "      source: |\n"
               '        msg = "{{inputs.parameters.msg}}"\n'
               '        open("/tmp/out", "w").write(msg[:8] + "-ok")\n')
    return "".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int, help="number of tasks")
    ap.add_argument("--layers", type=int, help="number of layers (default: N/100)")
    ap.add_argument("-o", "--output", help="output file (default: stdout)")
    args = ap.parse_args()
    if args.n < 1:
        ap.error("N must be at least 1")
    width = 100 if not args.layers else max(1, math.ceil(args.n / args.layers))
    text = generate(args.n, width)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
