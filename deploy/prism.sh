#!/usr/bin/env bash
# The Prism runner binary for real local streaming, built with `go install` at the version of the
# installed apache-beam (Beam's Python SDK would otherwise try to download it at run time).
#   deploy/prism.sh install   build it unless present; prints nothing on success
#   deploy/prism.sh path      print the binary's path (what --prism_location takes)
set -euo pipefail
BEAM_VERSION="$(python3 -c 'import apache_beam; print(apache_beam.__version__)')"
GOBIN_DIR="$(go env GOPATH)/bin"
BIN="$GOBIN_DIR/prism-v$BEAM_VERSION"

case "${1:-path}" in
  install)
    if [[ ! -x "$BIN" ]]; then
      tmp="$(mktemp -d)"
      GOBIN="$tmp" go install "github.com/apache/beam/sdks/v2/go/cmd/prism@v$BEAM_VERSION"
      mkdir -p "$GOBIN_DIR"
      mv "$tmp/prism" "$BIN"
      rmdir "$tmp"
    fi ;;
  path) echo "$BIN" ;;
  *) echo "usage: prism.sh install|path" >&2; exit 2 ;;
esac
