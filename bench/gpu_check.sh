#!/usr/bin/env bash
# vjx on an NVIDIA GPU, in one command: fixture parity on ONNX Runtime's CUDA and TensorRT
# providers (fp32 and fp16 exports), then the full-size chunk latency per stage, as one JSON.
#
# Usage: bench/gpu_check.sh [options]
#   --vjx PATH               vjx binary (default: $VJX, else target/release/vjx)
#   --ort-wheel FILE         an onnxruntime-gpu wheel; its onnxruntime/capi/lib*.so* are unpacked
#                            into the work dir. FILE missing but FILE.part* present: the pieces are
#                            joined in name order first; FILE.sha256 (sha256sum format), if present,
#                            is checked
#   --ort-dir DIR            a dir holding libonnxruntime.so* and its libonnxruntime_providers_*.so
#                            (an unpacked onnxruntime/capi); without either: $ORT_DYLIB_PATH
#   --tensorrt DIR           a dir with libnvinfer.so.* (default: the tensorrt_libs Python package,
#                            else LD_LIBRARY_PATH and the system dirs)
#   --providers LIST         ONNX Runtime devices to check, comma-separated: cuda, tensorrt, cpu
#                            (default cuda,tensorrt)
#   --precisions LIST        exports to check: fp32, fp16, int8 (default fp32,fp16)
#   --cases LIST             fixture cases, e.g. world_model,lingbot_va/no_guidance (default: all
#                            under tests/fixtures/vla_jepa and tests/fixtures/lingbot_va)
#   --full-vla-jepa DIR      a bench/make_full_size.py output (checkpoint/, backbone/, obs/)
#   --real-width-lingbot DIR a bench/lingbot_va_compare.py work dir (checkpoint/, wan/, episode/)
#   --latency-precision P    export precision of the full-size VLA-JEPA latency run (default fp32)
#   --iters N, --warmup N    timed / untimed chunks of each latency run (default 3 / 1)
#   --max-seconds S          the whole run's time budget (default 450); a step that would start
#                            after it is skipped, a command still running at it is killed
#   --budget KIND=S          one step's time budget, for every provider: export, probe, parity,
#                            export-full, latency (defaults in docs/gpu-check.md)
#   --python PY              python3 for the helper and for finding pip's CUDA libraries
#                            (default python3; it needs no numpy)
#   --work DIR               scratch dir, emptied first (default bench/work/gpu_check)
#   --keep-trt-cache         keep <work>/trt_cache (TensorRT engines and timing caches) from the
#                            last run instead of emptying it: engines are then reused, not rebuilt.
#                            Only when the checkpoints have not changed since (ONNX Runtime keys an
#                            engine by the graph's path and structure, not by its weights)
#   --out FILE               the report (default bench/work/gpu_check.json); written once, at the
#                            end, by rename; an old one is removed at the start
# Exit codes: 0 every step ran and passed (a full-size step without its DIR is skipped and does
#   not count); 1 a step failed (JSON written); 2 bad usage or input (nothing run, no JSON);
#   3 nothing failed, but a requested provider was not checked (no GPU, no TensorRT libraries:
#   JSON written, the reasons in it); 130 interrupted (no JSON).
# Progress goes to stderr. docs/gpu-check.md has the JSON's fields and how to run this on a lent GPU.
set -euo pipefail
export LC_ALL=C  # one decimal point for $EPOCHREALTIME, one sort order

usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0" >&2; }
bad() { echo "gpu_check.sh: error: $*" >&2; exit 2; }
here="$(pwd)"
abspath() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$here" "$1" ;; esac; }

