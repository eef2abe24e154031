#!/usr/bin/env python3
"""Helpers of bench/gpu_check.sh: machine and library discovery, stage comparisons, the report.

Standard library only (no numpy): the .npy files it reads are little-endian C-order arrays, read
with `struct`. Each subcommand is one small job the shell script hands over:

  machine                        GPU (nvidia-smi), driver, CUDA version, CPU, memory, OS -> JSON
  unpack-wheel WHEEL DEST        onnxruntime/capi/lib*.so* of an onnxruntime(-gpu) wheel into DEST
                                 (WHEEL missing but WHEEL.part-* present: joined first); prints the
                                 libonnxruntime path
  cuda-libs                      dirs of CUDA/cuDNN libraries in this Python's site-packages
                                 (nvidia/*/lib, nvidia/*/*/lib) and of TensorRT's (tensorrt_libs)
  ort-info LIB                   ONNX Runtime version, the provider libraries beside LIB, the
                                 shared libraries each one needs and which of those are missing
  obs-args                       the --image/--state/--task arguments of an observation, NUL-separated
  error-line STDERR_FILE         vjx's `error: ...` message (or the end of the output) on one line
  compare-vla-jepa / compare-lingbot   relative L2 of every dumped stage against the fixture
  step / parity-step / latency-step    one step's record
  assemble                       the final JSON (written atomically) and the exit code
  get FILE KEY                   one value of a JSON file (dotted key), for the shell
"""
from __future__ import annotations

import argparse
import ast
import glob
import json
import math
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

SCHEMA = "vjx-gpu-check/1"

# Exit codes of gpu_check.sh (documented in its --help and docs/gpu-check.md).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_ALL_RUN = 3

# Stages that hold integers: compared exactly (tests/vla_jepa_parity.rs, EXACT).
VLA_JEPA_EXACT = {"input_ids", "image_grid_thw"}
# Host-side table, checked elsewhere (tests/vla_jepa_parity.rs skips it too).
VLA_JEPA_SKIP = {"position_ids"}
# Per chunk, as tests/lingbot_va_parity.rs (CHUNK_STAGES).
LINGBOT_CHUNK_STAGES = [
    "vae_latent",
    "video_velocity_first",
    "video_velocity_last",
    "video_latents",
    "action_velocity_first",
    "action_velocity_last",
    "actions_normalized",
    "actions",
]


def bar(precision: str, stage: str) -> float:
    """The largest relative L2 a stage may have (tests/vla_jepa_parity.rs, docs/precision.md)."""
    if precision == "fp32":
        return 1e-4
    if precision == "fp16":
        return 1e-2
    if precision == "int8":
        if stage.startswith("velocity"):
            return 1e-1
        if stage.startswith("actions"):
            return 3e-2
        return 5e-2
    raise SystemExit(f"gpu_check.py: no bar for precision `{precision}`")


def die(msg: str, code: int = EXIT_USAGE) -> None:
    print(f"gpu_check.py: error: {msg}", file=sys.stderr)
    sys.exit(code)


def write_json_atomic(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial.{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, allow_nan=False) + "\n")
    os.replace(tmp, path)


def finite(x: float):
    """JSON has no inf/nan: an infinite error (integers differ, shapes differ) becomes a string."""
    if isinstance(x, float) and not math.isfinite(x):
        return "inf" if x > 0 else "nan"
    return x


# ---- .npy ---------------------------------------------------------------------------------------
_NPY_FORMATS = {"<f4": "f", "<f8": "d", "<i8": "q", "<i4": "i", "|u1": "B", "<u1": "B", "|b1": "?"}


def read_npy(path: Path):
    """(shape, dtype descr, flat list of values) of a little-endian C-order .npy file."""
    data = path.read_bytes()
    if data[:6] != b"\x93NUMPY":
        raise ValueError(f"{path}: not a .npy file")
    major = data[6]
    if major == 1:
        (hlen,) = struct.unpack_from("<H", data, 8)
        start = 10
    else:
        (hlen,) = struct.unpack_from("<I", data, 8)
        start = 12
    header = ast.literal_eval(data[start : start + hlen].decode("latin1"))
    descr, shape = header["descr"], tuple(header["shape"])
    if descr not in _NPY_FORMATS:
        raise ValueError(f"{path}: dtype {descr} is not read here")
    fmt = _NPY_FORMATS[descr]
    count = 1
    for d in shape:
        count *= d
    body = data[start + hlen :]
    need = count * struct.calcsize(fmt)
    if len(body) < need:
        raise ValueError(f"{path}: {len(body)} bytes of data for shape {shape} {descr}")
    values = list(struct.unpack_from(f"<{count}{fmt}", body, 0))
    if header.get("fortran_order") and len(shape) > 1:
        values = fortran_to_c(values, shape)
    return shape, descr, values


