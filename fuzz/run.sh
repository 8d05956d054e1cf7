#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZ_SECONDS each, 20 by default), starting from
# the committed seeds. Fails on the first crash, leaving the input in fuzz/artifacts/<target>/.
# Installs cargo-fuzz if it is missing. Works on the stable toolchain: without a sanitizer
# (-s none) cargo fuzz needs no nightly flag; vix forbids unsafe code, so a panic, which
# libFuzzer catches either way, is what there is to find. FUZZ_SANITIZER=address turns ASan
# on, with RUSTC_BOOTSTRAP=1 for its -Z flag. FUZZ_BUILD=dev builds without optimisation:
# about half the build time, but some 20 times fewer executions a second.
#
#   bash fuzz/run.sh                       # all targets, 20 s each
#   FUZZ_SECONDS=300 bash fuzz/run.sh config mutations
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-20}"
sanitizer="${FUZZ_SANITIZER:-none}"
# cargo fuzz's default: optimised, with debug assertions and overflow checks.
build=(-s "$sanitizer")
if [ "${FUZZ_BUILD:-release}" = dev ]; then
  build+=(--dev)
fi
if [ "$sanitizer" != none ]; then
  export RUSTC_BOOTSTRAP=1
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# fuzz/ is a workspace of its own: its lock file must be up to date, as vix's is in CI.
cargo fetch --locked --manifest-path fuzz/Cargo.toml

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build "${build[@]}"

# New corpus entries go to a scratch folder; the committed seeds are only read.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
  mkdir -p "$scratch/$target" "fuzz/artifacts/$target"
  echo "fuzzing $target for ${seconds}s"
  log="$scratch/$target.log"
  if ! cargo fuzz run "${build[@]}" "$target" "$scratch/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^#[0-9]+[[:space:]]+DONE|^stat::number_of_executed_units' "$log"
done
echo "fuzzing: ${#targets[@]} targets, ${seconds}s each, no crash"
