#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, broker+controller in one JVM) for news-ingest,
# run from Maven Central jars (no Kafka tarball, no Docker).
#
# Usage: deploy/kafka/kafka.sh start|stop|status|restart|classpath [--port N] [--dir DIR]
#
#   start      resolve jars (first run only), write config, format storage (first run only),
#              start the broker in the background and wait until it is ready.
#              Prints "kafka ready on 127.0.0.1:PORT". Already running -> exit 0.
#   stop       SIGTERM, wait up to 30 s, then SIGKILL. Not running -> exit 0.
#   status     prints "running ..." (exit 0) or "stopped ..." (exit 3).
#   restart    stop + start.
#   classpath  print the broker classpath (resolving jars if needed).
#
# Options / environment (option wins over env var):
#   --port N  / KAFKA_PORT             client (PLAINTEXT) port, default 9092
#   --dir DIR / KAFKA_HOME_DIR         state dir (config, data, logs, pid), default deploy/kafka/.run
#               KAFKA_CONTROLLER_PORT  KRaft controller port, default port+1
#               KAFKA_HEAP_OPTS        default "-Xmx512m -Xms256m"
#               KAFKA_JVM_OPTS         extra JVM options
#               KAFKA_READY_TIMEOUT    seconds to wait for readiness, default 60
#               JAVA_HOME              java to use (needs Java 17+), else `java` on PATH
# If no port is given, a state dir that was started before reuses its previous ports.
# Several instances can run side by side with different --dir and --port.
# Jars are cached in deploy/kafka/.lib and re-resolved only when pom.xml changes.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$SCRIPT_DIR/pom.xml"
LOG4J_CONF="$SCRIPT_DIR/log4j2.properties"
LIB_DIR="$SCRIPT_DIR/.lib"
JARS_DIR="$LIB_DIR/jars"
HOST=127.0.0.1

die() { echo "kafka.sh: $*" >&2; exit 1; }

# ---------------------------------------------------------------- arguments
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
CMD="${1:-}"
[ $# -gt 0 ] && shift
case "$CMD" in -h|--help|help) usage; exit 0 ;; esac
OPT_PORT="" OPT_DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --port) [ $# -ge 2 ] || die "--port needs a value"; OPT_PORT="$2"; shift 2 ;;
    --port=*) OPT_PORT="${1#*=}"; shift ;;
    --dir) [ $# -ge 2 ] || die "--dir needs a value"; OPT_DIR="$2"; shift 2 ;;
    --dir=*) OPT_DIR="${1#*=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
done

STATE_DIR="${OPT_DIR:-${KAFKA_HOME_DIR:-$SCRIPT_DIR/.run}}"
mkdir -p "$STATE_DIR"
STATE_DIR="$(cd "$STATE_DIR" && pwd)"
PID_FILE="$STATE_DIR/kafka.pid"
PORTS_FILE="$STATE_DIR/ports"          # ports of the last start (reused by default)
PROPS="$STATE_DIR/server.properties"
DATA_DIR="$STATE_DIR/data"
LOG_FILE="$STATE_DIR/kafka.log"
OUT_FILE="$STATE_DIR/kafka.out"        # JVM stdout/stderr (crashes before log4j is up)

PREV_PORT="" PREV_CPORT=""
if [ -f "$PORTS_FILE" ]; then
  read -r PREV_PORT PREV_CPORT < "$PORTS_FILE" || true
fi
KAFKA_PORT_SET="${KAFKA_PORT:-}"
PORT="${OPT_PORT:-${KAFKA_PORT:-${PREV_PORT:-9092}}}"
if [ -n "${KAFKA_CONTROLLER_PORT:-}" ]; then
  CPORT="$KAFKA_CONTROLLER_PORT"
elif [ -z "$OPT_PORT" ] && [ -z "${KAFKA_PORT:-}" ] && [ -n "$PREV_CPORT" ]; then
  CPORT="$PREV_CPORT"
else
  CPORT=$((PORT + 1))
fi
[[ "$PORT" =~ ^[0-9]+$ && "$CPORT" =~ ^[0-9]+$ ]] || die "bad port: $PORT / $CPORT"