root="$(cd "$(dirname "$0")/.." && pwd)"
vjx="${VJX:-$root/target/release/vjx}"
ort_wheel= ort_dir= tensorrt= full_vla= real_lingbot=
providers=cuda,tensorrt precisions=fp32,fp16 cases_arg= latency_precision=fp32
iters=3 warmup=1 max_seconds=450 python=python3 keep_trt_cache=false
work="$root/bench/work/gpu_check" out="$root/bench/work/gpu_check.json"
declare -A budget_override=()
need() { [[ $# -ge 2 && -n "$2" ]] || bad "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --vjx) need "$@"; vjx="$(abspath "$2")"; shift 2 ;;
        --ort-wheel) need "$@"; ort_wheel="$(abspath "$2")"; shift 2 ;;
        --ort-dir) need "$@"; ort_dir="$(abspath "$2")"; shift 2 ;;
        --tensorrt) need "$@"; tensorrt="$(abspath "$2")"; shift 2 ;;
        --providers) need "$@"; providers="$2"; shift 2 ;;
        --precisions) need "$@"; precisions="$2"; shift 2 ;;
        --cases) need "$@"; cases_arg="$2"; shift 2 ;;
        --full-vla-jepa) need "$@"; full_vla="$(abspath "$2")"; shift 2 ;;
        --real-width-lingbot) need "$@"; real_lingbot="$(abspath "$2")"; shift 2 ;;
        --latency-precision) need "$@"; latency_precision="$2"; shift 2 ;;
        --iters) need "$@"; iters="$2"; shift 2 ;;
        --warmup) need "$@"; warmup="$2"; shift 2 ;;
        --max-seconds) need "$@"; max_seconds="$2"; shift 2 ;;
        --budget) need "$@"; budget_override["${2%%=*}"]="${2#*=}"; [[ "$2" == *=* ]] || bad "--budget wants KIND=SECONDS, got '$2'"; shift 2 ;;
        --python) need "$@"; python="$2"; shift 2 ;;
        --work) need "$@"; work="$(abspath "$2")"; shift 2 ;;
        --keep-trt-cache) keep_trt_cache=true; shift ;;
        --out) need "$@"; out="$(abspath "$2")"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_check.sh: error: unknown argument: $1" >&2; usage; exit 2 ;;
    esac
done

# ---- Validate (exit 2 before anything runs) -----------------------------------------------------
posint() { [[ "$2" =~ ^[0-9]+$ ]] && (( $2 >= ${3:-1} )) || bad "$1 must be an integer >= ${3:-1}, got '$2'"; }
posint --iters "$iters"; posint --warmup "$warmup" 0; posint --max-seconds "$max_seconds" 30
for k in "${!budget_override[@]}"; do
    case "$k" in export|probe|parity|export-full|latency) ;; *) bad "--budget: unknown step kind '$k' (export, probe, parity, export-full, latency)" ;; esac
    posint "--budget $k" "${budget_override[$k]}"
