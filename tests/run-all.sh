#!/usr/bin/env bash
# Every check dockhand has, from a fresh clone: toolchain set-up, the local test image's
# prerequisite, formatting, lints, docs and all tests (which build the guest policies and
# the test image themselves).
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step's time is printed when the next one starts, and all of them at the end.
STEP_NAME=""
STEP_START=$SECONDS
RUN_START=$SECONDS
TIMES=()
end_step() {
  if [ -n "$STEP_NAME" ]; then
    local took=$((SECONDS - STEP_START))
    printf '<== %s: %ds\n' "$STEP_NAME" "$took"
    TIMES+=("$(printf '%5ds  %s' "$took" "$STEP_NAME")")
  fi
}
step() {
  end_step
  STEP_NAME="$*"
  STEP_START=$SECONDS
  printf '\n==> %s\n' "$*"
}
summary() {
  end_step
  STEP_NAME=""
  printf '\nstep times:\n'
  printf '%s\n' "${TIMES[@]}"
  printf '%5ds  total\n' "$((SECONDS - RUN_START))"
}

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

# componentize-py builds the Python example policy for the differential tests; the pinned
# version is installed when it is missing or another version is on PATH.
step "test prerequisites: componentize-py (guest-policies/python/requirements-build.txt)"
pin="$(sed -n 's/^componentize-py==//p' guest-policies/python/requirements-build.txt)"
if [ "$(componentize-py --version 2>/dev/null)" != "componentize-py $pin" ]; then
  python3 -m pip install --quiet -r guest-policies/python/requirements-build.txt
fi
componentize-py --version

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

step "build every test target"
cargo test --workspace --locked --all-targets --no-run

step "unit tests, policy-host tests, the benches' fixture checks, doc tests"
cargo test --workspace --locked --lib --bins --benches
# The crates' own integration tests, named one by one with the workspace selected: selecting
# one package would resolve other features and rebuild wasmtime.
crate_tests=()
for t in host/*/tests/*; do
  if [ -f "$t" ] || [ -f "$t/main.rs" ]; then crate_tests+=(--test "$(basename "$t" .rs)"); fi
done
cargo test --workspace --locked "${crate_tests[@]}"
cargo test --workspace --locked --doc

# Most integration tests wait on Docker or on Nomad's one-minute creation grace, not on the
# CPU, so several run at once; DOCKHAND_TEST_THREADS overrides how many.
threads="${DOCKHAND_TEST_THREADS:-6}"
step "integration tests: real Docker, the plugin binary ($threads at once)"
cargo test -p dockhand --locked --test integration -- --test-threads="$threads"

summary
