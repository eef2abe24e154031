#!/usr/bin/env python3
"""Convert a DexVLA `dataset_stats.pkl` to `dataset_stats.json`.

The original DexVLA training script (train_vla.py) pickles the normalization statistics next to its
checkpoints: a dict of numpy arrays such as action_min, action_max, action_mean, action_std, qpos_mean,
qpos_std and example_qpos. vjx reads JSON instead of pickle. This script writes the same keys, each array
as a (nested) list of floats with the array's shape (a 0-d array or numpy scalar becomes a float). Entries
that are not numpy arrays are dropped, with a note on stderr; a non-numeric or non-finite array is an error.

Usage:
    python scripts/dexvla_stats_to_json.py train_output/dataset_stats.pkl            # -> train_output/dataset_stats.json
    python scripts/dexvla_stats_to_json.py STATS.pkl -o OUT.json

Needs only numpy (pickle files of numpy arrays need numpy to load). Unpickling runs code from the file:
only convert files you trust.
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

import numpy as np


class StatsError(Exception):
    pass


def _to_float_tree(path: Path, key: str, arr: np.ndarray):
    if arr.dtype.kind not in "biuf":
        raise StatsError(f"{path}: key {key!r}: array of dtype {arr.dtype} is not numeric")
    values = arr.astype(np.float64)
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise StatsError(f"{path}: key {key!r}: {bad} non-finite value(s) (JSON cannot hold NaN/inf)")
    return values.tolist() if values.ndim else float(values)


def convert(stats: object, path: Path) -> tuple[dict, list[str]]:
    """Returns (json-able dict, notes about dropped entries)."""
    if not isinstance(stats, dict):
        raise StatsError(f"{path}: expected a dict of arrays at the top level, got {type(stats).__name__}")
    out: dict = {}
    notes: list[str] = []
    for key, value in stats.items():
        if not isinstance(key, str):
            raise StatsError(f"{path}: key {key!r}: keys must be strings (got {type(key).__name__})")
        if isinstance(value, (np.ndarray, np.generic)):  # numpy arrays and numpy scalars (0-d)
            out[key] = _to_float_tree(path, key, np.asarray(value))
        else:
            notes.append(f"dropped key {key!r}: {type(value).__name__} is not a numpy array")
    if not out:
        raise StatsError(f"{path}: no numeric arrays found")
    return out, notes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stats_pkl", type=Path, help="dataset_stats.pkl written by DexVLA's train_vla.py")
    ap.add_argument("-o", "--out", type=Path, help="output JSON (default: dataset_stats.json next to the input)")
    args = ap.parse_args(argv)
    src: Path = args.stats_pkl
    dst: Path = args.out or src.with_name("dataset_stats.json")
    try:
        try:
            with open(src, "rb") as f:
                stats = pickle.load(f)
        except FileNotFoundError:
            raise StatsError(f"{src}: no such file") from None
        except Exception as exc:  # noqa: BLE001 - any unpickling failure
            raise StatsError(f"{src}: cannot unpickle ({type(exc).__name__}: {exc})") from exc
        out, notes = convert(stats, src)
    except StatsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for note in notes:
        print(f"note: {src}: {note}", file=sys.stderr)
    dst.write_text(json.dumps(out, indent=2) + "\n")
    shapes = {k: list(np.shape(v)) for k, v in out.items()}
    print(f"wrote {dst}: {shapes}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
