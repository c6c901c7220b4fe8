#!/usr/bin/env bash
# Install everything news-ingest needs on a fresh machine, idempotently:
#   - the Python package with its pinned dependencies and the test extra (pip, editable)
#   - the local Kafka's jars (Maven Central, cached in deploy/kafka/.lib)
#   - the Beam Flink job server's jars (Maven Central, cached in deploy/flink/.lib)
#   - the Prism runner binary (go install, version matched to apache-beam) into $(go env GOPATH)/bin
#   - kcat, when apt is available and it is missing (optional: only the README's read-back uses it)
# Usage: bash deploy/install.sh [--no-prism] [--no-flink] [--no-kcat]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

want_prism=1; want_flink=1; want_kcat=1
for arg in "$@"; do
  case "$arg" in
    --no-prism) want_prism=0 ;;
    --no-flink) want_flink=0 ;;
    --no-kcat) want_kcat=0 ;;
    *) echo "install.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

PY="${PYTHON:-python3}"
echo "== Python packages"
"$PY" -m pip install --disable-pip-version-check -q -e ".[test,avro]"

echo "== Kafka jars (Maven Central)"
bash deploy/kafka/kafka.sh classpath >/dev/null

if [[ $want_flink == 1 ]]; then
  echo "== Flink job-server jars (Maven Central)"
  bash deploy/flink/job-server-jar.sh >/dev/null
fi

if [[ $want_prism == 1 ]]; then
  echo "== Prism runner (go install)"
  bash deploy/prism.sh install >/dev/null
  bash deploy/prism.sh path
fi

if [[ $want_kcat == 1 ]] && ! command -v kcat >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
    echo "== kcat (apt)"
    (apt-get update -qq && apt-get install -y -qq kcat >/dev/null) || echo "kcat not installed (optional)"
  else
    echo "kcat not found; install it to read topics from the shell (optional)"
  fi
fi
echo "== installed"
