#!/usr/bin/env bash
# The main job: install what is missing, build, and lint the example ML pipelines.
# (Issue "Execution engine" turns this into running examples/workflows/train-evaluate.yaml.)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
./build/kiln lint examples/workflows
