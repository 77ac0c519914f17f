#!/usr/bin/env bash
# Deployment checks: render both kustomize overlays, validate them against the
# Kubernetes schemas (offline), run checkov (every skip is annotated in the
# manifests with its reason), and lint the Dockerfile and the image recipes with hadolint.
# checkov lives in its own venv (its dependency pins clash with the project's), at a
# pinned version, and runs offline: no policy download, no update check, no vendor API.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
CHECKOV_VENV="${CHECKOV_VENV:-.venv-checkov}"
CHECKOV_VERSION="3.3.30"
K8S_VERSION="${K8S_VERSION:-1.30.0}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

if [ "$("$CHECKOV_VENV/bin/checkov" --version 2>/dev/null)" != "$CHECKOV_VERSION" ]; then
  python3 -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/pip" install --quiet "checkov==$CHECKOV_VERSION"
fi

for overlay in dev prod; do
  kubectl kustomize "deploy/k8s/overlays/$overlay" > "$out/$overlay.yaml"
  "$VENV/bin/kubernetes-validate" -k "$K8S_VERSION" --strict --quiet "$out/$overlay.yaml"
  echo "deploy: $overlay overlay renders and validates against Kubernetes $K8S_VERSION"
done
BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=TRUE \
  "$CHECKOV_VENV/bin/checkov" --skip-download -f "$out/dev.yaml" -f "$out/prod.yaml" \
  --framework kubernetes --compact --quiet
"$VENV/bin/hadolint" Dockerfile deploy/images/*/Containerfile
echo "deploy: checkov and hadolint clean"
