#!/usr/bin/env bash
# Runs the fuzz targets under libFuzzer (cargo-fuzz, no sanitizer runtime) from their
# committed corpora (fuzz/corpus/<target>/), each for a time budget. docs/fuzzing.md.
#
#   bash fuzz/run.sh                      every target, 30 s each (what CI runs)
#   bash fuzz/run.sh --seconds 3600 decode_job decode_result
#   bash fuzz/run.sh --seconds 3600 --merge   and keep what found new coverage
#
# New inputs go to a scratch corpus (FUZZ_WORK, default a temporary folder), so a run
# changes nothing under fuzz/ unless --merge is given: then libFuzzer's merge adds to
# fuzz/corpus/<target>/ only the inputs that reach coverage the committed corpus does
# not. A crash, a leak of the time limit per input or an out-of-memory stops the run
# with libFuzzer's report and the input under fuzz/artifacts/<target>/; the script
# exits non-zero. One summary line per target: seconds, CPU seconds, executions,
# coverage.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a stable toolchain:
# RUSTC_BOOTSTRAP=1 lets stable build with the flags libFuzzer needs.
set -euo pipefail
cd "$(dirname "$0")"
seconds=30
merge=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --merge) merge=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "fuzz/run.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
case "$seconds" in ''|*[!0-9]*) echo "fuzz/run.sh: --seconds takes a whole number" >&2; exit 2 ;; esac
export RUSTC_BOOTSTRAP=1
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build -s none
work="${FUZZ_WORK:-$(mktemp -d)}"
status=0
for t in "${targets[@]}"; do
  [ -d "corpus/$t" ] || { echo "fuzz/run.sh: no corpus/$t (is $t a target?)" >&2; exit 2; }
  mkdir -p "$work/$t"
  log="$work/$t.log"
  # -timeout: one input running 30 s is a finding (a hang), not slowness. The run's
  # CPU time (user + system, the fuzzer and its children) is what docs/fuzzing.md
  # records: on a shared machine it is less than the wall time.
  TIMEFORMAT='%U %S'
  if { time cargo fuzz run -s none "$t" "$work/$t" "corpus/$t" -- \
      -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
      >"$log" 2>&1; } 2>"$work/$t.time"; then
    result=ok
  else
    result=FAILED
    status=1
    tail -n 60 "$log" >&2
  fi
  cpu=$(awk '{ printf "%.0f", $1 + $2 }' "$work/$t.time" 2>/dev/null || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | tr -dc 0-9)
  printf '%-18s %s  %ss  cpu %ss  %s execs  cov %s  corpus %s\n' "$t" "$result" "$seconds" \
    "${cpu:-?}" "${execs:-?}" "${cov:-?}" "$(ls "corpus/$t" | wc -l)"
  if [ "$merge" = 1 ] && [ "$result" = ok ]; then
    cargo fuzz run -s none "$t" "corpus/$t" "$work/$t" -- -merge=1 >"$work/$t.merge.log" 2>&1
    echo "  merged: corpus/$t now holds $(ls "corpus/$t" | wc -l) inputs"
  fi
done
exit $status
