#!/usr/bin/env bash
# Lints docs/openapi.json with Redocly CLI's recommended rules and validates it with
# openapi-spec-validator.
#
#   tests/openapi/lint.sh [path/to/imgedge]
#
# The argument (the server binary tests/api/tools.rs passes to every script) is ignored: the
# document is read from the file, which the server serves verbatim. Fails on any validator error
# and on any Redocly error or warning; the warnings that describe the server as it is are listed,
# each with its reason, in tests/openapi/.redocly.lint-ignore.yaml (tests/openapi/redocly.yaml is
# the config: `extends: [recommended]`, nothing else).
#
# The tools are pinned here and installed outside the clone on first use, again whenever the pin
# files change: Redocly CLI from package.json + package-lock.json (`npm ci`, Node.js 20.19 or
# later), openapi-spec-validator from requirements.txt (a venv).
#
# Environment:
#   REDOCLY_DIR   where Redocly CLI is installed (default ~/.cache/imgedge-redocly)
#   OPENAPI_VENV  the validator's venv (default ~/.cache/imgedge-openapi-venv)
#   PYTHON        interpreter for the venv (default python3.11, else python3)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
schema="$root/docs/openapi.json"
redocly_dir=${REDOCLY_DIR:-$HOME/.cache/imgedge-redocly}
venv=${OPENAPI_VENV:-$HOME/.cache/imgedge-openapi-venv}
[[ -f $schema ]] || { echo "lint.sh: no $schema" >&2; exit 2; }

# --- Redocly CLI, reinstalled when package.json or package-lock.json changes
wanted=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)
redocly="$redocly_dir/node_modules/.bin/redocly"
if [[ ! -x $redocly || $(cat "$redocly_dir/.imgedge-pins.sha256" 2>/dev/null || true) != "$wanted" ]]; then
    command -v npm >/dev/null || { echo "lint.sh: npm is missing (apt-get install nodejs npm)" >&2; exit 2; }
    echo "lint.sh: installing Redocly CLI into $redocly_dir"
    rm -rf "$redocly_dir"
    mkdir -p "$redocly_dir"
    cp "$here/package.json" "$here/package-lock.json" "$redocly_dir/"
    npm ci --silent --no-audit --no-fund --prefix "$redocly_dir" >/dev/null
    echo "$wanted" >"$redocly_dir/.imgedge-pins.sha256"
fi

# --- openapi-spec-validator, reinstalled when requirements.txt changes
requirements="$here/requirements.txt"
wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ ! -x $venv/bin/openapi-spec-validator || $(cat "$venv/.imgedge-requirements.sha256" 2>/dev/null || true) != "$wanted" ]]; then
    python=${PYTHON:-$(command -v python3.11 || command -v python3)}
    echo "lint.sh: installing openapi-spec-validator into $venv (with $python)"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$wanted" >"$venv/.imgedge-requirements.sha256"
fi

status=0

# --- openapi-spec-validator: exits non-zero on an invalid document
echo "lint.sh: openapi-spec-validator $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("openapi-spec-validator"))')"
"$venv/bin/openapi-spec-validator" "$schema" || status=1

# --- Redocly: its JSON report, every error and warning counted
report=$(mktemp "${TMPDIR:-/tmp}/imgedge-redocly.XXXXXX")
trap 'rm -f "$report" "$report.err"' EXIT
set +e
REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_COLOR=1 \
    "$redocly" lint --config "$here/redocly.yaml" --format=json "$schema" >"$report" 2>"$report.err"
redocly_status=$?
set -e
"$venv/bin/python" - "$report" "$redocly_status" <<'PYTHON' || status=1
import json, sys

path, exit_code = sys.argv[1], int(sys.argv[2])
try:
    report = json.load(open(path))
except ValueError:
    print(f"lint.sh: Redocly exited {exit_code} without a report:", file=sys.stderr)
    print(open(path + ".err").read(), file=sys.stderr)
    sys.exit(1)
totals = report["totals"]
for problem in report["problems"]:
    where = problem["location"][0] if problem["location"] else {}
    line = where.get("start", {}).get("line", "?")
    print(f"  docs/openapi.json:{line} {problem['severity']} {problem['ruleId']}: {problem['message']} ({where.get('pointer', '')})")
print(
    f"lint.sh: Redocly CLI {report.get('version', '?')} (recommended rules): {totals['errors']} errors, "
    f"{totals['warnings']} warnings, {totals['ignored']} ignored (tests/openapi/.redocly.lint-ignore.yaml)"
)
sys.exit(1 if totals["errors"] or totals["warnings"] or exit_code else 0)
PYTHON
rm -f "$report.err"

[[ $status == 0 ]] && echo "lint.sh: docs/openapi.json lints clean" || echo "lint.sh: docs/openapi.json has problems (above)" >&2
exit "$status"
