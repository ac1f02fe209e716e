#!/usr/bin/env bash
# MiniLM and every imported ONNX case on the CUDA fabric against the CPU reference's
# output digests (docs/models.md, "all-MiniLM-L6-v2").
#
#   crates/models/scripts/cuda_check.sh prepare MODEL_DIR ONNX_CASES_DIR   # here: builds target/gpu (≈ 50 MB)
#   bash crates/models/scripts/cuda_check.sh run                           # on the GPU machine, carry target/gpu
set -u
G=target/gpu
case "${1:-}" in
prepare)
  set -e
  rm -rf "$G" && mkdir -p "$G"
  cargo build --release -p tb-cli
  strip -o "$G/tb-cli" target/release/tb-cli
  cargo run --release -p tb-models --example minilm_pruned -- "$2" crates/models/tests/data/sentences.txt "$G"
  cargo run --release -p tb-models --example onnx_jobs -- "$3/ort" "$G/ort"
  cargo run --release -p tb-models --example onnx_jobs -- "$3/node" "$G/node"
  du -sh "$G"
  ;;
run)
  B=$G/tb-cli
  field() { python3 -c 'import json,sys
try:
    d = json.load(sys.stdin); print(d["output_digest_sha256"], d["trace_root"], d["time_ms"], d["device"])
except Exception: print("error")'; }
  echo "minilm expected $(cat $G/expected.txt)"
  for i in 1 2 3; do
    timeout 120 $B job run $G/minilm-20.btj --model $G/minilm-pruned.btm --fabric cuda --cross-fabric --json | field | sed "s/^/minilm cuda run$i /"
  done
  for t in 16 1; do
    timeout 300 $B job run $G/minilm-20.btj --model $G/minilm-pruned.btm --fabric cpu --threads $t --json | field | sed "s/^/minilm cpu$t /"
  done
  for set in ort node; do
    pass=0; fail=0
    while read -r f want; do
      got=$(timeout 60 $B job run $G/$set/$f --fabric cuda --cross-fabric --json 2>/dev/null | field | cut -d' ' -f1)
      if [ "$got" = "$want" ]; then pass=$((pass+1)); else fail=$((fail+1)); echo "MISMATCH $set $f $got"; fi
    done < $G/$set/expected.txt
    echo "$set cases on cuda: $pass identical, $fail differ"
  done
  ;;
*) sed -n 2,7p "$0"; exit 2 ;;
esac
