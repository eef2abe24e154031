#!/usr/bin/env bash
# vjx vs upstream LeRobot VLA-JEPA on this CPU: latency, memory, accuracy, compute floor.
#
# Usage: bench/compare.sh [--size full|tiny] [--threads N] [--iters N] [--warmup N]
#   full  random-weight checkpoint with the real Qwen3-VL-2B + DiT-B shapes, made by
#         bench/make_full_size.py into bench/work/full/ when missing (~10 GB; the exports ~11 GB more)
#   tiny  the real_vocab golden fixture (tests/fixtures/vla_jepa/real_vocab, obs_0)
# Env: VJX=path/to/vjx skips `cargo build --release`; ORT_DYLIB_PATH picks the ONNX Runtime library
#      (default: scripts/install_onnxruntime.sh).
#
# One run does: upstream fp32 + upstream autocast (bench/upstream_bench.py), `vjx export` fp32 and
# int8, `vjx bench` tract-fp32 / ort-fp32 / ort-int8, `vjx run --dump` on ort for accuracy,
# bench/floors.py, then bench/collect.py. Every piece lands in bench/work/<size>/results/; the merged
# report goes to bench/work/<size>/compare.json and stdout. Progress goes to stderr.
set -euo pipefail

size=full
threads=2
iters=
warmup=1
usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0" >&2; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --size) size="${2:?--size needs full or tiny}"; shift 2 ;;
        --threads) threads="${2:?--threads needs a number}"; shift 2 ;;
        --iters) iters="${2:?--iters needs a number}"; shift 2 ;;
        --warmup) warmup="${2:?--warmup needs a number}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "compare.sh: unknown argument: $1" >&2; usage; exit 2 ;;
    esac
done
case "$size" in
    full) iters="${iters:-3}" ;;
    tiny) iters="${iters:-10}" ;;
    *) echo "compare.sh: --size must be full or tiny, got '$size'" >&2; exit 2 ;;
esac
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --threads must be a positive integer" >&2; exit 2; }
[[ "$iters" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --iters must be a positive integer" >&2; exit 2; }

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
log() { echo "[compare $(date +%H:%M:%S)] $*" >&2; }
die() { echo "compare.sh: error: $*" >&2; exit 1; }
trap 'echo "compare.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

# Same thread count everywhere: upstream torch (OpenMP/MKL), ONNX Runtime, tract.
export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" RAYON_NUM_THREADS="$threads"

# ---- Python side (upstream LeRobot 0.6.1) -------------------------------------------------------
py="$root/.venv-ref/bin/python"
if [[ ! -x "$py" ]]; then
    log "no .venv-ref: creating it with tests/reference/setup_env.sh"
    tests/reference/setup_env.sh >&2
fi
"$py" -c 'import lerobot.policies.vla_jepa, transformers, torch' \
    || die ".venv-ref cannot import lerobot/transformers/torch; rerun tests/reference/setup_env.sh"

# ---- vjx ----------------------------------------------------------------------------------------
if [[ -n "${VJX:-}" ]]; then
    vjx="$VJX"
    log "using VJX=$vjx"
else
    log "cargo build --release"
    cargo build --release >&2
    vjx="$root/target/release/vjx"
fi
[[ -x "$vjx" ]] || die "vjx binary not found or not executable: $vjx"
if [[ -z "${ORT_DYLIB_PATH:-}" ]]; then
    ORT_DYLIB_PATH="$(scripts/install_onnxruntime.sh)" || die "could not fetch ONNX Runtime (scripts/install_onnxruntime.sh); set ORT_DYLIB_PATH"
fi
export ORT_DYLIB_PATH
[[ -f "$ORT_DYLIB_PATH" ]] || die "ORT_DYLIB_PATH does not exist: $ORT_DYLIB_PATH"

# Flags that are new in vjx: use them only when this build has them.
has_flag() { "$vjx" "$1" --help 2>/dev/null | grep -e "$2" >/dev/null; }
export_has_precision=false; has_flag export --precision && export_has_precision=true
bench_has_threads=false; has_flag bench --threads && bench_has_threads=true
run_has_threads=false; has_flag run --threads && run_has_threads=true
$export_has_precision || log "warning: this vjx export has no --precision: fp32 export only, int8 skipped"
$bench_has_threads || log "warning: this vjx bench has no --threads: it picks its own thread count"

# ---- Checkpoint + observation -------------------------------------------------------------------
work="$root/bench/work/$size"
case "$size" in
    full)
        ckpt="$work/checkpoint"; backbone="$work/backbone"; obs="$work/obs"
        if [[ ! -f "$ckpt/model.safetensors" || ! -f "$backbone/model.safetensors" || ! -f "$obs/noise.npy" ]]; then
            log "making the full-size checkpoint (bench/make_full_size.py)"
            "$py" bench/make_full_size.py --out "$work" --threads "$threads" --force >&2
        fi
        ;;
    tiny)
        fixture="$root/tests/fixtures/vla_jepa/real_vocab"
        ckpt="$fixture/checkpoint"; backbone="$fixture/backbone"; obs="$fixture/obs_0"
        ;;
esac
for f in "$ckpt/config.json" "$ckpt/model.safetensors" "$backbone/config.json" "$obs/inputs.json" "$obs/noise.npy"; do
    [[ -f "$f" ]] || die "missing $f"
done
res="$work/results"
rm -rf "$res"
mkdir -p "$res"

