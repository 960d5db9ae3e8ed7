#!/usr/bin/env bash
# Every check dockhand has, from a fresh clone: toolchain set-up, the local test image's
# prerequisite, formatting, lints, docs and all tests (which build the guest policies and
# the test image themselves).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain: wasm32-unknown-unknown target, rustfmt, clippy"
rustup target add wasm32-unknown-unknown
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# Debian packages the tests need, each installed only when its file is missing: the test
# image's busybox, and the registry (CNCF distribution) plus htpasswd for the pull tests.
step "test prerequisites: busybox-static, docker-registry, apache2-utils"
missing=()
[ -x /bin/busybox ] || missing+=(busybox-static)
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
[ -x /usr/bin/htpasswd ] || missing+=(apache2-utils)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "missing test prerequisites: install them (apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

if [ "${DOCKHAND_REQUIRE_DOCKER:-}" = 1 ]; then
  step "docker daemon"
  docker version --format 'server {{.Server.Version}} (API {{.Server.APIVersion}})'
fi

step "cargo fmt --check (host and guest workspaces)"
cargo fmt --all -- --check
(cd guest-policies && cargo fmt --all -- --check)

step "cargo clippy -D warnings (host workspace)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo clippy -D warnings (guest workspace, wasm32)"
(cd guest-policies && cargo clippy --workspace --target wasm32-unknown-unknown --locked -- -D warnings)

step "guest SDK: clippy and unit tests (native)"
(cd guest-policies && cargo clippy -p dockhand-policy-sdk --all-targets --locked -- -D warnings)
(cd guest-policies && cargo test -p dockhand-policy-sdk --locked)

step "cargo doc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "cargo test (all tests, benches compiled)"
cargo test --workspace --locked --all-targets
cargo test --workspace --locked --doc
