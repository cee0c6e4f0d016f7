#!/usr/bin/env bash
# Shared, idempotent set-up for scripts/run and scripts/test: installs only what is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARGO_LEPTOS_VERSION=0.3.10
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\033[1;34m==>\033[0m \033[1m%s\033[0m\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else return 1
  fi
}

# Installs Debian packages that are not installed yet.
apt_install() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null 2>&1; then
    die "please install these Debian packages first (as root): apt-get install ${missing[*]}"
  fi
  say "Installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Rust targets, cargo-leptos, wasm-bindgen-cli and the npm tools (Tailwind, wasm-opt, Playwright).
ensure_build_tools() {
  command -v cargo >/dev/null 2>&1 || die "Rust is not installed: install rustup (https://rustup.rs), then run this again."
  command -v cc >/dev/null 2>&1 || apt_install gcc libc6-dev
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    say "Adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  if ! cargo leptos --version 2>/dev/null | grep -q " ${CARGO_LEPTOS_VERSION}\$"; then
    say "Installing cargo-leptos ${CARGO_LEPTOS_VERSION} (about 20 minutes, once per machine)"
    cargo install --locked "cargo-leptos@${CARGO_LEPTOS_VERSION}" --features no_downloads
  fi
  local wasm_bindgen
  wasm_bindgen=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock")
  if ! wasm-bindgen --version 2>/dev/null | grep -q " ${wasm_bindgen}\$"; then
    say "Installing wasm-bindgen-cli ${wasm_bindgen} (matches Cargo.lock)"
    # Not --locked: one of its locked dependencies is no longer on the registry.
    cargo install wasm-bindgen-cli --version "${wasm_bindgen}"
  fi
  if [ ! -d "$ROOT/node_modules" ] || [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
    say "Installing npm packages (Tailwind CSS, binaryen's wasm-opt, Playwright, the OpenAI SDK)"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# Debian's Chromium for the Playwright tests (Playwright's own browser download is not used).
ensure_chromium() {
  if [ -x "${WJ_CHROMIUM:-/usr/bin/chromium}" ]; then return 0; fi
  apt_install chromium
}

# A free TCP port on loopback.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null \
    || node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'
}

target_dir() {
  echo "${CARGO_TARGET_DIR:-$ROOT/target}"
}
