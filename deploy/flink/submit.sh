#!/usr/bin/env bash
# Submit news-ingest to Flink as a streaming Beam job whose Python stages run in the Beam worker
# pool beside each TaskManager (EXTERNAL environment, localhost:50000 in the TaskManager's pod).
#
# Two ways in, chosen by the environment:
#   BEAM_JOB_ENDPOINT=host:8099   a running Beam Flink job server (the sidecar of
#                                 deploy/flink/k8s/submit-job.yaml): --runner=PortableRunner
#   FLINK_MASTER=host:8081        the JobManager's REST address; Beam starts a job server itself
#                                 from FLINK_JOB_SERVER_JAR (needs Java 17): --runner=FlinkRunner
# Other settings (environment, with defaults):
#   NEWSINGEST_CONFIG=/config/feeds.yaml   the run configuration
#   PARALLELISM=4                          default operator parallelism (<= TaskManagers x slots)
#   MAX_PARALLELISM=128                    key groups of keyed state: the ceiling for rescaling
#                                          from a savepoint; fixed for the life of the state
#   CHECKPOINT_INTERVAL_MS=60000           checkpoint every minute, exactly-once barriers
#   CHECKPOINT_DIR=file:///flink-data/checkpoints   RocksDB checkpoint storage (shared: PVC or s3://)
#   WORKER_POOL=localhost:50000            the worker pool as seen from a TaskManager
# Extra arguments go to `newsingest run` (Beam options such as --job_name=...).
set -euo pipefail

CONFIG="${NEWSINGEST_CONFIG:-/config/feeds.yaml}"
PARALLELISM="${PARALLELISM:-4}"
MAX_PARALLELISM="${MAX_PARALLELISM:-128}"
CHECKPOINT_INTERVAL_MS="${CHECKPOINT_INTERVAL_MS:-60000}"
CHECKPOINT_DIR="${CHECKPOINT_DIR:-file:///flink-data/checkpoints}"
WORKER_POOL="${WORKER_POOL:-localhost:50000}"

if [[ -n "${BEAM_JOB_ENDPOINT:-}" ]]; then
  runner=(--runner=PortableRunner "--job_endpoint=$BEAM_JOB_ENDPOINT")
elif [[ -n "${FLINK_MASTER:-}" ]]; then
  [[ -n "${FLINK_JOB_SERVER_JAR:-}" ]] || {
    echo "submit.sh: FLINK_MASTER needs FLINK_JOB_SERVER_JAR (a Beam Flink job server jar)" >&2
    exit 2
  }
  runner=(--runner=FlinkRunner "--flink_master=$FLINK_MASTER" "--flink_version=${FLINK_VERSION:-1.19}"
          "--flink_job_server_jar=$FLINK_JOB_SERVER_JAR")
else
  echo "submit.sh: set BEAM_JOB_ENDPOINT (a Beam job server) or FLINK_MASTER (a JobManager)" >&2
  exit 2
fi

# Checkpointing and state are Beam Flink runner options (FlinkPipelineOptions), passed through
# to the job server: RocksDB with incremental checkpoints (state.backend.incremental in the
# cluster's configuration), kept on cancellation so that a job can be restarted from the last one.
# The job server declares its boolean options as flags: `--flag`, never `--flag=true`.
exec newsingest run --config "$CONFIG" \
  "${runner[@]}" \
  --environment_type=EXTERNAL "--environment_config=$WORKER_POOL" \
  --streaming \
  "--parallelism=$PARALLELISM" "--max_parallelism=$MAX_PARALLELISM" \
  "--checkpointing_interval=$CHECKPOINT_INTERVAL_MS" --checkpointing_mode=EXACTLY_ONCE \
  --min_pause_between_checkpoints=10000 --checkpoint_timeout_millis=600000 \
  --externalized_checkpoints_enabled --retain_externalized_checkpoints_on_cancellation \
  --state_backend=rocksdb "--state_backend_storage_path=$CHECKPOINT_DIR" \
  "$@"
