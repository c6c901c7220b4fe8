#!/usr/bin/env bash
# Build the news-ingest flex template and start streaming jobs from it on Dataflow.
#
#   deploy/dataflow/launch.sh build   build and push the image, write the template spec to GCS
#   deploy/dataflow/launch.sh run     upload the run configuration, start a streaming job
#   add --dry-run to print the commands instead of running them
#
# Environment:
#   PROJECT, REGION            the Google Cloud project and region (required)
#   BUCKET                     gs://... for the template spec, the configuration, staging, temp (required)
#   IMAGE                      default REGION-docker.pkg.dev/PROJECT/news-ingest/news-ingest:0.1.0
#   CONFIG                     run configuration to upload, default deploy/flink/k8s/feeds.yaml.
#                              It is expanded on the launcher VM, where this shell's environment
#                              is not: write the brokers into it (or as ${VAR:-value} defaults).
#   JOB_NAME                   default news-ingest-<date>
#   MAX_WORKERS=4, WORKER_MACHINE_TYPE=n2-standard-2
#   NETWORK, SUBNETWORK        where the workers run: they must reach the Kafka brokers
# Needs docker (build), gcloud (run and build).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

cmd="${1:-}"; shift || true
dry_run=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    *) echo "launch.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

: "${PROJECT:?set PROJECT}" "${REGION:?set REGION}" "${BUCKET:?set BUCKET (gs://...)}"
BUCKET="${BUCKET%/}"
IMAGE="${IMAGE:-$REGION-docker.pkg.dev/$PROJECT/news-ingest/news-ingest:0.1.0}"
TEMPLATE="$BUCKET/templates/news-ingest.json"
CONFIG="${CONFIG:-$ROOT/deploy/flink/k8s/feeds.yaml}"
CONFIG_GCS="$BUCKET/news-ingest/$(basename "$CONFIG")"
JOB_NAME="${JOB_NAME:-news-ingest-$(date -u +%Y%m%d-%H%M%S)}"

run() {  # run a command, or print it (shell-quoted) with --dry-run
  if [[ $dry_run == 1 ]]; then
    printf '%q ' "$@"; echo
  else
    "$@"
  fi
}

case "$cmd" in
  build)
    run docker build -f "$ROOT/deploy/dataflow/Dockerfile" -t "$IMAGE" "$ROOT"
    run docker push "$IMAGE"
    run gcloud dataflow flex-template build "$TEMPLATE" \
      --project="$PROJECT" \
      --image="$IMAGE" \
      --sdk-language=PYTHON \
      --metadata-file="$ROOT/deploy/dataflow/metadata.json"
    ;;
  run)
    [[ -f "$CONFIG" ]] || { echo "launch.sh: no configuration at $CONFIG" >&2; exit 2; }
    run gcloud storage cp "$CONFIG" "$CONFIG_GCS" --project="$PROJECT"
    network=()
    [[ -n "${NETWORK:-}" ]] && network+=("--network=$NETWORK")
    [[ -n "${SUBNETWORK:-}" ]] && network+=("--subnetwork=$SUBNETWORK")
    run gcloud dataflow flex-template run "$JOB_NAME" \
      --project="$PROJECT" \
      --region="$REGION" \
      --template-file-gcs-location="$TEMPLATE" \
      --parameters="config=$CONFIG_GCS,sdk_container_image=$IMAGE" \
      --enable-streaming-engine \
      --staging-location="$BUCKET/staging" \
      --temp-location="$BUCKET/temp" \
      --max-workers="${MAX_WORKERS:-4}" \
      --worker-machine-type="${WORKER_MACHINE_TYPE:-n2-standard-2}" \
      "${network[@]}"
    ;;
  *)
    echo "usage: launch.sh build|run [--dry-run]" >&2
    exit 2
    ;;
esac
