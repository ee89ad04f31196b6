#!/usr/bin/env bash
# The main job: install what is missing, build, lint the example pipelines, then run the ML
# pipeline (examples/workflows/train-evaluate.yaml) on this machine with the local executor and
# the embedded store. Exit status: 0 when the workflow Succeeded.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
./build/kiln lint examples/workflows
./build/kiln run examples/workflows/train-evaluate.yaml