def fortran_to_c(values: list, shape: tuple) -> list:
    """The values of a column-major array in row-major order (vjx dumps some views that way)."""
    strides, step = [], 1
    for d in shape:  # column-major strides: the first axis varies fastest
        strides.append(step)
        step *= d
    index = [0]
    for d, st in zip(shape, strides):  # row-major walk: the last axis varies fastest
        index = [i + k * st for i in index for k in range(d)]
    return [values[i] for i in index]


def rel_l2(got: list, expected: list) -> float:
    """‖got − expected‖ / ‖expected‖ in float64 (as tests/common rel_l2)."""
    num = den = 0.0
    for g, e in zip(got, expected):
        num += (g - e) * (g - e)
        den += e * e
    return math.sqrt(num / max(den, 1e-30))


def compare_files(got_path: Path, exp_path: Path, exact: bool) -> tuple[float, str | None]:
    """(error, problem): error is the relative L2, 0/inf when `exact`; problem names what is wrong."""
    if not got_path.is_file():
        return math.inf, f"vjx did not dump {got_path.name}"
    try:
        gshape, _, g = read_npy(got_path)
        eshape, _, e = read_npy(exp_path)
    except (OSError, ValueError, SyntaxError, KeyError) as err:
        return math.inf, f"unreadable: {err}"
    if gshape != eshape:
        return math.inf, f"shape {list(gshape)} != expected {list(eshape)}"
    if exact:
        return (0.0 if g == e else math.inf), (None if g == e else "integers differ")
    return rel_l2(g, e), None


def case_record(args, errors: dict, problems: dict, seconds: float) -> dict:
    over = {s: e for s, e in errors.items() if not (e <= bar(args.precision, stage_kind(s)))}
    failures = [
        f"{s}: rel L2 {finite(e) if not math.isfinite(e) else f'{e:.3e}'} > {bar(args.precision, stage_kind(s)):.0e}"
        + (f" ({problems[s]})" if s in problems else "")
        for s, e in over.items()
    ]
    return {
        "family": args.family,
        "case": args.case,
        "obs": args.obs,
        "status": "ok" if not over else "failed",
        "reason": None if not over else f"{len(over)} stage(s) over the {args.precision} bar: " + "; ".join(failures[:3]),
        "seconds": round(seconds, 3),
        "errors": {s: finite(e) for s, e in errors.items()},
        "failures": failures,
    }


def stage_kind(stage: str) -> str:
    """`chunk3/vae_latent` -> `vae_latent`; the bar and the worst-per-stage table use this."""
    return stage.split("/", 1)[1] if stage.startswith("chunk") and "/" in stage else stage


def cmd_compare_vla_jepa(args) -> None:
    expected_dir, dump = Path(args.expected), Path(args.dump)
    errors, problems = {}, {}
    files = sorted(expected_dir.glob("*.npy"))
    if not files:
        die(f"no expected .npy files in {expected_dir}")
    for exp in files:
        stage = exp.stem
        if stage in VLA_JEPA_SKIP:
            continue
        err, problem = compare_files(dump / exp.name, exp, stage in VLA_JEPA_EXACT)
        errors[stage] = err
        if problem:
            problems[stage] = problem
    write_json_atomic(Path(args.out), case_record(args, errors, problems, args.seconds))


