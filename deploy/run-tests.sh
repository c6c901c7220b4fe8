#!/usr/bin/env bash
# The whole test suite from a fresh machine: install everything (Python packages, Kafka jars through
# Maven, Prism through go install), then pytest. The tests start and stop their own Kafka broker on
# a free port and their own HTTP servers on loopback. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash deploy/install.sh
export PRISM_LOCATION="${PRISM_LOCATION:-$(bash deploy/prism.sh path)}"
set +e
python3 -m pytest "$@"
rc=$?
set -e
if [[ $rc == 5 ]]; then
  echo "run-tests: pytest collected no tests" >&2
  exit 1
fi
exit $rc
