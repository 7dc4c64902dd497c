#!/usr/bin/env bash
# The full test suite, as CI runs it (`.ci/run` calls exactly this).
# Installs the Debian packages the integration tests use (real Prometheus, promtool,
# Alertmanager, node_exporter, iproute2 for network namespaces, numpy for the
# reference metrics script, chromium to render the report as a person would) and
# cargo-deb,
# then checks formatting and lints and runs every test optimised (the model quality
# tests are too slow unoptimised).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg_bin in prometheus:promtool prometheus-alertmanager:prometheus-alertmanager \
               prometheus-node-exporter:prometheus-node-exporter iproute2:ip curl:curl openssl:openssl \
               python3-aiosmtpd:aiosmtpd chromium:chromium; do
  command -v "${pkg_bin#*:}" >/dev/null 2>&1 || need+=("${pkg_bin%%:*}")
done
# tests/it/smd_quality.rs checks our metrics against ../shared/tools/pointwise.py
# (numpy). Debian's package, not pip: Debian 12's Python refuses `pip install` into
# the system (externally-managed-environment).
python3 -c 'import numpy' 2>/dev/null || need+=(python3-numpy)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${need[*]} (run as root, or: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Package scripts try to start the services; where systemd is not PID 1 that
  # fails harmlessly. The tests start their own instances on loopback.
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The Debian package is built here and installed by tests/it/package.rs (cargo holds
# its build lock while tests run, so a test cannot build it). cargo-deb is a cargo
# subcommand, not a dependency: installed once (a few minutes of compiling in a
# fresh CI machine), then found in ~/.cargo/bin.
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked

# One profile for the lints and the tests, so build scripts and proc macros are built
# once; `ci` is the release profile without LTO (see Cargo.toml). Lints do not depend
# on it: `cargo clippy --release` reports the same.
cargo fmt --all -- --check
cargo clippy --profile ci --all-targets -- -D warnings
# Tests that cannot run here (not root, no dataset) say so and are listed here; under
# CI=true they fail instead (tests/it/common/mod.rs, `skip`).
skipped=target/tmp/skipped-tests
rm -f "$skipped"
rm -f target/debian/anomalyd_*.deb
cargo deb --profile ci
cargo test --profile ci --all-targets -- --test-threads=2
if [ -s "$skipped" ]; then
  echo "skipped: $(wc -l < "$skipped") test(s)"
  cat "$skipped"
fi