JAVA="java"
[ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ] && JAVA="$JAVA_HOME/bin/java"

# ---------------------------------------------------------------- helpers
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }

# pid of this state dir's broker if it is alive (and really our kafka.Kafka), else empty
running_pid() {
  [ -f "$PID_FILE" ] || return 0
  local pid; pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "kafka.Kafka $PROPS" || return 0
  echo "$pid"
}

# Resolve the jars from Maven Central once; redo only if pom.xml changed or jars are missing.
resolve_jars() {
  command -v mvn >/dev/null || die "mvn not found"
  mkdir -p "$LIB_DIR"
  local want; want="$(sha256sum "$POM" | cut -d' ' -f1)"
  (
    flock 9   # concurrent starts of several instances share one .lib
    if [ "$(cat "$LIB_DIR/pom.sha256" 2>/dev/null || true)" = "$want" ] && [ -d "$JARS_DIR" ] &&
       ls "$JARS_DIR"/kafka_2.13-*.jar >/dev/null 2>&1; then
      exit 0
    fi
    echo "kafka.sh: resolving Kafka jars from Maven Central (one-time) ..." >&2
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
    echo "$want" > "$LIB_DIR/pom.sha256"
  ) 9>"$LIB_DIR/.lock"
}

classpath() {
  local cp="" j
  for j in "$JARS_DIR"/*.jar; do cp="${cp:+$cp:}$j"; done
  echo "$cp"
}

check_java() {
  command -v "$JAVA" >/dev/null || die "java not found (set JAVA_HOME)"
  local v
  v="$("$JAVA" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/{print $2}')"
  [ "${v%%.*}" -ge 17 ] 2>/dev/null || die "Kafka 4.x needs Java 17+, found '${v:-unknown}' ($JAVA)"
}

write_config() {
  cat > "$PROPS" <<EOF
# Generated by deploy/kafka/kafka.sh -- rewritten on every start, do not edit.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$CPORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA_DIR

# single node: every internal topic has replication factor 1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1

group.initial.rebalance.delay.ms=0
num.partitions=1
auto.create.topics.enable=true
delete.topic.enable=true

# small footprint for a dev box
log.retention.hours=24
log.retention.bytes=268435456
log.segment.bytes=33554432
log.retention.check.interval.ms=60000
num.network.threads=2
num.io.threads=4
EOF
}

format_storage() {
  [ -f "$DATA_DIR/meta.properties" ] && return 0
  local cp="$1" id
  id="$("$JAVA" -cp "$cp" kafka.tools.StorageTool random-uuid 2>>"$OUT_FILE" | tail -n1)"
  [ -n "$id" ] || die "could not generate a cluster id (see $OUT_FILE)"
  "$JAVA" -cp "$cp" kafka.tools.StorageTool format --standalone -t "$id" -c "$PROPS" >>"$OUT_FILE" 2>&1 ||
    { tail -n 20 "$OUT_FILE" >&2; die "storage format failed"; }
}

# print what this start attempt logged (kafka.log from byte offset $1, plus JVM stdout/stderr)
show_log_tail() {
  echo "--- $LOG_FILE (last 30 lines) ---" >&2
  tail -c +"$(($1 + 1))" "$LOG_FILE" 2>/dev/null | tail -n 30 >&2 || true
  echo "--- $OUT_FILE (last 10 lines) ---" >&2
  tail -n 10 "$OUT_FILE" >&2 2>/dev/null || true
}

# ---------------------------------------------------------------- commands
do_start() {
  # serialize concurrent starts of the same state dir (the 2nd one then sees "already running")
  exec 8>"$STATE_DIR/.start.lock"
  flock 8
  local pid
  pid="$(running_pid)"
  if [ -n "$pid" ]; then
    local rport="$PORT" _c
    [ -f "$PORTS_FILE" ] && read -r rport _c < "$PORTS_FILE"   # re-read: may be written by a start we waited for
    if port_open "$rport"; then
      echo "kafka already running (pid $pid) on $HOST:$rport"
      [ -z "$OPT_PORT$KAFKA_PORT_SET" ] || [ "$rport" = "$PORT" ] || echo "kafka.sh: note: requested port $PORT ignored; stop it first to change ports" >&2
      exit 0
    fi
    die "kafka process $pid exists but port $rport is not accepting connections (still starting? try 'stop' first)"
  fi
  rm -f "$PID_FILE"

  # `format --standalone` records the controller endpoint in the metadata log. A single-node
  # quorum still starts fine on a new controller port (tested), but say so.
  if [ -f "$DATA_DIR/meta.properties" ] && [ -n "$PREV_CPORT" ] && [ "$PREV_CPORT" != "$CPORT" ]; then
    echo "kafka.sh: note: controller port changed $PREV_CPORT -> $CPORT for existing $DATA_DIR" >&2
  fi
  local p
  for p in "$PORT" "$CPORT"; do
    port_open "$p" && die "port $p is already in use on $HOST"
  done

  check_java
  resolve_jars
  local cp; cp="$(classpath)"
  mkdir -p "$DATA_DIR"
  write_config
  format_storage "$cp"
  echo "$PORT $CPORT" > "$PORTS_FILE"

  # remember where the log ends now, so only this start's "started" line counts
  local offset=0
  [ -f "$LOG_FILE" ] && offset="$(stat -c %s "$LOG_FILE")"
  local t0=$SECONDS
  # shellcheck disable=SC2086
  nohup "$JAVA" ${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m} -XX:+UseG1GC -Djava.awt.headless=true \
      ${KAFKA_JVM_OPTS:-} \
      -Dlog4j2.configurationFile="$LOG4J_CONF" -Dkafka.logs.dir="$STATE_DIR" \
      -cp "$cp" kafka.Kafka "$PROPS" >>"$OUT_FILE" 2>&1 </dev/null 8>&- &
  pid=$!
  echo "$pid" > "$PID_FILE"

  local timeout="${KAFKA_READY_TIMEOUT:-60}"
  while [ $((SECONDS - t0)) -lt "$timeout" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "kafka.sh: broker exited during startup" >&2
      show_log_tail "$offset"
      rm -f "$PID_FILE"
      exit 1
    fi
    local size; size="$(stat -c %s "$LOG_FILE" 2>/dev/null || echo 0)"
    [ "$size" -lt "$offset" ] && offset=0    # log rolled over
    if port_open "$PORT" && tail -c +"$((offset + 1))" "$LOG_FILE" 2>/dev/null | grep -q "Kafka Server started"; then
      echo "kafka ready on $HOST:$PORT (pid $pid, started in $((SECONDS - t0))s, dir $STATE_DIR)"
      return 0
    fi
    sleep 0.5
  done
  echo "kafka.sh: broker not ready after ${timeout}s; stopping it (raise KAFKA_READY_TIMEOUT if the box is slow)" >&2
  show_log_tail "$offset"
  do_stop >&2
  exit 1
}

do_stop() {
  local pid; pid="$(running_pid)"
  if [ -z "$pid" ]; then
    rm -f "$PID_FILE"
    echo "kafka not running (dir $STATE_DIR)"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "kafka.sh: pid $pid did not stop within 30s, sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$PID_FILE"
  echo "kafka stopped (pid $pid, dir $STATE_DIR)"
}

do_status() {
  local pid; pid="$(running_pid)"
  if [ -n "$pid" ]; then
    local rport="${PREV_PORT:-$PORT}"
    if port_open "$rport"; then
      echo "running (pid $pid) on $HOST:$rport, dir $STATE_DIR"
    else
      echo "running (pid $pid) but $HOST:$rport not accepting connections yet, dir $STATE_DIR"
    fi
    exit 0
  fi
  echo "stopped ($HOST:$PORT, dir $STATE_DIR)"
  exit 3
}

case "$CMD" in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  restart) do_stop; do_start ;;
  classpath) resolve_jars; classpath ;;
  *) echo "usage: $0 start|stop|status|restart|classpath [--port N] [--dir DIR]" >&2; exit 2 ;;
esac
