#!/usr/bin/env bash
# Re-vendors the offline GraphiQL assets in assets/graphiql/ from npm.
#
# Produces (overwrites):
#   assets/graphiql/react.production.min.js      <- react@REACT_VERSION     umd/react.production.min.js
#   assets/graphiql/react-dom.production.min.js  <- react-dom@REACT_VERSION umd/react-dom.production.min.js
#   assets/graphiql/graphiql.min.js              <- graphiql@GRAPHIQL_VERSION graphiql.min.js (UMD, global `GraphiQL`)
#   assets/graphiql/graphiql.min.css             <- graphiql@GRAPHIQL_VERSION graphiql.min.css
#   assets/graphiql/graphql-ws.min.js            <- graphql-ws@GRAPHQL_WS_VERSION umd/graphql-ws.min.js (global `graphqlWs`;
#                                                   graphiql's UMD bundle has no WebSocket client)
#   assets/graphiql/LICENSES.txt                 <- LICENSE of each package, with name/version headers
#
# assets/graphiql/index.html is hand-written and is NOT touched by this script.
#
# Requirements: bash, npm (registry access), node, tar. Files are copied verbatim.
# Tarballs are checked against the pinned npm `dist.integrity` (sha512) values below,
# so a version bump requires updating both the version and its integrity
# (`npm view <pkg>@<version> dist.integrity`).
set -euo pipefail

GRAPHIQL_VERSION="3.9.0"
GRAPHIQL_INTEGRITY="sha512-rJYFlHdBbug9+YbFSwRVvgfPjCayC7wHecZkx/qB4XLuQPFQZw/yB9pmHFtOJV6RiNBBHro3u1GdocKa3YcGRA=="
GRAPHQL_WS_VERSION="6.4.2"
GRAPHQL_WS_INTEGRITY="sha512-wxhPhhOGJo8PbGDkBYVE76sZLDrS+GkyrR4bZECSLVbo0pZZNKs0HtBh2Ip/uaUuiVUxwO9ssI9R92buQfNSqQ=="
REACT_VERSION="18.3.1"
REACT_INTEGRITY="sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/oWgHgm4WIcV+i7F2pTVj+2iQ=="
REACT_DOM_INTEGRITY="sha512-5m4nQKp+rZRb09LNH59GM4BxTh9251/ylbKIbpe7TpGxfJ+9kv6BLkLBXIjjspbgbnIBNqlI23tRnTWT0snUIw=="

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
DEST="${REPO_ROOT}/assets/graphiql"

for tool in npm node tar; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: '$tool' not found in PATH" >&2; exit 1; }
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/vendor-graphiql.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# fetch <name> <version> <integrity>  -> extracts into $WORK/<name>/package
fetch() {
  local name="$1" version="$2" integrity="$3"
  local tgz="${WORK}/${name}-${version}.tgz"
  echo "fetching ${name}@${version}" >&2
  (cd "$WORK" && npm pack --silent "${name}@${version}" >/dev/null)
  [[ -f "$tgz" ]] || { echo "error: npm pack did not produce ${tgz}" >&2; exit 1; }
  local actual
  actual="sha512-$(node -e 'const c=require("crypto"),f=require("fs");process.stdout.write(c.createHash("sha512").update(f.readFileSync(process.argv[1])).digest("base64"))' "$tgz")"
  if [[ "$actual" != "$integrity" ]]; then
    echo "error: integrity mismatch for ${name}@${version}" >&2
    echo "  expected: ${integrity}" >&2
    echo "  actual:   ${actual}" >&2
    exit 1
  fi
  mkdir -p "${WORK}/${name}"
  tar -xzf "$tgz" -C "${WORK}/${name}"
  local pkgver
  pkgver="$(node -p 'require(process.argv[1]).version' "${WORK}/${name}/package/package.json")"
  [[ "$pkgver" == "$version" ]] || { echo "error: ${name} tarball has version ${pkgver}, wanted ${version}" >&2; exit 1; }
}

# need <path>: fail clearly if an expected file is missing from a tarball
need() { [[ -f "$1" ]] || { echo "error: expected file missing: ${1#"$WORK"/}" >&2; exit 1; }; }

fetch graphiql  "$GRAPHIQL_VERSION" "$GRAPHIQL_INTEGRITY"
fetch react     "$REACT_VERSION"    "$REACT_INTEGRITY"
fetch react-dom "$REACT_VERSION"    "$REACT_DOM_INTEGRITY"
fetch graphql-ws "$GRAPHQL_WS_VERSION" "$GRAPHQL_WS_INTEGRITY"

GQ="${WORK}/graphiql/package"
R="${WORK}/react/package"
RD="${WORK}/react-dom/package"
WS="${WORK}/graphql-ws/package"
for f in "$GQ/graphiql.min.js" "$GQ/graphiql.min.css" "$GQ/LICENSE" \
         "$R/umd/react.production.min.js" "$R/LICENSE" \
         "$RD/umd/react-dom.production.min.js" "$RD/LICENSE" \
         "$WS/umd/graphql-ws.min.js" "$WS/LICENSE.md"; do
  need "$f"
done

mkdir -p "$DEST"
install -m 0644 "$R/umd/react.production.min.js"       "$DEST/react.production.min.js"
install -m 0644 "$RD/umd/react-dom.production.min.js"  "$DEST/react-dom.production.min.js"
install -m 0644 "$GQ/graphiql.min.js"                  "$DEST/graphiql.min.js"
install -m 0644 "$GQ/graphiql.min.css"                 "$DEST/graphiql.min.css"
install -m 0644 "$WS/umd/graphql-ws.min.js"            "$DEST/graphql-ws.min.js"

license_block() {
  local name="$1" version="$2" files="$3" license_file="$4"
  printf '%s\n' "================================================================================"
  printf '%s\n' "${name}@${version} (https://www.npmjs.com/package/${name}/v/${version})"
  printf '%s\n' "Vendored files: ${files}"
  printf '%s\n' "================================================================================"
  printf '\n'
  cat "$license_file"
  printf '\n\n'
}

{
  printf '%s\n' "Third-party licenses for the files in assets/graphiql/."
  printf '%s\n' "Generated by scripts/vendor-graphiql.sh - do not edit by hand."
  printf '\n'
  license_block graphiql  "$GRAPHIQL_VERSION" "graphiql.min.js, graphiql.min.css" "$GQ/LICENSE"
  license_block react     "$REACT_VERSION"    "react.production.min.js"           "$R/LICENSE"
  license_block react-dom "$REACT_VERSION"    "react-dom.production.min.js"       "$RD/LICENSE"
  license_block graphql-ws "$GRAPHQL_WS_VERSION" "graphql-ws.min.js"               "$WS/LICENSE.md"
} > "$DEST/LICENSES.txt"

# Sanity checks on what we just vendored.
grep -q 'zO.createFetcher=\|\.createFetcher=' "$DEST/graphiql.min.js" \
  || { echo "error: graphiql.min.js does not expose createFetcher" >&2; exit 1; }
grep -q 'graphqlWs' "$DEST/graphql-ws.min.js" \
  || { echo "error: graphql-ws.min.js does not define the graphqlWs global" >&2; exit 1; }

echo "vendored into ${DEST#"$REPO_ROOT"/}:" >&2
(cd "$DEST" && ls -l react.production.min.js react-dom.production.min.js graphiql.min.js graphiql.min.css graphql-ws.min.js LICENSES.txt) >&2
