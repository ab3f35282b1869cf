#!/usr/bin/env bash
# Fuzzing: every target of crates/fuzz under AFL++ (through cargo-afl, on stable Rust), one after
# the other for a set time each, then per target the executions, executions per second and
# findings (crashes, which include failed properties, and hangs), and the totals.
#
#   bench/fuzz.sh                    # every target, FUZZ_SECONDS (default 60) each
#   bench/fuzz.sh 600                # every target, 600 s each
#   bench/fuzz.sh 600 hosts_merge    # the targets named
#
# Installs cargo-afl (crates.io) and builds its AFL++ when missing. The queue each target reached
# is kept under $FUZZ_STATE (default target/fuzz-state) and seeds the next run, so runs add up.
# Findings are copied to $FUZZ_STATE/<target>/findings/; each one becomes a file under
# crates/fuzz/regressions/<target>/ and a unit test in the crate that owns the parser (see
# docs/fuzzing.md). Exits 1 when a run found anything.
#
#   bench/fuzz.sh --quick            # CI: no AFL++; seeds, findings and mutations replayed
#
# Quick mode (CI) does not run AFL++: the harness is an instrumented build of its own (`cargo afl
# build`, the whole dependency tree again, in release, in target/afl), and on a fresh machine
# cargo-afl and its AFL++ must be compiled first; that is minutes over CI's budget for all quick
# modes. It replays instead, through the test build (debug) that `cargo test --workspace` makes
# and scripts/test.sh runs next anyway (built here with `--no-run`, so CI compiles it once): the
# fuzz targets' test (crates/fuzz/tests/targets.rs) runs every target on its seeds, every past
# finding and $FUZZ_MUTATIONS (default 5,000) mutations of the seeds, with TMPDIR on a tmpfs as
# below. It asserts that no property failed; never a time.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

if [[ ${1:-} == --quick ]]; then
    TMP=$(mktemp -d "$([[ -d /dev/shm ]] && echo /dev/shm || echo /tmp)/speil-fuzz.XXXXXX")
    trap 'rm -rf "$TMP"; cleanup' EXIT
    echo "==> the workspace's test build (cargo test --workspace --no-run, debug)"
    # The same units as `cargo test --workspace` (a narrower -p or --test would resolve other
    # features and compile the dependencies a second time).
    EXE=$(cargo test --workspace --locked --no-run --message-format=json-render-diagnostics \
        --manifest-path "$ROOT/Cargo.toml" | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and "#speil-fuzz@" in m["package_id"] \
            and m["target"]["name"] == "targets" and m.get("executable"):
        print(m["executable"])')
    [[ -x $EXE ]] || fail "no test binary of crates/fuzz/tests/targets.rs in the build"
    echo "==> every target on its seeds, findings and ${FUZZ_MUTATIONS:-5000} mutations ($EXE)"
    TMPDIR="$TMP" FUZZ_MUTATIONS=${FUZZ_MUTATIONS:-5000} "$EXE" --quiet
    echo "quick: every fuzz target kept every property on its seeds, its past findings and the mutations"
    exit 0
fi

EACH=${1:-${FUZZ_SECONDS:-60}}
shift || true
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
STATE=${FUZZ_STATE:-$TARGET_DIR/fuzz-state}

if ! cargo afl --version >/dev/null 2>&1; then
    echo "==> installing cargo-afl"
    cargo install --locked cargo-afl
fi
# cargo-afl builds AFL++ for the toolchain once; `config --build` fails when it already has.
cargo afl config --build >/dev/null 2>&1 || true

echo "==> building the AFL++ harness (fuzz/)"
(cd "$ROOT/fuzz" && CARGO_TARGET_DIR="$TARGET_DIR/afl" cargo afl build --release --locked --quiet)
BIN="$TARGET_DIR/afl/release/speil-fuzz-afl"

if (($#)); then TARGETS=("$@"); else mapfile -t TARGETS < <("$BIN" --list); fi

# The hosts target writes files at every execution: give it a tmpfs when there is one.
TMP=$(mktemp -d "$([[ -d /dev/shm ]] && echo /dev/shm || echo /tmp)/speil-fuzz.XXXXXX")
trap 'rm -rf "$TMP"; cleanup' EXIT

stat_of() { awk -F' *: *' -v k="$2" '$1 == k { print $2 }' "$1/default/fuzzer_stats"; }

printf '%-20s %14s %10s %8s %6s\n' target executions exec/s crashes hangs >"$SCRATCH/table"
total=0 found=0
for t in "${TARGETS[@]}"; do
    seeds="$ROOT/crates/fuzz/seeds/$t"
    [[ -d $seeds ]] || { echo "bench: no target $t (no $seeds)" >&2; exit 1; }
    # Input: the seeds, every past finding, and the queue the last run reached.
    input="$SCRATCH/in-$t"
    mkdir -p "$input" "$STATE/$t/queue" "$STATE/$t/findings"
    cp "$seeds"/* "$input/"
    for f in "$ROOT/crates/fuzz/regressions/$t"/* "$STATE/$t/queue"/id:*; do
        [[ -f $f ]] && cp "$f" "$input/$(basename "$f" | tr ':,' '__')"
    done
    out="$SCRATCH/out-$t"
    echo "==> $t: ${EACH}s"
    AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
        AFL_SUPPRESS_ERROR_MESSAGES=1 TMPDIR="$TMP" \
        cargo afl fuzz -i "$input" -o "$out" -V "$EACH" -- "$BIN" "$t" >"$SCRATCH/afl-$t.log" 2>&1 ||
        { tail -20 "$SCRATCH/afl-$t.log" >&2; exit 1; }
    rm -rf "$STATE/$t/queue" && cp -r "$out/default/queue" "$STATE/$t/queue"
    execs=$(stat_of "$out" execs_done)
    run_time=$(stat_of "$out" run_time)
    crashes=$(stat_of "$out" saved_crashes)
    hangs=$(stat_of "$out" saved_hangs)
    for f in "$out/default/crashes"/id:* "$out/default/hangs"/id:*; do
        [[ -f $f ]] && cp "$f" "$STATE/$t/findings/$(date +%s)-$(basename "$f" | tr ':,' '__')"
    done
    printf '%-20s %14d %10d %8d %6d\n' "$t" "$execs" $((execs / (run_time > 0 ? run_time : 1))) \
        "$crashes" "$hangs" >>"$SCRATCH/table"
    total=$((total + execs))
    found=$((found + crashes + hangs))
done
echo
cat "$SCRATCH/table"
printf '%-20s %14d %10s %8d\n' total "$total" "" "$found"
if ((found)); then
    echo "findings copied to $STATE/<target>/findings/" >&2
    exit 1
fi