def cmd_compare_lingbot(args) -> None:
    ref, dump = Path(args.reference), Path(args.dump)
    summary = json.loads((ref / "summary.json").read_text())
    chunks = int(summary["n_chunks"])
    errors, problems = {}, {}
    stages = ["text_embeds"] + [f"chunk{k}/{s}" for k in range(chunks) for s in LINGBOT_CHUNK_STAGES]
    for stage in stages:
        err, problem = compare_files(dump / f"{stage}.npy", ref / f"{stage}.npy", exact=False)
        errors[stage] = err
        if problem:
            problems[stage] = problem
    # What every select_action call returned (`vjx episode --json`), against upstream's.
    try:
        printed = json.loads(Path(args.stdout).read_text())
    except (OSError, ValueError) as e:
        printed = None
        problems["calls"] = f"vjx episode --json printed no JSON ({e})"
    for key, file in [("actions", "calls_actions.npy"), ("actions_normalized", "calls_actions_normalized.npy")]:
        stage = f"calls/{key}"
        shape, _, expected = read_npy(ref / file)
        rows = printed.get(key) if isinstance(printed, dict) else None
        if not isinstance(rows, list) or len(rows) != shape[0]:
            errors[stage] = math.inf
            problems.setdefault(stage, f"expected {shape[0]} rows of `{key}` in vjx's JSON")
            continue
        got = [float(v) for row in rows for v in row]
        if len(got) != len(expected):
            errors[stage], problems[stage] = math.inf, f"{len(got)} values, expected {len(expected)}"
            continue
        errors[stage] = rel_l2(got, expected)
    write_json_atomic(Path(args.out), case_record(args, errors, problems, args.seconds))


# ---- machine ------------------------------------------------------------------------------------
def run_text(cmd: list[str], timeout: float = 30) -> tuple[int, str]:
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        return p.returncode, p.stdout
    except FileNotFoundError:
        return 127, f"{cmd[0]} not found on PATH"
    except subprocess.TimeoutExpired:
        return 124, f"{' '.join(cmd)} did not answer within {timeout:.0f} s"


def cmd_machine(args) -> None:
    m: dict = {"gpu_found": False, "gpu_reason": None, "gpus": [], "driver_version": None, "cuda_version": None}
    rc, out = run_text(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])
    if rc == 127:
        m["gpu_reason"] = "no NVIDIA GPU: nvidia-smi not found on PATH"
    elif rc != 0:
        m["gpu_reason"] = "no NVIDIA GPU usable: nvidia-smi failed: " + " ".join(out.split())[:300]
    else:
        for line in out.strip().splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) >= 3:
                m["gpus"].append({"name": parts[0], "driver_version": parts[1], "memory_total": parts[2]})
        if m["gpus"]:
            m["gpu_found"] = True
            m["driver_version"] = m["gpus"][0]["driver_version"]
            _, banner = run_text(["nvidia-smi"])
            found = re.search(r"CUDA Version:\s*([0-9.]+)", banner)
            m["cuda_version"] = found.group(1) if found else None
        else:
            m["gpu_reason"] = "no NVIDIA GPU: nvidia-smi lists none"
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    m["cpu"] = cpu or platform.processor() or platform.machine()
    m["cpu_cores"] = os.cpu_count()
    try:
        kb = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1))
        m["memory_gib"] = round(kb / 2**20, 1)
    except (OSError, AttributeError):
        m["memory_gib"] = None
    u = platform.uname()
    m["os"] = f"{u.system} {u.release} {u.machine}"
    m["python"] = f"{sys.executable} {platform.python_version()}"
    write_json_atomic(Path(args.out), m)


# ---- ONNX Runtime wheel + libraries -------------------------------------------------------------
def wheel_version(name: str) -> str | None:
    found = re.match(r"onnxruntime(?:_gpu)?-([0-9][^-]*)-", name)
    return found.group(1) if found else None


