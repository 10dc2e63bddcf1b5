#!/usr/bin/env bash
# Checks deploy/ the way its users' platforms do, and exits non-zero on any failure:
#   1. kubernetes-validate --strict: every object in deploy/k8s/ against one Kubernetes
#      version's schemas (unknown fields fail; so does an object whose kind or apiVersion has no
#      schema, which the tool itself only warns about);
#   2. kustomization.yaml lists exactly the manifests in deploy/k8s/;
#   3. checkov's Kubernetes and Dockerfile policies over deploy/. A finding we accept is skipped
#      beside its object with a reason (checkov.io/skipN annotations; checkov ignores
#      `# checkov:skip=` comments in Kubernetes manifests), and shows up as skipped.
# The tools live in a venv reused between runs, installed from PyPI at the pinned versions.
set -euo pipefail
cd "$(dirname "$0")/.."

CHECKOV_VERSION=3.3.30
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBERNETES_VERSION=1.37.0 # the newest schemas kubernetes-validate 1.37.0 ships

venv="${XDG_CACHE_HOME:-$HOME/.cache}/imgedge-deploy-checks"
pins="checkov==$CHECKOV_VERSION kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
if ! "$venv/bin/python" -c '' 2>/dev/null; then
    python3 -m venv --clear "$venv"
    rm -f "$venv/.pins"
fi
if [[ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]]; then
    echo "deploy/check.sh: installing $pins into $venv"
    # shellcheck disable=SC2086 # two requirement specifiers
    "$venv/bin/pip" install --quiet --disable-pip-version-check $pins
    echo "$pins" >"$venv/.pins"
fi

failed=0

# 1. The manifests against the Kubernetes schemas. kustomization.yaml is kustomize's input,
# not a Kubernetes object.
manifests=()
for f in deploy/k8s/*.yaml; do
    [[ "$(basename "$f")" == kustomization.yaml ]] || manifests+=("$f")
done
if out="$("$venv/bin/kubernetes-validate" --strict -k "$KUBERNETES_VERSION" "${manifests[@]}" 2>&1)" &&
    ! grep -qv '^INFO ' <<<"$out"; then
    echo "kubernetes-validate $KUBERNETES_VALIDATE_VERSION --strict, Kubernetes $KUBERNETES_VERSION:" \
        "$(grep -c '^INFO ' <<<"$out") objects in ${#manifests[@]} files valid"
else
    grep -v '^INFO ' <<<"$out" || true
    echo "kubernetes-validate: FAILED (every line above that is not INFO is a failure)"
    failed=1
fi

# 2. The kustomization names every manifest, and only those.
if ! "$venv/bin/python" - "${manifests[@]}" <<'EOF'; then
import os, sys, yaml
with open("deploy/k8s/kustomization.yaml") as f:
    listed = set(yaml.safe_load(f).get("resources") or [])
present = {os.path.basename(p) for p in sys.argv[1:]}
problems = [f"kustomization.yaml does not list {n}" for n in sorted(present - listed)]
problems += [f"kustomization.yaml lists {n}, which is not in deploy/k8s" for n in sorted(listed - present)]
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
EOF
    echo "kustomization: FAILED"
    failed=1
fi

# 3. checkov: failed checks are listed, then each framework's counts.
if ! "$venv/bin/checkov" --directory deploy --framework kubernetes dockerfile \
    --compact --quiet --skip-download; then
    echo "checkov: FAILED"
    failed=1
fi

if ((failed)); then
    echo "deploy/check.sh: FAILED"
    exit 1
fi
echo "deploy/check.sh: all deploy checks passed"
