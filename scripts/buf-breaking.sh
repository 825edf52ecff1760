#!/usr/bin/env bash
# Checks proto/ for wire-breaking changes against its state before the last
# commit that changed it. Skipped, with a message, when there is no such state
# (a fresh history, or a clone too shallow to hold it).
set -euo pipefail
cd "$(dirname "$0")/.."
buf=packages/transport-connect/node_modules/.bin/buf

last=$(git log -n 1 --format=%H -- proto 2>/dev/null || true)
if [ -z "$last" ] || ! git rev-parse -q --verify "$last^" >/dev/null; then
  echo "buf breaking: skipped (no earlier version of proto/ in this history)"
  exit 0
fi
if [ -z "$(git ls-tree -r --name-only "$last^" -- proto)" ]; then
  echo "buf breaking: skipped (proto/ is new in $last)"
  exit 0
fi
echo "buf breaking: proto/ against $(git rev-parse --short "$last^") (before $(git rev-parse --short "$last"))"
# buf clones the input 50 commits deep unless told: once more commits than
# that follow the last change of proto/, its parent would not be in the clone.
depth=$(( $(git rev-list --count "$last^..HEAD") + 1 ))
"$buf" breaking --against ".git#ref=$last^,depth=$depth"