done
IFS=, read -r -a provider_list <<<"$providers"
[[ ${#provider_list[@]} -gt 0 ]] || bad "--providers is empty"
declare -A seen=()
for p in "${provider_list[@]}"; do
    case "$p" in cpu|cuda|tensorrt) ;; *) bad "--providers: unknown provider '$p' (cuda, tensorrt, cpu)" ;; esac
    [[ -z "${seen[$p]:-}" ]] || bad "--providers: '$p' given twice"; seen[$p]=1
done
IFS=, read -r -a precision_list <<<"$precisions"
[[ ${#precision_list[@]} -gt 0 ]] || bad "--precisions is empty"
for p in "${precision_list[@]}" "$latency_precision"; do
    case "$p" in fp32|fp16|int8) ;; *) bad "unknown precision '$p' in --precisions or --latency-precision (fp32, fp16, int8)" ;; esac
done
seen=(); for p in "${precision_list[@]}"; do [[ -z "${seen[$p]:-}" ]] || bad "--precisions: '$p' given twice"; seen[$p]=1; done
command -v "$python" >/dev/null || bad "--python $python: not found (python3 is needed; numpy is not)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 8))' || bad "--python $python: Python 3.8 or newer is needed"
command -v timeout >/dev/null || bad "the coreutils \`timeout\` command is needed"
[[ -f "$vjx" && -x "$vjx" ]] || bad "vjx binary not found or not executable: $vjx (build it with \`cargo build --release\`, or give --vjx / VJX)"
helper="$root/bench/gpu_check.py"
[[ -f "$helper" ]] || bad "missing $helper"
if [[ -n "$ort_wheel" && -n "$ort_dir" ]]; then bad "give --ort-wheel or --ort-dir, not both"; fi
if [[ -n "$ort_wheel" && ! -f "$ort_wheel" ]] && ! compgen -G "$ort_wheel.part*" >/dev/null; then
    bad "--ort-wheel $ort_wheel: no such file (and no $(basename "$ort_wheel").part* pieces beside it)"
fi
if [[ -n "$ort_dir" ]]; then
    [[ -d "$ort_dir" ]] || bad "--ort-dir $ort_dir: no such dir"
    compgen -G "$ort_dir/libonnxruntime.so*" >/dev/null || bad "--ort-dir $ort_dir: no libonnxruntime.so* in it"
fi
if [[ -z "$ort_wheel" && -z "$ort_dir" ]]; then
    [[ -n "${ORT_DYLIB_PATH:-}" ]] || bad "no ONNX Runtime library: give --ort-wheel FILE or --ort-dir DIR, or set ORT_DYLIB_PATH"
    [[ -f "$ORT_DYLIB_PATH" ]] || bad "ORT_DYLIB_PATH does not exist: $ORT_DYLIB_PATH"
fi
if [[ -n "$tensorrt" ]]; then
    [[ -d "$tensorrt" ]] || bad "--tensorrt $tensorrt: no such dir"
    compgen -G "$tensorrt/libnvinfer.so.*" >/dev/null || bad "--tensorrt $tensorrt: no libnvinfer.so.* in it"
fi
if [[ -n "$full_vla" ]]; then
    for f in checkpoint/config.json checkpoint/model.safetensors backbone/config.json obs/inputs.json; do
        [[ -f "$full_vla/$f" ]] || bad "--full-vla-jepa $full_vla: missing $f (make it with bench/make_full_size.py)"
    done
fi
if [[ -n "$real_lingbot" ]]; then
    for f in checkpoint/config.json wan episode/episode.json; do
        [[ -e "$real_lingbot/$f" ]] || bad "--real-width-lingbot $real_lingbot: missing $f (make it with bench/lingbot_va_compare.py)"
    done
fi

# Fixture cases: "family/name" for each.
fixtures="$root/tests/fixtures"
case_list=()
if [[ -z "$cases_arg" ]]; then
    for d in "$fixtures"/vla_jepa/*/ "$fixtures"/lingbot_va/*/; do
        [[ -f "$d/checkpoint/config.json" ]] && case_list+=("$(basename "$(dirname "$d")")/$(basename "$d")")
    done
else
    IFS=, read -r -a wanted <<<"$cases_arg"
    for c in "${wanted[@]}"; do
        found=0
        if [[ "$c" == */* ]]; then families=("${c%%/*}"); name="${c#*/}"; else families=(vla_jepa lingbot_va); name="$c"; fi
        for fam in "${families[@]}"; do
            if [[ "$fam" =~ ^(vla_jepa|lingbot_va)$ && "$name" =~ ^[A-Za-z0-9_.-]+$ \
                  && -f "$fixtures/$fam/$name/checkpoint/config.json" ]]; then
                case_list+=("$fam/$name"); found=1
            fi
        done
        if (( ! found )); then
            have=(); for d in "$fixtures"/vla_jepa/*/ "$fixtures"/lingbot_va/*/; do d="${d%/}"; have+=("${d#"$fixtures"/}"); done
            bad "--cases: no fixture case '$c' under $fixtures (have: ${have[*]})"
        fi
    done
fi
[[ ${#case_list[@]} -gt 0 ]] || bad "no fixture cases under $fixtures"
seen=(); for c in "${case_list[@]}"; do [[ -z "${seen[$c]:-}" ]] || bad "--cases: '$c' given twice"; seen[$c]=1; done

# ---- Work dir, logging, timing ------------------------------------------------------------------
SECONDS=0
t0_unix=$EPOCHREALTIME
deadline=$(( max_seconds - 10 ))  # ten seconds kept for the report
log() { printf '[gpu_check %s +%3ds] %s\n' "$(date +%H:%M:%S)" "$SECONDS" "$*" >&2; }
py() { "$python" "$helper" "$@"; }
running=
interrupted() {
    [[ -n "$running" ]] && kill -TERM "$running" 2>/dev/null
    log "interrupted: no report written"
    exit 130
}
trap interrupted INT TERM
trap 'echo "gpu_check.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

# The work dir is emptied; refuse a non-empty dir that this script did not make.
if [[ -d "$work" && ! -f "$work/.gpu_check_work" ]] && [[ -n "$(ls -A "$work")" ]]; then
    bad "--work $work is not empty and was not made by gpu_check.sh (no .gpu_check_work in it): give another dir"
fi
mkdir -p "$work"
touch "$work/.gpu_check_work"
rm -rf "$work"/{exports,dumps,cases,steps,logs} "$work"/*.json
$keep_trt_cache || rm -rf "$work/trt_cache"
mkdir -p "$work"/{exports,dumps,cases,steps,logs,trt_cache}
rm -f "$out"
log "work dir $work, report $out, budget ${max_seconds}s"

budget() {  # budget KIND PROVIDER
    if [[ -n "${budget_override[$1]:-}" ]]; then echo "${budget_override[$1]}"; return; fi
    case "$1/${2:-}" in
        export/*) echo 60 ;;
        probe/cpu) echo 30 ;; probe/cuda) echo 60 ;; probe/tensorrt) echo 120 ;;
        parity/cpu) echo 120 ;; parity/cuda) echo 90 ;; parity/tensorrt) echo 150 ;;
        export-full/*) echo 150 ;;
        latency/cpu) echo 300 ;; latency/cuda) echo 120 ;; latency/tensorrt) echo 180 ;;
        *) echo 60 ;;
    esac
}
# The next step's record: numbered in the order written (called in $(...), so no counter variable).
step_file() { printf '%s/steps/%03d.json' "$work" $(( $(find "$work/steps" -name '*.json' | wc -l) + 1 )); }
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }
# step_begin NAME BUDGET: sets step_end (in $SECONDS) to the earlier of the step's and the run's end.
step_begin() {
    step_name="$1"; step_budget="$2"; step_t0=$EPOCHREALTIME
    step_end=$(( SECONDS + step_budget )); (( step_end <= deadline )) || step_end=$deadline
    log "$step_name (budget ${step_budget}s)"
}
out_of_time() { (( SECONDS >= deadline )); }
budget_reason="not started: the run's time budget (--max-seconds $max_seconds) was used up"
# run_timed OUT ERR CMD...: runs CMD within the step's time left; 124 when it ran out.
run_timed() {
    local o="$1" e="$2"; shift 2
    local left=$(( step_end - SECONDS )) rc=0
    if (( left <= 0 )); then echo "not started: no time left in this step" >"$e"; : >"$o"; return 124; fi
    # In the background so that an interrupt reaches the trap at once (and ends the command).
    timeout -k 5 "$left" "$@" >"$o" 2>"$e" &
    running=$!
    wait "$running" || rc=$?
    running=
    return "$rc"
}
# why RC ERR WHAT: one line saying why a command failed.
why() {
    if [[ "$1" == 124 && "$(head -c 12 "$2")" == "not started:" ]]; then
        echo "not started ($3): the step's time budget (${step_budget}s) or the run's (${max_seconds}s) was used up"
    elif [[ "$1" == 124 || "$1" == 137 ]]; then
        echo "timed out while $3 (step budget ${step_budget}s, run budget ${max_seconds}s)"
    else
        echo "vjx failed while $3 (exit $1): $(py error-line "$2")"
    fi
}

# ---- Machine, ONNX Runtime, CUDA / TensorRT libraries -------------------------------------------
py machine --out "$work/machine.json"
gpu_found="$(py get "$work/machine.json" gpu_found)"
gpu_reason="$(py get "$work/machine.json" gpu_reason)"
if [[ "$gpu_found" == true ]]; then
    log "GPU: $(py get "$work/machine.json" gpus) CUDA $(py get "$work/machine.json" cuda_version)"
else
    log "$gpu_reason"
fi

if [[ -n "$ort_wheel" ]]; then
    log "unpacking ONNX Runtime from $(basename "$ort_wheel")"
    ORT_DYLIB_PATH="$(py unpack-wheel "$ort_wheel" "$work/ort")" || bad "--ort-wheel $ort_wheel could not be unpacked (see above)"
    ort_source=wheel
elif [[ -n "$ort_dir" ]]; then
    ORT_DYLIB_PATH="$(compgen -G "$ort_dir/libonnxruntime.so*" | sort | tail -n1)"
    ort_source=dir
else
    ort_source=ORT_DYLIB_PATH
fi
export ORT_DYLIB_PATH

py cuda-libs ${tensorrt:+--tensorrt "$tensorrt"} --out "$work/libs.json"
lib_dirs="$(py get "$work/libs.json" dirs | "$python" -c 'import json, sys; print(":".join(json.load(sys.stdin)))')"
if [[ -n "$lib_dirs" ]]; then
    export LD_LIBRARY_PATH="$lib_dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    log "CUDA/cuDNN/TensorRT library dirs from $python: $(tr ':' ' ' <<<"$lib_dirs")"
fi
trt_found="$(py get "$work/libs.json" tensorrt.found)"
trt_reason="$(py get "$work/libs.json" tensorrt.reason)"
[[ "$trt_found" == true ]] && log "TensorRT $(py get "$work/libs.json" tensorrt.version) in $(py get "$work/libs.json" tensorrt.dir)" || log "$trt_reason"
py ort-info "$ORT_DYLIB_PATH" --source "$ort_source" --out "$work/ort.json"
log "ONNX Runtime $(py get "$work/ort.json" version) at $ORT_DYLIB_PATH"

vjx_version="$("$vjx" --version 2>&1 | head -n1 || true)"
commit="$(git -C "$root" rev-parse HEAD 2>/dev/null || true)"
py meta --out "$work/meta.json" --set "started_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)" --int "started_unix=$t0_unix" \
    --set "command=bench/gpu_check.sh --providers $providers --precisions $precisions${cases_arg:+ --cases $cases_arg}" \
    --set "repo_commit=$commit" --set "vjx=$vjx" --set "vjx_version=$vjx_version" \
    --list "providers=$providers" --list "precisions=$precisions" --list "cases=$(IFS=,; echo "${case_list[*]}")" \
    --int "max_seconds=$max_seconds" --set "work=$work" --set "keep_trt_cache=$keep_trt_cache" --set "ort_dylib_path=$ORT_DYLIB_PATH" \
    --set "ld_library_path=${LD_LIBRARY_PATH:-}" \
    --set "full_vla_jepa=$full_vla" --set "real_width_lingbot=$real_lingbot"

# ---- Fixture exports ----------------------------------------------------------------------------
declare -A exported=() export_note=()
backbone_of() { [[ "$1" == vla_jepa/* ]] && echo backbone || echo wan; }
for prec in "${precision_list[@]}"; do
    step_begin "export/$prec" "$(budget export)"
    dir="$work/cases/export-$prec"; mkdir -p "$dir"; i=0
    for c in "${case_list[@]}"; do
        i=$((i + 1)); fam="${c%%/*}"; name="${c#*/}"; src="$fixtures/$c"
        dest="$work/exports/${fam}-${name}-$prec"; t=$EPOCHREALTIME; rc=0
        run_timed "$work/logs/export-$fam-$name-$prec.json" "$work/logs/export-$fam-$name-$prec.err" \
            "$vjx" export --checkpoint "$src/checkpoint" --backbone "$src/$(backbone_of "$c")" \
            --out "$dest" --precision "$prec" --force --json || rc=$?
        if (( rc == 0 )); then
            exported["$c/$prec"]="$dest"; status=ok; reason=
        else
            reason="$(why "$rc" "$work/logs/export-$fam-$name-$prec.err" "exporting $c at $prec")"
            # vjx refuses precisions a policy does not have yet (LingBot-VA is fp32 only): not a failure.
            if (( rc != 124 && rc != 137 )) && grep -q "exports only" "$work/logs/export-$fam-$name-$prec.err"; then
                status=skipped; reason="vjx has no $prec export of this policy: $(py error-line "$work/logs/export-$fam-$name-$prec.err")"
            else
                status=failed
            fi
            export_note["$c/$prec"]="$reason"
            log "  $c $prec: $status: $reason"
        fi
        py case --out "$(printf '%s/%02d.json' "$dir" "$i")" --family "$fam" --case "$name" --status "$status" \
            --reason "$reason" --seconds "$(elapsed "$t")"
    done
    py export-step --name "export/$prec" --kind export --precision "$prec" --status ok --dir "$dir" \
        --seconds "$(elapsed "$step_t0")" --budget "$step_budget" --out "$(step_file)" >/dev/null
done

# ---- Provider probes ----------------------------------------------------------------------------
# One `vjx bench` iteration on the first fp32 fixture export: does the provider load, where do the
# graphs land. Its verdict gates that provider's later steps.
declare -A probe_status=() probe_reason=()
probe_case=
for c in "${case_list[@]}"; do [[ -n "${exported[$c/fp32]:-}" ]] && { probe_case="$c"; break; }; done
if [[ -z "$probe_case" ]]; then
    for c in "${case_list[@]}"; do for prec in "${precision_list[@]}"; do
        [[ -z "$probe_case" && -n "${exported[$c/$prec]:-}" ]] && { probe_case="$c"; probe_prec="$prec"; }
    done; done
fi
probe_prec="${probe_prec:-fp32}"
trt_note="TensorRT runs with vjx's --trt-fp16 auto (FP16 kernels for fp16/int8 exports only); on Ampere and newer GPUs the CUDA and TensorRT providers may still use TF32 for FP32 products, which can move fp32 stages past the 1e-4 bar"
cache_for() { echo "$work/trt_cache/$(tr / - <<<"$1")"; }
for p in "${provider_list[@]}"; do
    name="probe/$p"
    if out_of_time; then
        probe_status[$p]=skipped; probe_reason[$p]="$budget_reason"
        py step --name "$name" --kind probe --provider "$p" --status skipped --reason "$budget_reason" --out "$(step_file)" >/dev/null
        continue
    fi
    step_begin "$name" "$(budget probe "$p")"
    pre=
    if [[ "$p" != cpu && "$gpu_found" != true ]]; then pre="$gpu_reason"; fi
    if [[ "$p" == tensorrt && "$trt_found" != true ]]; then pre="${pre:+$pre; }$trt_reason"; fi
    if [[ -z "$probe_case" ]]; then
        status=failed; reason="no fixture case was exported (see export steps)"; [[ -n "$pre" ]] && status=skipped && reason="$pre; $reason"
        probe_status[$p]=$status; probe_reason[$p]="$reason"
        py step --name "$name" --kind probe --provider "$p" --status "$status" --reason "$reason" \
            --seconds "$(elapsed "$step_t0")" --budget "$step_budget" --out "$(step_file)" >/dev/null
        continue
    fi
    o="$work/logs/probe-$p.json" e="$work/logs/probe-$p.err" rc=0
    run_timed "$o" "$e" "$vjx" bench "${exported[$probe_case/$probe_prec]}" --backend ort --device "$p" \
        --iters 1 --warmup 0 --json --cache-dir "$(cache_for "$probe_case-$probe_prec")" || rc=$?
    if (( rc == 0 )); then
        status=ok; reason=
    else
        reason="$(why "$rc" "$e" "loading $probe_case ($probe_prec) on $p")"
        if [[ -n "$pre" ]]; then status=skipped; reason="$pre; $reason"; else status=failed; fi
    fi
    probe_status[$p]=$status; probe_reason[$p]="$reason"
    log "  $p: $status${reason:+: $reason}"
    # Where the graphs landed; the fixture's timings say nothing about the provider's speed.
    results=(); [[ "$status" == ok ]] && results=(--results "$o" --keys backend,device,policy_type,precision,placements,load_ms)
    py step --name "$name" --kind probe --provider "$p" --precision "$probe_prec" --status "$status" --reason "$reason" \
        --seconds "$(elapsed "$step_t0")" --budget "$step_budget" "${results[@]}" --out "$(step_file)" >/dev/null
done

# ---- Fixture parity per provider x precision ----------------------------------------------------
for p in "${provider_list[@]}"; do
    for prec in "${precision_list[@]}"; do
        name="parity/$p/$prec"
        note=; [[ "$p" == tensorrt ]] && note="$trt_note"
        if [[ "${probe_status[$p]}" != ok ]]; then
            py step --name "$name" --kind parity --provider "$p" --precision "$prec" --status skipped \
                --reason "not run: probe/$p ${probe_status[$p]}: ${probe_reason[$p]}" --out "$(step_file)" >/dev/null
            continue
        fi
        if out_of_time; then
            py step --name "$name" --kind parity --provider "$p" --precision "$prec" --status skipped \
                --reason "$budget_reason" --out "$(step_file)" >/dev/null
            continue
        fi
        step_begin "$name" "$(budget parity "$p")"
        dir="$work/cases/parity-$p-$prec"; mkdir -p "$dir"; i=0
        for c in "${case_list[@]}"; do
            fam="${c%%/*}"; cname="${c#*/}"; src="$fixtures/$c"; export_dir="${exported[$c/$prec]:-}"
            if [[ "$fam" == vla_jepa ]]; then
                mapfile -t runs < <(cd "$src" && ls -d obs_* 2>/dev/null)
            else
                runs=("")
            fi
            for obs in "${runs[@]}"; do
                i=$((i + 1)); rec="$(printf '%s/%03d.json' "$dir" "$i")"; tag="$fam-$cname${obs:+-$obs}"
                if [[ -z "$export_dir" ]]; then
                    status=skipped; [[ "${export_note[$c/$prec]:-}" == vjx\ has\ no* ]] || status=failed
                    py case --out "$rec" --family "$fam" --case "$cname" ${obs:+--obs "$obs"} --status "$status" \
                        --reason "not exported: ${export_note[$c/$prec]:-}"
                    continue
                fi
                dump="$work/dumps/$p-$prec/$tag"; o="$work/logs/parity-$p-$prec-$tag.json"; e="${o%.json}.err"
                t=$EPOCHREALTIME; rc=0
                if [[ "$fam" == vla_jepa ]]; then
                    mapfile -d '' -t obs_args < <(py obs-args --inputs "$src/$obs/inputs.json")
                    run_timed "$o" "$e" "$vjx" run "$export_dir" "${obs_args[@]}" --backend ort --device "$p" \
                        --noise "$src/$obs/noise.npy" --dump "$dump" --json --cache-dir "$(cache_for "$c-$prec")" || rc=$?
                else
                    run_timed "$o" "$e" "$vjx" episode "$export_dir" --episode "$src/episode.json" --backend ort \
                        --device "$p" --json --dump "$dump" --cache-dir "$(cache_for "$c-$prec")" || rc=$?
                fi
                if (( rc != 0 )); then
                    reason="$(why "$rc" "$e" "running $c${obs:+ $obs}")"; status=failed
                    py case --out "$rec" --family "$fam" --case "$cname" ${obs:+--obs "$obs"} --status "$status" \
                        --reason "$reason" --seconds "$(elapsed "$t")"
                    log "  $c${obs:+ $obs}: $status: $reason"
                else
                    seconds="$(elapsed "$t")"
                    if [[ "$fam" == vla_jepa ]]; then
                        compare=(compare-vla-jepa --expected "$src/$obs/expected" --obs "$obs")
                    else
                        compare=(compare-lingbot --reference "$src/reference" --stdout "$o")
                    fi
                    py "${compare[@]}" --dump "$dump" --precision "$prec" --family "$fam" --case "$cname" \
                        --seconds "$seconds" --out "$rec" 2>"$e.compare" \
                        || py case --out "$rec" --family "$fam" --case "$cname" ${obs:+--obs "$obs"} --status failed \
                            --reason "comparing the dump failed: $(tail -n1 "$e.compare")" --seconds "$seconds"
                    [[ "$(py get "$rec" status)" == ok ]] || log "  $c${obs:+ $obs}: $(py get "$rec" reason)"
                fi
            done
        done
        status="$(py parity-step --name "$name" --kind parity --provider "$p" --precision "$prec" --status ok \
            --dir "$dir" --seconds "$(elapsed "$step_t0")" --budget "$step_budget" ${note:+--note "$note"} --out "$(step_file)")"
        log "  $name: $status"
    done
done

# ---- Full-size latency --------------------------------------------------------------------------
# latency_model NAME DIR CHECKPOINT BACKBONE PRECISION OBS_FLAG OBS_FILE WHY_MISSING
latency_model() {
    local model="$1" dir="$2" ckpt="$3" backbone="$4" prec="$5" obs_flag="$6" obs_file="$7" missing="$8"
    local p export_dir="$work/exports/$model-$prec" export_ok=false export_reason="" rc o e
    if [[ -z "$dir" ]]; then
        for p in "${provider_list[@]}"; do
            py step --name "latency/$model/$p" --kind latency --provider "$p" --precision "$prec" --status skipped \
                --reason "$missing" --out "$(step_file)" >/dev/null
        done
        log "latency/$model: skipped: $missing"
        return
    fi
    if out_of_time; then
        export_reason="$budget_reason"
        py step --name "export/$model" --kind export --precision "$prec" --status skipped --reason "$budget_reason" --out "$(step_file)" >/dev/null
    else
        step_begin "export/$model" "$(budget export-full)"
        rc=0
        run_timed "$work/logs/export-$model.json" "$work/logs/export-$model.err" "$vjx" export --checkpoint "$ckpt" \
            --backbone "$backbone" --out "$export_dir" --precision "$prec" --force --json || rc=$?
        if (( rc == 0 )); then
            export_ok=true
            py step --name "export/$model" --kind export --precision "$prec" --status ok --seconds "$(elapsed "$step_t0")" \
                --budget "$step_budget" --results "$work/logs/export-$model.json" --out "$(step_file)" >/dev/null
        else
            export_reason="$(why "$rc" "$work/logs/export-$model.err" "exporting $ckpt")"
            log "  $export_reason"
            py step --name "export/$model" --kind export --precision "$prec" --status failed --reason "$export_reason" \
                --seconds "$(elapsed "$step_t0")" --budget "$step_budget" --out "$(step_file)" >/dev/null
        fi
    fi
    local obs_args=()
    mapfile -d '' -t obs_args < <(py obs-args "$obs_flag" "$obs_file")
    for p in "${provider_list[@]}"; do
        local name="latency/$model/$p"
        if [[ "${probe_status[$p]}" != ok ]]; then
            py step --name "$name" --kind latency --provider "$p" --precision "$prec" --status skipped \
                --reason "not run: probe/$p ${probe_status[$p]}: ${probe_reason[$p]}" --out "$(step_file)" >/dev/null
            continue
        fi
        if [[ "$export_ok" != true ]]; then
            py step --name "$name" --kind latency --provider "$p" --precision "$prec" --status skipped \
                --reason "not run: export/$model: $export_reason" --out "$(step_file)" >/dev/null
            continue
        fi
        if out_of_time; then
            py step --name "$name" --kind latency --provider "$p" --precision "$prec" --status skipped \
                --reason "$budget_reason" --out "$(step_file)" >/dev/null
            continue
        fi
        step_begin "$name" "$(budget latency "$p")"
        o="$work/logs/latency-$model-$p.json"; e="${o%.json}.err"; rc=0
        run_timed "$o" "$e" "$vjx" bench "$export_dir" "${obs_args[@]}" --backend ort --device "$p" \
            --iters "$iters" --warmup "$warmup" --json --cache-dir "$(cache_for "$model-$prec")" || rc=$?
        if (( rc == 0 )); then
            py latency-step --name "$name" --kind latency --provider "$p" --precision "$prec" --status ok \
                --bench "$o" --model "$model" --export "$export_dir" --seconds "$(elapsed "$step_t0")" \
                --budget "$step_budget" --out "$(step_file)" >/dev/null
        else
            local reason; reason="$(why "$rc" "$e" "benchmarking $model on $p")"
            log "  $reason"
            py step --name "$name" --kind latency --provider "$p" --precision "$prec" --status failed --reason "$reason" \
                --seconds "$(elapsed "$step_t0")" --budget "$step_budget" --out "$(step_file)" >/dev/null
        fi
    done
}
latency_model vla_jepa_full "$full_vla" "$full_vla/checkpoint" "$full_vla/backbone" "$latency_precision" \
    --inputs "$full_vla/obs/inputs.json" \
    "no --full-vla-jepa DIR given: the full-size checkpoint (bench/make_full_size.py; needs torch, transformers and lerobot 0.6.1; ~10 GB) was not made available"
latency_model lingbot_va_real_width "$real_lingbot" "$real_lingbot/checkpoint" "$real_lingbot/wan" fp32 \
    --episode "$real_lingbot/episode/episode.json" \
    "no --real-width-lingbot DIR given: the real-width checkpoint (bench/lingbot_va_compare.py; needs torch, transformers and lerobot 0.6.1; ~6 GB) was not made available"

# ---- Report -------------------------------------------------------------------------------------
log "report"
rc=0
py assemble --work "$work" --meta "$work/meta.json" --out "$out" || rc=$?
case "$rc" in
    0) log "all checks passed: $out" ;;
    1) log "some checks failed: $out" ;;
    3) log "nothing failed, but not every requested provider could be checked: $out" ;;
    *) log "the report could not be written (exit $rc)" ;;
esac
exit "$rc"
