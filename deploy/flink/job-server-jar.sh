#!/usr/bin/env bash
# A Beam Flink job server for local runs (`--flink_master=[local]`, embedded Flink), from Maven
# Central jars. Prints the path to give Beam as --flink_job_server_jar.
#
#   deploy/flink/job-server-jar.sh          resolve once (cached), print the launcher jar's path
#   deploy/flink/job-server-jar.sh --flink-version   print the Flink version it embeds (for --flink_version)
#
# The shaded beam-runners-flink-<v>-job-server jar is not served by the Maven Central these
# machines reach, so deploy/flink/pom.xml resolves the runner module with its dependencies into
# deploy/flink/.lib/jars and this script writes a small launcher jar beside them whose manifest has
# Main-Class FlinkJobServerDriver and a Class-Path naming every jar: `java -jar launcher.jar` (what
# Beam runs) then starts the job server. Re-resolved only when pom.xml changes.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$SCRIPT_DIR/pom.xml"
LIB_DIR="${FLINK_JOB_SERVER_DIR:-$SCRIPT_DIR/.lib}"
JARS_DIR="$LIB_DIR/jars"
LAUNCHER="$LIB_DIR/beam-flink-job-server.jar"

die() { echo "job-server-jar.sh: $*" >&2; exit 1; }

pom_property() {  # the text of <NAME> in pom.xml's properties
  sed -n "s:.*<$1>\(.*\)</$1>.*:\1:p" "$POM" | head -n 1
}

case "${1:-}" in
  --flink-version) pom_property flink.major; exit 0 ;;
  --beam-version) pom_property beam.version; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--flink-version|--beam-version]" >&2; exit 2 ;;
esac

write_launcher() {  # $1 = jars dir, $2 = launcher path; manifest lines wrap at 72 bytes
  python3 - "$1" "$2" <<'EOF'
import os, sys, zipfile

jars_dir, launcher = sys.argv[1], sys.argv[2]
rel = os.path.relpath(jars_dir, os.path.dirname(launcher))
class_path = " ".join(f"{rel}/{name}" for name in sorted(os.listdir(jars_dir)) if name.endswith(".jar"))


def wrap(line: str) -> bytes:
    data, out = line.encode(), []
    out.append(data[:72])
    data = data[72:]
    while data:
        out.append(b" " + data[:71])
        data = data[71:]
    return b"\r\n".join(out) + b"\r\n"


manifest = b"".join(wrap(l) for l in (
    "Manifest-Version: 1.0",
    "Main-Class: org.apache.beam.runners.flink.FlinkJobServerDriver",
    "Class-Path: " + class_path,
)) + b"\r\n"
tmp = launcher + ".tmp"
with zipfile.ZipFile(tmp, "w") as zf:
    zf.writestr("META-INF/MANIFEST.MF", manifest)
os.replace(tmp, launcher)
EOF
}

resolve() {
  command -v mvn >/dev/null || die "mvn not found (Maven 3 and Java 17 are needed)"
  mkdir -p "$LIB_DIR"
  local want; want="$(sha256sum "$POM" | cut -d' ' -f1)"
  (
    flock 9   # parallel test workers share one .lib
    if [ "$(cat "$LIB_DIR/pom.sha256" 2>/dev/null || true)" = "$want" ] && [ -s "$LAUNCHER" ]; then
      exit 0
    fi
    echo "job-server-jar.sh: resolving the Beam Flink runner from Maven Central (one-time, ~150 MB) ..." >&2
    local tmp="$LIB_DIR/jars.tmp.$$"
    rm -rf "$tmp"
    if ! mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$LIB_DIR/mvn.log" 2>&1; then
      tail -n 30 "$LIB_DIR/mvn.log" >&2
      rm -rf "$tmp"
      die "maven dependency resolution failed (full output: $LIB_DIR/mvn.log)"
    fi
    rm -rf "$JARS_DIR"
    mv "$tmp" "$JARS_DIR"
    write_launcher "$JARS_DIR" "$LAUNCHER"
    echo "$want" > "$LIB_DIR/pom.sha256"
  ) 9>"$LIB_DIR/.lock"
}

resolve
echo "$LAUNCHER"
