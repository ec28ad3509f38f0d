#!/usr/bin/env bash
# `make fuzz`: runs each libFuzzer target for SECONDS from the generated seed corpus, keeping and
# growing the corpus in DIR/corpus; a crash, hang or leak leaves its input in DIR/artifacts/TARGET/.
# Prints one line per target (executions, corpus size, clean or FAILED); exits 1 if any failed.
#   scripts/fuzz.sh DIR SECONDS "TARGET=MAX_LEN ..."   (the binaries DIR/TARGET_fuzz and DIR/make_seeds exist)
set -uo pipefail
cd "$(dirname "$0")/.."
dir=$1 seconds=$2 targets=$3
rm -rf "$dir/seeds" && "./$dir/make_seeds" "$dir/seeds" experiments || exit 1
failed=0
for entry in $targets; do
    t=${entry%%=*} max_len=${entry#*=}
    mkdir -p "$dir/corpus/$t" "$dir/artifacts/$t"
    dict=$([[ -f fuzz/$t.dict ]] && echo "-dict=fuzz/$t.dict")
    # shellcheck disable=SC2086
    "./$dir/${t}_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" $dict \
        -print_final_stats=1 -artifact_prefix="$dir/artifacts/$t/" "$dir/corpus/$t" "$dir/seeds/$t" >"$dir/$t.log" 2>&1
    status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/$t.log" | tail -n 1)
    corpus=$(find "$dir/corpus/$t" -type f | wc -l)
    if ((status == 0)); then result=clean; else result="FAILED (exit $status; see $dir/$t.log)"; failed=1; fi
    printf "fuzz %-11s %10s executions in %ss, corpus %5s inputs: %s\n" "$t" "${execs:-?}" "$seconds" "$corpus" "$result"
done
exit $failed
