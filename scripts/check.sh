#!/usr/bin/env bash
# The project's checks: lint, format, types, tests. Each runs even after one fails, so a run
# shows every problem; the exit status is the first failure's. Arguments go to pytest.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

status=0
failed=()

check() {
    printf '==> %s\n' "$*" >&2
    local rc=0
    "$@" || rc=$?
    if [ "$rc" -ne 0 ]; then
        failed+=("$* (exit $rc)")
        [ "$status" -ne 0 ] || status=$rc
    fi
}

check .venv/bin/ruff check
check .venv/bin/ruff format --check
check .venv/bin/mypy swarmlet
check .venv/bin/pytest "$@"

if [ "$status" -ne 0 ]; then
    printf 'FAILED: %s\n' "${failed[@]}" >&2
fi
exit "$status"
