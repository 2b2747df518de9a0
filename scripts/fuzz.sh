#!/usr/bin/env bash
# Fuzzes one parser with libFuzzer:   scripts/fuzz.sh TARGET SECONDS [libFuzzer option…]
# TARGET: safetensors torch config tokenizer adapter payload dataset (fuzz/README.md says what each reads).
#
# Builds the fuzzer if needed (release, -D FUZZING, -sanitize=fuzzer,address, in .build-fuzz; the trailing -O
# overrides the package's -Ounchecked so fuzzed code keeps its overflow and bounds checks), then runs it
# for SECONDS on the committed seeds (fuzz/corpus/TARGET) and crash inputs (fuzz/regressions/TARGET). New
# interesting inputs go to .build-fuzz/corpus/TARGET (never committed); a crash, sanitizer report,
# allocation over the budget, per-input timeout or leak writes its input to fuzz/regressions/TARGET/.
# Prints executions, exec/s, corpus size and crashes; exits 1 when the run found one.
#
# Settings (environment):
#   MUWA_FUZZ_MALLOC_LIMIT_MB  largest single allocation an input may cause   (default 512)
#   MUWA_FUZZ_RSS_LIMIT_MB     memory of the whole fuzzing process             (default 2048)
#   MUWA_FUZZ_TIMEOUT_S        longest time one input may take                  (default 10)
#   MUWA_FUZZ_KEEP_GOING=1     fork mode: record crashes and go on until SECONDS are up
set -euo pipefail
cd "$(dirname "$0")/.."

targets="safetensors torch config tokenizer adapter payload dataset"
if [[ $# -lt 2 || ! " $targets " =~ " $1 " || ! $2 =~ ^[0-9]+$ ]]; then
    echo "usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer option…]   (TARGET: ${targets// /, })" >&2
    exit 2
fi
target=$1 seconds=$2
shift 2

# libFuzzer's runtime comes with the Swift toolchain's clang.
swiftc_path=$(command -v swiftc || true)
if [[ -z $swiftc_path ]] || ! ls "$(dirname "$(readlink -f "$swiftc_path")")"/../lib/clang/*/lib/linux/libclang_rt.fuzzer*.a \
    >/dev/null 2>&1; then
    echo "fuzz.sh: libFuzzer (libclang_rt.fuzzer) not found beside swiftc; a swift.org Linux toolchain ships it" >&2
    exit 2
fi

scripts/install-deps.sh >/dev/null
echo "fuzz.sh: building the fuzzer (.build-fuzz)…" >&2
swift build --product muwa-fuzz --scratch-path .build-fuzz -c release \
    -Xswiftc -DFUZZING -Xswiftc -sanitize=fuzzer,address -Xswiftc -O -Xcc -fsanitize=fuzzer-no-link,address \
    2>&1 | grep -v "Cannot export local symbol" | grep -E "error|warning: unre|Compiling|Build complete" >&2 || true
fuzzer=.build-fuzz/release/muwa-fuzz
[[ -x $fuzzer ]] || { echo "fuzz.sh: the fuzz build failed" >&2; exit 1; }

work=.build-fuzz/corpus/$target
regressions=fuzz/regressions/$target
logs=.build-fuzz/logs
mkdir -p "$work" "$regressions" "$logs"
log=$logs/$target-$(date -u +%Y%m%dT%H%M%SZ)-$$.log
scratch=$(mktemp -d /dev/shm/muwa-fuzz.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$scratch"' EXIT
before=$(find "$regressions" -type f | wc -l)

options=(
    -max_total_time="$seconds"
    -rss_limit_mb="${MUWA_FUZZ_RSS_LIMIT_MB:-2048}"
    -malloc_limit_mb="${MUWA_FUZZ_MALLOC_LIMIT_MB:-512}"
    -timeout="${MUWA_FUZZ_TIMEOUT_S:-10}"
    -artifact_prefix="$regressions/"
    -print_final_stats=1
)
[[ -f fuzz/dict/$target.dict ]] && options+=(-dict="fuzz/dict/$target.dict")
[[ ${MUWA_FUZZ_KEEP_GOING:-} == 1 ]] && options+=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
seeds=(fuzz/corpus/"$target")
[[ -n $(ls -A "$regressions") ]] && seeds+=("$regressions")

echo "fuzz.sh: MUWA_FUZZ_TARGET=$target $fuzzer $work ${seeds[*]} ${options[*]} $*" >&2
start=$(date +%s)
set +e
# SWIFT_BACKTRACE off: a Swift trap then ends as a plain signal that libFuzzer reports (the runtime's
# backtracer reading memory would otherwise show up as a bogus AddressSanitizer report).
MUWA_FUZZ_TARGET=$target MUWA_FUZZ_SCRATCH=$scratch ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} SWIFT_BACKTRACE=enable=no \
    LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/fuzz/lsan.supp} \
    "$fuzzer" "$work" "${seeds[@]}" "${options[@]}" "$@" >"$log" 2>&1
status=$?
set -e
elapsed=$(( $(date +%s) - start ))

# Figures from libFuzzer's log: final stats (plain mode) or the last status line (fork mode).
runs=$(grep -oE 'stat::number_of_executed_units: +[0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' || true)
[[ -z $runs ]] && runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
rate=$(grep -oE 'stat::average_exec_per_sec: +[0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' || true)
[[ -z $rate ]] && rate=$(grep -oE 'exec/s: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' || true)
corpus=$(grep -oE 'corp: [0-9]+(/[0-9]+[a-zA-Z]*)?' "$log" | tail -1 | cut -d' ' -f2 || true)
forked=$(grep -oE 'oom/timeout/crash: [0-9]+/[0-9]+/[0-9]+' "$log" | tail -1 | cut -d' ' -f2 || true)
peak=$(grep -oE 'stat::peak_rss_mb: +[0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' || true)
new=$(( $(find "$regressions" -type f | wc -l) - before ))
sanitizer=$(grep -cE "^==[0-9]+==ERROR: (AddressSanitizer|LeakSanitizer)" "$log" || true)
mallocs=$(grep -cE 'out-of-memory \(malloc\(' "$log" || true)
traps=$(grep -cE 'deadly signal' "$log" || true)
echo "fuzz.sh: $target: ${runs:-?} executions in ${elapsed}s (${rate:-?} exec/s), corpus ${corpus:-?} (entries/bytes)," \
     "peak RSS ${peak:-?} MB, new crash inputs: $new, Swift traps/signals: $traps, sanitizer reports: $sanitizer, allocations over the limit: $mallocs"
[[ -n $forked ]] && echo "fuzz.sh: $target: fork mode: oom/timeout/crash $forked"
echo "fuzz.sh: log: $log"
if [[ $status -ne 0 || $new -gt 0 ]]; then
    grep -E 'ERROR|Fatal error|SUMMARY|out-of-memory|timeout|deadly signal|Test unit written' "$log" | head -20 >&2 || true
    ls -t "$regressions" | head -"$((new > 0 ? new : 1))" | sed "s|^|fuzz.sh: crash input: $regressions/|" >&2
    exit 1
fi