def cmd_unpack_wheel(args) -> None:
    wheel, dest = Path(args.wheel), Path(args.dest)
    note = {"wheel": str(wheel), "joined_parts": []}
    if not wheel.is_file():
        parts = sorted(glob.glob(glob.escape(str(wheel)) + ".part*"))
        if not parts:
            die(f"--ort-wheel {wheel}: no such file (and no {wheel.name}.part* pieces beside it)")
        joined = dest.parent / wheel.name
        joined.parent.mkdir(parents=True, exist_ok=True)
        tmp = joined.with_name(joined.name + ".partial")
        with open(tmp, "wb") as out:
            for p in parts:
                with open(p, "rb") as src:
                    shutil.copyfileobj(src, out)
        os.replace(tmp, joined)
        note["joined_parts"] = parts
        print(f"gpu_check.py: joined {len(parts)} pieces into {joined}", file=sys.stderr)
        wheel = joined
    sha_file = Path(args.wheel + ".sha256")
    if sha_file.is_file():
        import hashlib

        want = sha_file.read_text().split()[0].lower()
        h = hashlib.sha256()
        with open(wheel, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != want:
            die(f"--ort-wheel {wheel}: sha256 {h.hexdigest()} does not match {sha_file} ({want}); "
                "were the pieces joined in order and complete?")
        note["sha256"] = want
    try:
        z = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as e:
        die(f"--ort-wheel {wheel}: not a readable wheel (zip): {e}")
    members = [n for n in z.namelist() if re.fullmatch(r"onnxruntime/capi/lib[^/]*\.so[^/]*", n)]
    if not any(re.fullmatch(r"onnxruntime/capi/libonnxruntime\.so(\.[0-9.]+)?", n) for n in members):
        die(f"--ort-wheel {wheel}: holds no onnxruntime/capi/libonnxruntime.so*; is it an onnxruntime wheel?")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for n in members:
        try:
            with z.open(n) as src, open(tmp / Path(n).name, "wb") as out:
                shutil.copyfileobj(src, out)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            die(f"--ort-wheel {wheel}: {n} is damaged ({e}); were the pieces joined completely?")
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    note["version"] = wheel_version(wheel.name)
    note["unpacked"] = sorted(Path(n).name for n in members)
    (dest / "wheel.json").write_text(json.dumps(note, indent=1) + "\n")
    lib = sorted(p for p in dest.glob("libonnxruntime.so*"))[-1]
    print(lib)


def _elf_needed(path: Path) -> list[str] | None:
    """DT_NEEDED entries of a 64-bit little-endian ELF file; None when it is not one."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads, dynamic = [], None
    for i in range(phnum):
        off = phoff + i * phentsize
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from("<IIQQQQ", data, off)
        if p_type == 1:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 2:
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        return []
    entries, strtab = [], None
    for off in range(dynamic[0], dynamic[0] + dynamic[1], 16):
        tag, val = struct.unpack_from("<qQ", data, off)
        if tag == 0:
            break
        if tag == 1:
            entries.append(val)
        elif tag == 5:
            strtab = val
    if strtab is None:
        return None
    base = next((o + strtab - v for v, o, s in loads if v <= strtab < v + s), None)
    if base is None:
        return None
    return [data[base + e : data.index(b"\0", base + e)].decode() for e in entries]


def _library_dirs() -> list[str]:
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    dirs += ["/lib64", "/usr/lib64", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib",
             "/usr/local/nvidia/lib64", "/usr/local/cuda/lib64"]
    return dirs


def _ldconfig_cache() -> dict:
    rc, out = run_text(["ldconfig", "-p"], timeout=20)
    cache = {}
    if rc == 0:
        for line in out.splitlines():
            found = re.match(r"\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)", line)
            if found:
                cache.setdefault(found.group(1), found.group(3))
    return cache


def resolve(soname: str, own_dir: Path, cache: dict) -> str | None:
    for d in [str(own_dir)] + _library_dirs():
        p = Path(d) / soname
        if p.exists():
            return str(p)
    return cache.get(soname)


def cmd_ort_info(args) -> None:
    lib = Path(args.lib)
    info: dict = {"library": str(lib), "source": args.source, "version": None, "version_source": None}
    wheel_note = lib.parent / "wheel.json"
    if wheel_note.is_file():
        note = json.loads(wheel_note.read_text())
        info["wheel"] = note.get("wheel")
        info["joined_parts"] = len(note.get("joined_parts") or [])
        if note.get("sha256"):
            info["wheel_sha256"] = note["sha256"]
        if note.get("version"):
            info["version"], info["version_source"] = note["version"], "wheel file name"
    if info["version"] is None:
        found = re.search(r"libonnxruntime\.so\.([0-9]+(?:\.[0-9]+)+)$", lib.resolve().name)
        if found:
            info["version"], info["version_source"] = found.group(1), "library file name"
    cache = _ldconfig_cache()
    providers = {}
    for name, file in [("cuda", "libonnxruntime_providers_cuda.so"), ("tensorrt", "libonnxruntime_providers_tensorrt.so")]:
        path = lib.parent / file
        entry: dict = {"library": str(path) if path.is_file() else None}
        if path.is_file():
            needed = _elf_needed(path) or []
            system = re.compile(r"^(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux[-\w]*)\.so")
            wanted = [n for n in needed if not system.match(n)]
            if name == "cuda":
                wanted.append("libcudnn.so.9")  # opened at run time by the CUDA provider
            entry["needs"] = wanted
            entry["found"] = {n: resolve(n, path.parent, cache) for n in wanted}
            entry["missing"] = [n for n, where in entry["found"].items() if where is None]
            cudart = [n for n in needed if n.startswith("libcudart.so.")]
            if cudart:
                entry["cuda_major"] = cudart[0].rsplit(".", 1)[-1]
        else:
            entry["missing_reason"] = f"{file} is not beside {lib.name}: a CPU-only build of ONNX Runtime"
        providers[name] = entry
    info["providers"] = providers
    write_json_atomic(Path(args.out), info)


def cmd_cuda_libs(args) -> None:
    """CUDA / cuDNN / TensorRT library dirs from this Python's site-packages (pip's nvidia-* and
    tensorrt packages, as a PyTorch install brings them), plus the TensorRT dir given or found."""
    out: dict = {"python": sys.executable, "dirs": [], "tensorrt": {"found": False}}
    seen = set()
    for entry in sys.path:
        root = Path(entry or ".") / "nvidia"
        if not root.is_dir():
            continue
        for lib_dir in sorted(list(root.glob("*/lib")) + list(root.glob("*/*/lib"))):
            if lib_dir.is_dir() and any(lib_dir.glob("lib*.so*")) and str(lib_dir) not in seen:
                seen.add(str(lib_dir))
                out["dirs"].append(str(lib_dir))
    trt = out["tensorrt"]
    candidates = []
    if args.tensorrt:
        candidates.append(("--tensorrt", Path(args.tensorrt)))
    else:
        for entry in sys.path:
            p = Path(entry or ".") / "tensorrt_libs"
            if p.is_dir():
                candidates.append(("python package tensorrt_libs", p))
        candidates += [("LD_LIBRARY_PATH / system dirs", Path(d)) for d in _library_dirs()]
    for source, d in candidates:
        libs = sorted(d.glob("libnvinfer.so.*"))
        if libs:
            trt.update(found=True, dir=str(d), source=source)
            real = max((p.resolve().name for p in libs), key=len)
            ver = re.search(r"libnvinfer\.so\.([0-9.]+)$", real)
            trt["version"] = ver.group(1) if ver else None
            trt["version_source"] = "library file name" if ver else None
            if source.startswith("python"):
                try:
                    import importlib.metadata as md

                    dists = md.packages_distributions().get("tensorrt_libs", [])
                    if dists:
                        trt["package"] = f"{dists[0]} {md.version(dists[0])}"
                        if not trt["version"] or trt["version"].count(".") < 2:
                            trt["version"], trt["version_source"] = md.version(dists[0]), "python package"
                except Exception:  # noqa: BLE001 - metadata is a nicety
                    pass
            if str(d) not in seen and source != "LD_LIBRARY_PATH / system dirs":
                out["dirs"].append(str(d))
            break
    if not trt["found"]:
        if args.tensorrt:
            die(f"--tensorrt {args.tensorrt}: no libnvinfer.so.* in it")
        trt["reason"] = ("no TensorRT libraries: no libnvinfer.so.* in a tensorrt_libs Python package, "
                         "LD_LIBRARY_PATH or the system dirs (give --tensorrt DIR)")
    for d in ["/usr/local/cuda/lib64"]:
        if Path(d).is_dir() and d not in seen:
            out["dirs"].append(d)
    write_json_atomic(Path(args.out), out)


# ---- small shell helpers ------------------------------------------------------------------------
def cmd_obs_args(args) -> None:
    argv: list[str] = []
    if args.inputs:
        obs = Path(args.inputs).parent
        inputs = json.loads(Path(args.inputs).read_text())
        for key, name in inputs["images"].items():
            argv += ["--image", f"{key}={obs / name}"]
        if inputs.get("state") is not None:
            argv.append("--state=" + ",".join(repr(float(v)) for v in inputs["state"]))
        if inputs.get("task") is not None:
            argv += ["--task", inputs["task"]]
    else:
        base = Path(args.episode).parent
        episode = json.loads(Path(args.episode).read_text())
        first = episode["calls"][0]
        for key, name in first["images"].items():
            argv += ["--image", f"{key}={base / name}"]
        if first.get("state") is not None:
            argv.append("--state=" + ",".join(repr(float(v)) for v in first["state"]))
        argv += ["--task", episode["task"]]
    sys.stdout.write("".join(a + "\0" for a in argv))


def error_line(path: Path, limit: int = 700) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no output)"
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("error:"):
            msg = " ".join(" ".join(lines[i:]).split())
            return msg[:limit]
    tail = [l.strip() for l in lines if l.strip()][-3:]
    return (" | ".join(tail) or "(no output)")[:limit]


def cmd_error_line(args) -> None:
    print(error_line(Path(args.file)))


def cmd_get(args) -> None:
    value = json.loads(Path(args.file).read_text())
    for k in args.key.split("."):
        value = value.get(k) if isinstance(value, dict) else None
    if isinstance(value, bool):
        print("true" if value else "false")
    elif value is None:
        print("")
    elif isinstance(value, (dict, list)):
        print(json.dumps(value))
    else:
        print(value)


# ---- steps --------------------------------------------------------------------------------------
def step_base(args) -> dict:
    return {
        "name": args.name,
        "kind": args.kind,
        "provider": args.provider,
        "precision": args.precision,
        "status": args.status,
        "reason": args.reason or None,
        "seconds": round(float(args.seconds), 3),
        "budget_s": args.budget,
    }


def cmd_step(args) -> None:
    step = step_base(args)
    results = None
    if args.results:
        try:
            results = json.loads(Path(args.results).read_text())
        except (OSError, ValueError) as e:
            results = {"unreadable": f"{args.results}: {e}"}
        if args.keys and isinstance(results, dict):
            results = {k: results.get(k) for k in args.keys.split(",")}
    step["results"] = results
    write_json_atomic(Path(args.out), step)
    print(step["status"])


def cmd_parity_step(args) -> None:
    """Merges the per-case records of one provider x precision into its step."""
    records = [json.loads(p.read_text()) for p in sorted(Path(args.dir).glob("*.json"))]
    worst: dict = {}
    failures, counts = [], {"ok": 0, "failed": 0, "skipped": 0}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
        fam = worst.setdefault(r["family"], {})
        for stage, err in (r.get("errors") or {}).items():
            e = math.inf if err == "inf" else (math.nan if err == "nan" else err)
            k = stage_kind(stage)
            if k not in fam or not (e <= fam[k]):
                fam[k] = e
        where = f"{r['family']}/{r['case']}" + (f"/{r['obs']}" if r.get("obs") else "")
        if r["status"] == "failed":
            failures.append(f"{where}: {r['reason']}")
    worst_out = {f: {s: finite(e) for s, e in sorted(st.items())} for f, st in worst.items()}
    overall = None
    for st in worst.values():
        for s, e in st.items():
            if overall is None or not (e <= overall[1]):
                overall = (s, e)
    status, reason = args.status, args.reason or None
    if status == "ok":
        if counts["failed"]:
            status, reason = "failed", f"{counts['failed']} of {len(records)} runs failed: " + "; ".join(failures[:4])
        elif not counts["ok"]:
            status = "skipped"
            reason = reason or "no case could run at this precision: " + "; ".join(
                sorted({r["reason"] for r in records if r.get("reason")})[:3])
    step = step_base(args)
    step.update(status=status, reason=reason)
    step["results"] = {
        "bar": {"default": bar(args.precision, ""), **(
            {"velocity*": bar("int8", "velocity"), "actions*": bar("int8", "actions")} if args.precision == "int8" else {})},
        "exact_stages": sorted(VLA_JEPA_EXACT),
        "passed": status == "ok",
        "runs": counts,
        "worst_rel_l2": worst_out,
        "worst_stage": None if overall is None else {"stage": overall[0], "rel_l2": finite(overall[1])},
        "failures": failures,
        "cases": records,
    }
    if args.note:
        step["results"]["note"] = args.note
    write_json_atomic(Path(args.out), step)
    print(status)


def cmd_latency_step(args) -> None:
    step = step_base(args)
    try:
        bench = json.loads(Path(args.bench).read_text())
    except (OSError, ValueError) as e:
        step.update(status="failed", reason=f"vjx bench printed no JSON: {e}")
        write_json_atomic(Path(args.out), step)
        print(step["status"])
        return
    stages = bench.get("stages_ms", {})
    step["results"] = {
        "model": args.model,
        "export_dir": args.export,
        "chunk_ms": bench.get("latency_ms"),
        "stages_ms": {name: stages[name] for name in bench.get("stage_order", stages.keys()) if name in stages},
        "first_call_ms": bench.get("first_call_ms"),
        "load_ms": bench.get("load_ms"),
        "chunks_per_s": bench.get("chunks_per_s"),
        "control_hz": bench.get("control_hz"),
        "peak_rss_mb": bench.get("peak_rss_mb"),
        "cache_memory": bench.get("cache_memory"),
        "placements": bench.get("placements"),
        "iters": bench.get("iters"),
        "warmup": bench.get("warmup"),
        "precision": bench.get("precision"),
        "device": bench.get("device"),
        "threads": bench.get("threads"),
    }
    write_json_atomic(Path(args.out), step)
    print(step["status"])


def cmd_case(args) -> None:
    """A case that produced no comparison: not exported, vjx failed, timed out, or not started."""
    write_json_atomic(Path(args.out), {
        "family": args.family, "case": args.case, "obs": args.obs, "status": args.status,
        "reason": args.reason or None, "seconds": round(float(args.seconds), 3), "errors": {}, "failures": [],
    })


def cmd_export_step(args) -> None:
    records = [json.loads(p.read_text()) for p in sorted(Path(args.dir).glob("*.json"))]
    failed = [r for r in records if r["status"] == "failed"]
    step = step_base(args)
    if failed:
        step.update(status="failed", reason=f"{len(failed)} of {len(records)} exports failed: "
                    + "; ".join(f"{r['family']}/{r['case']}: {r['reason']}" for r in failed[:3]))
    elif records and all(r["status"] == "skipped" for r in records):
        step.update(status="skipped", reason="no case could be exported at this precision")
    step["results"] = {"exports": records}
    write_json_atomic(Path(args.out), step)
    print(step["status"])


def cmd_meta(args) -> None:
    meta: dict = {}
    for item in args.set or []:
        k, _, v = item.partition("=")
        meta[k] = v if v != "" else None
    for item in args.list or []:
        k, _, v = item.partition("=")
        meta[k] = [x for x in v.split(",") if x]
    for item in args.int or []:
        k, _, v = item.partition("=")
        meta[k] = float(v) if "." in v else int(v)
    write_json_atomic(Path(args.out), meta)


def cmd_assemble(args) -> None:
    work = Path(args.work)
    load = lambda name: json.loads((work / name).read_text()) if (work / name).is_file() else None  # noqa: E731
    steps = {}
    for p in sorted((work / "steps").glob("*.json")):
        s = json.loads(p.read_text())
        steps[s["name"]] = s
    failed = [n for n, s in steps.items() if s["status"] == "failed"]
    # A requested provider whose fixture parity did not run: the check is incomplete.
    not_run = [n for n, s in steps.items() if s["kind"] in ("probe", "parity") and s["status"] == "skipped"]
    code = EXIT_FAILED if failed else (EXIT_NOT_ALL_RUN if not_run else EXIT_OK)
    summary = []
    for n, s in steps.items():
        line = f"{n}: {s['status']} ({s['seconds']:.1f} s)"
        if s["kind"] == "parity" and s.get("results") and s["results"].get("worst_stage"):
            w = s["results"]["worst_stage"]
            line += f", worst {w['stage']} rel L2 {w['rel_l2'] if isinstance(w['rel_l2'], str) else format(w['rel_l2'], '.2e')}"
        if s["status"] != "ok" and s.get("reason"):
            line += f": {s['reason']}"
        summary.append(line)
    meta = json.loads(Path(args.meta).read_text())
    report = {
        "schema": SCHEMA,
        "status": "failed" if failed else ("incomplete" if not_run else "ok"),
        "exit_code": code,
        "failed_steps": failed,
        "not_run_steps": not_run,
        "summary": summary,
        **meta,
        "seconds": round(time.time() - meta["started_unix"], 1),
        "machine": load("machine.json"),
        "onnxruntime": load("ort.json"),
        "libraries": load("libs.json"),
        "steps": steps,
    }
    write_json_atomic(Path(args.out), report)
    for line in summary:  # the JSON has every reason in full
        print(f"  {line if len(line) <= 240 else line[:237] + '...'}", file=sys.stderr)
    sys.exit(code)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("machine"); p.add_argument("--out", required=True); p.set_defaults(fn=cmd_machine)
    p = sub.add_parser("unpack-wheel"); p.add_argument("wheel"); p.add_argument("dest"); p.set_defaults(fn=cmd_unpack_wheel)
    p = sub.add_parser("cuda-libs"); p.add_argument("--tensorrt"); p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_cuda_libs)
    p = sub.add_parser("ort-info"); p.add_argument("lib"); p.add_argument("--source", required=True)
    p.add_argument("--out", required=True); p.set_defaults(fn=cmd_ort_info)
    p = sub.add_parser("obs-args"); g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--inputs"); g.add_argument("--episode"); p.set_defaults(fn=cmd_obs_args)
    p = sub.add_parser("error-line"); p.add_argument("file"); p.set_defaults(fn=cmd_error_line)
    p = sub.add_parser("get"); p.add_argument("file"); p.add_argument("key"); p.set_defaults(fn=cmd_get)

    for name, fn in [("compare-vla-jepa", cmd_compare_vla_jepa), ("compare-lingbot", cmd_compare_lingbot)]:
        p = sub.add_parser(name)
        p.add_argument("--dump", required=True)
        p.add_argument("--precision", required=True)
        p.add_argument("--family", required=True)
        p.add_argument("--case", required=True)
        p.add_argument("--obs")
        p.add_argument("--seconds", type=float, default=0.0)
        p.add_argument("--out", required=True)
        if name == "compare-vla-jepa":
            p.add_argument("--expected", required=True)
        else:
            p.add_argument("--reference", required=True)
            p.add_argument("--stdout", required=True)
        p.set_defaults(fn=fn)

    for name, fn in [("step", cmd_step), ("parity-step", cmd_parity_step), ("latency-step", cmd_latency_step)]:
        p = sub.add_parser(name)
        p.add_argument("--name", required=True)
        p.add_argument("--kind", required=True, choices=["setup", "export", "probe", "parity", "latency"])
        p.add_argument("--provider")
        p.add_argument("--precision")
        p.add_argument("--status", required=True, choices=["ok", "failed", "skipped"])
        p.add_argument("--reason", default="")
        p.add_argument("--seconds", default="0")
        p.add_argument("--budget", type=float)
        p.add_argument("--out", required=True)
        if name == "step":
            p.add_argument("--results")
            p.add_argument("--keys", help="keep only these top-level keys of --results")
        elif name == "parity-step":
            p.add_argument("--dir", required=True)
            p.add_argument("--note")
        else:
            p.add_argument("--bench", required=True)
            p.add_argument("--model", required=True)
            p.add_argument("--export", required=True)
        p.set_defaults(fn=fn)

    p = sub.add_parser("case")
    for a in ["--family", "--case", "--status", "--out"]:
        p.add_argument(a, required=True)
    p.add_argument("--obs"); p.add_argument("--reason", default=""); p.add_argument("--seconds", default="0")
    p.set_defaults(fn=cmd_case)
    p = sub.add_parser("export-step")
    for a in ["--name", "--kind", "--status", "--out", "--dir"]:
        p.add_argument(a, required=True)
    p.add_argument("--provider"); p.add_argument("--precision"); p.add_argument("--reason", default="")
    p.add_argument("--seconds", default="0"); p.add_argument("--budget", type=float)
    p.set_defaults(fn=cmd_export_step)
    p = sub.add_parser("meta"); p.add_argument("--out", required=True)
    p.add_argument("--set", action="append"); p.add_argument("--list", action="append")
    p.add_argument("--int", action="append"); p.set_defaults(fn=cmd_meta)
    p = sub.add_parser("assemble"); p.add_argument("--work", required=True); p.add_argument("--meta", required=True)
    p.add_argument("--out", required=True); p.set_defaults(fn=cmd_assemble)

    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