# Disk: the exports replace bench/work/<size>/export-{fp32,int8}; fp32 is about 1.8x the bf16
# checkpoint, int8 about 0.55x. Fail now rather than after the upstream runs.
ckpt_bytes=$(stat -c %s "$ckpt/model.safetensors")
old_exports=$({ du -sb "$work"/export-fp32 "$work"/export-int8 2>/dev/null || true; } | awk '{s += $1} END {printf "%.0f", s}')
avail=$(( $(df -Pk "$work" | awk 'NR == 2 {print $4}') * 1024 + old_exports ))
need=$(( ckpt_bytes * 24 / 10 ))
(( avail >= need )) || die "not enough disk for the exports under $work: need ~$(( need >> 30 )) GiB, have $(( avail >> 30 )) GiB"

# --image KEY=PATH ... [--state v,...] --task TEXT, NUL-separated so any task text survives.
obs_args=()
while IFS= read -r -d '' a; do obs_args+=("$a"); done < <("$py" - "$obs" <<'PY'
import json, sys
from pathlib import Path
obs = Path(sys.argv[1])
inputs = json.loads((obs / "inputs.json").read_text())
args = []
for key, name in inputs["images"].items():
    args += ["--image", f"{key}={obs / name}"]
if inputs.get("state") is not None:
    args += ["--state", ",".join(repr(float(v)) for v in inputs["state"])]
args += ["--task", inputs["task"]]
sys.stdout.write("".join(a + "\0" for a in args))
PY
)
[[ ${#obs_args[@]} -ge 4 ]] || die "could not read $obs/inputs.json"

# Runs a command with stdout to $1, and writes its wall seconds / peak RSS (children's maxrss) to $2.
measure() {
    local out="$1" proc="$2"; shift 2
    "$py" -c '
import json, resource, subprocess, sys, time
out, proc, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
t0 = time.perf_counter()
with open(out, "wb") as f:
    rc = subprocess.run(cmd, stdout=f).returncode
seconds = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
with open(proc, "w") as f:
    json.dump({"seconds": seconds, "peak_rss_mb": rss, "rc": rc}, f)
sys.exit(rc)
' "$out" "$proc" "$@"
}

log "size=$size threads=$threads iters=$iters warmup=$warmup vjx=$vjx"
log "checkpoint=$ckpt backbone=$backbone obs=$obs"

# ---- Upstream -----------------------------------------------------------------------------------
for mode in fp32 autocast; do
    log "upstream $mode"
    "$py" bench/upstream_bench.py --checkpoint "$ckpt" --backbone "$backbone" --obs "$obs" --mode "$mode" \
        --threads "$threads" --iters "$iters" --warmup "$warmup" --dump "$res/dump-upstream-$mode" \
        > "$res/upstream-$mode.json" || die "upstream $mode failed"
done

# ---- vjx export ---------------------------------------------------------------------------------
precisions=(fp32)
$export_has_precision && precisions+=(int8)
for prec in "${precisions[@]}"; do
    log "vjx export $prec"
    rm -rf "$work/export-$prec"  # replaced anyway; removing it first halves the peak disk use
    cmd=("$vjx" export --checkpoint "$ckpt" --backbone "$backbone" --out "$work/export-$prec" --force --json)
    $export_has_precision && cmd+=(--precision "$prec")
    measure "$res/export-$prec.json" "$res/export-$prec.proc.json" "${cmd[@]}" || die "vjx export $prec failed"
done

# ---- vjx bench + run ----------------------------------------------------------------------------
runs=("tract fp32" "ort fp32")
$export_has_precision && runs+=("ort int8")
bench_flags=(--device cpu --iters "$iters" --warmup "$warmup" --json)
$bench_has_threads && bench_flags+=(--threads "$threads")
for r in "${runs[@]}"; do
    read -r backend prec <<<"$r"
    log "vjx bench $backend $prec"
    "$vjx" bench "$work/export-$prec" --backend "$backend" "${bench_flags[@]}" "${obs_args[@]}" \
        > "$res/vjx-bench-$backend-$prec.json" || die "vjx bench $backend $prec failed"
done
dump_args=()
for prec in "${precisions[@]}"; do
    log "vjx run ort $prec (dump)"
    run_flags=(--backend ort --device cpu --noise "$obs/noise.npy" --dump "$res/dump-vjx-ort-$prec" --json)
    $run_has_threads && run_flags+=(--threads "$threads")
    "$vjx" run "$work/export-$prec" "${run_flags[@]}" "${obs_args[@]}" \
        > "$res/vjx-run-ort-$prec.json" || die "vjx run ort $prec failed"
    dump_args+=(--dump "vjx-ort-$prec=$res/dump-vjx-ort-$prec")
done

# ---- Floors + report ----------------------------------------------------------------------------
log "compute floor"
"$py" bench/floors.py --checkpoint "$ckpt" --backbone "$backbone" --obs "$obs" --threads "$threads" \
    > "$res/floors.json" || die "floors.py failed"

collect=(--out "$work/compare.json" --meta "size=$size" --meta "threads=$threads" --meta "iters=$iters"
         --meta "warmup=$warmup" --meta "vjx=$vjx" --meta "checkpoint=$ckpt"
         --upstream "fp32=$res/upstream-fp32.json" --upstream "autocast=$res/upstream-autocast.json"
         --floors "$res/floors.json" --reference-dump "$res/dump-upstream-fp32"
         --dump "upstream-autocast=$res/dump-upstream-autocast" "${dump_args[@]}")
for prec in "${precisions[@]}"; do
    collect+=(--export "$prec=$res/export-$prec.json" --export-proc "$prec=$res/export-$prec.proc.json")
done
for r in "${runs[@]}"; do
    read -r backend prec <<<"$r"
    collect+=(--bench "$backend-$prec=$res/vjx-bench-$backend-$prec.json")
done
log "collect -> $work/compare.json"
"$py" bench/collect.py "${collect[@]}"
