#!/usr/bin/env bash
# Installs code-server (a real VS Code that runs in a browser) into .code-server/ at the repo root,
# for the integration and browser end-to-end tests (test/e2e/). Idempotent: a complete install is
# recorded in .code-server/.installed (containing the version) and a second run returns at once.
#
# Usage: tools/setup-code-server.sh [--force]
#   CODE_SERVER_VERSION  override the version (default 4.100.3: the last release that runs on Node 20)
#   CODE_SERVER_DIR      override the install folder (default <repo>/.code-server)
#
# Why not a plain `npm install code-server`: its postinstall downloads ripgrep from GitHub and builds
# kerberos, neither of which works offline. We install with --ignore-scripts and do the needed steps
# by hand, using Debian's ripgrep and libkrb5-dev.
set -euo pipefail

VERSION="${CODE_SERVER_VERSION:-4.100.3}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${CODE_SERVER_DIR:-$ROOT/.code-server}"
MARKER="$DIR/.installed"
CS="$DIR/node_modules/code-server"
VSC="$CS/lib/vscode"

log() { printf '[setup-code-server] %s\n' "$*" >&2; }

if [[ "${1:-}" != "--force" && -f "$MARKER" && "$(cat "$MARKER")" == "$VERSION" && -f "$CS/out/node/entry.js" ]]; then
  log "code-server $VERSION already installed in $DIR"
  exit 0
fi

start=$(date +%s)

# 1. Debian packages (only when missing).
need=()
for p in ripgrep libkrb5-dev chromium; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  log "installing Debian packages: ${need[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
RG="$(command -v rg)"

# Node 20 only runs code-server up to 4.100.x; warn rather than fail on other majors.
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [[ "$VERSION" == 4.100.* && "$node_major" != 20 ]]; then
  log "warning: code-server $VERSION expects Node 20, found $(node -v)"
fi

rm -f "$MARKER"
mkdir -p "$DIR"
# A standalone package.json so npm does not walk up into the repo's own package.json / lockfile.
if [[ ! -f "$DIR/package.json" ]]; then
  printf '{\n  "name": "attend-code-server",\n  "private": true,\n  "description": "git-ignored install of code-server for tests (tools/setup-code-server.sh)"\n}\n' >"$DIR/package.json"
fi

# 2. code-server itself, without install scripts.
if [[ ! -f "$CS/package.json" ]] || [[ "$(node -p "require('$CS/package.json').version")" != "$VERSION" ]]; then
  log "npm install code-server@$VERSION"
  (cd "$DIR" && npm install --no-audit --no-fund --ignore-scripts --save-exact "code-server@$VERSION")
fi

# 3. VS Code's own dependencies.
log "installing VS Code dependencies (lib/vscode)"
(cd "$VSC" && npm install --omit=dev --ignore-scripts --no-audit --no-fund)
mkdir -p "$VSC/node_modules/@vscode/ripgrep/bin"
ln -sf "$RG" "$VSC/node_modules/@vscode/ripgrep/bin/rg"
log "rebuilding native modules (lib/vscode)"
(cd "$VSC" && npm_config_yes=true npm rebuild --no-audit --no-fund)
[[ -e "$VSC/node_modules.asar" ]] || ln -s node_modules "$VSC/node_modules.asar"
log "installing built-in extensions' dependencies"
(cd "$VSC/extensions" && npm install --omit=dev --ignore-scripts --no-audit --no-fund)

# 4. code-server's own native module (npm hoists argon2 to $DIR/node_modules, so rebuild from there).
log "rebuilding argon2"
(cd "$DIR" && npm rebuild argon2 --no-audit --no-fund)
(cd "$CS" && node -e 'require("argon2")') || { log "argon2 does not load"; exit 1; }

# Sanity check: the server entry loads far enough to print its version.
# (A throwaway XDG_CONFIG_HOME, else code-server writes ~/.config/code-server/config.yaml.)
tmpcfg="$(mktemp -d)"
trap 'rm -rf "$tmpcfg"' EXIT
if ! out="$(XDG_CONFIG_HOME="$tmpcfg" XDG_DATA_HOME="$tmpcfg" node "$CS/out/node/entry.js" --version 2>&1)"; then
  log "code-server --version failed:"; printf '%s\n' "$out" >&2; exit 1
fi
log "code-server --version: $(printf '%s' "$out" | tail -n1)"

printf '%s' "$VERSION" >"$MARKER"
log "done in $(($(date +%s) - start))s: $DIR"
