#!/usr/bin/env bash
# Installs axe-core (the accessibility rules engine) for tests/test_a11y.py from the npm registry, at the
# version pinned in tests/axe/package-lock.json. Needs node and npm (Debian: apt-get install nodejs npm).
set -euo pipefail
cd "$(dirname "$0")/../tests/axe"
want=$(sed -n 's/.*"axe-core": "\(.*\)".*/\1/p' package.json)
if [ -f node_modules/axe-core/axe.min.js ] && grep -q "\"version\": \"$want\"" node_modules/axe-core/package.json; then
  exit 0
fi
# npm on PATH, else the npm that a Node.js package bundles (NodeSource's nodejs ships it under lib/node_modules
# even where no npm link is on PATH).
npm=(npm)
if ! command -v npm >/dev/null; then
  npm=()
  if node=$(command -v node 2>/dev/null); then
    for cli in "$(dirname "$(readlink -f "$node")")/../lib/node_modules/npm/bin/npm-cli.js" \
               /usr/lib/node_modules/npm/bin/npm-cli.js /usr/local/lib/node_modules/npm/bin/npm-cli.js; do
      [ -f "$cli" ] && { npm=("$node" "$cli"); break; }
    done
  fi
fi
if [ ${#npm[@]} -eq 0 ]; then
  echo "waitroom: npm is missing: apt-get install nodejs npm (needed once for the accessibility tests)" >&2
  [ "${CI:-}" = "true" ] && exit 1
  exit 0
fi
"${npm[@]}" ci --no-audit --no-fund --silent
