#!/usr/bin/env bash
# The main job on the embedded defaults, from a fresh machine: install, start the local Kafka on
# ${KAFKA_PORT:-9092}, serve the bundled sample feeds on loopback, run the job on the DirectRunner,
# print a summary and how to read the topics. Extra arguments go to `newsingest demo` (Beam options).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash deploy/install.sh --no-prism --no-flink
exec newsingest demo --kafka-port "${KAFKA_PORT:-9092}" "$@"
