"""Writes runtime/tests/fixtures/pil_resize/: Pillow's 8-bit `Image.resize` outputs for
`runtime/tests/pil_resize.rs`. Made with Pillow 12.3.0 (recorded in index.json). Run from the
repo root with the reference venv:

    .venv-ref/bin/python runtime/tests/make_pil_resize_reference.py

Two seeded RGB sources (gradients, noise, saturated edges, a checkerboard, thin lines) are stored
once; each case resizes a crop of one of them, as transformers' slow image processors do:
`PIL.Image.fromarray(crop).resize((w, h), resample=filter, reducing_gap=None)`.
"""

import json
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

OUT = Path(__file__).parent / "fixtures" / "pil_resize"
FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}

# name: (source, crop [y0, y1, x0, x1], output [h, w], filter)
CASES = {
    # DexVLA: up in height, down in width.
    "dexvla_240x320_to_252x308_bicubic": ("large", [30, 270, 40, 360], [252, 308], "bicubic"),
    "down_300x400_to_224x224_bicubic": ("large", [0, 300, 0, 400], [224, 224], "bicubic"),
    "down_300x400_to_20x30_lanczos": ("large", [0, 300, 0, 400], [20, 30], "lanczos"),
    "down_300x400_to_37x53_nearest": ("large", [0, 300, 0, 400], [37, 53], "nearest"),
    "small_17x23_to_40x9_bilinear": ("small", [0, 17, 0, 23], [40, 9], "bilinear"),
    "small_17x23_to_40x9_bicubic": ("small", [0, 17, 0, 23], [40, 9], "bicubic"),
    "small_17x23_to_40x9_lanczos": ("small", [0, 17, 0, 23], [40, 9], "lanczos"),
    "small_17x23_to_40x9_nearest": ("small", [0, 17, 0, 23], [40, 9], "nearest"),
    "identity_64x64_bicubic": ("large", [100, 164, 200, 264], [64, 64], "bicubic"),
    # Over 100 times taller than wide and shrinking in height: Pillow resizes height first.
    # Widening a 1-pixel column only replicates it, so the 2-wide cases pin the order.
    "tall_202x2_to_60x5_bicubic": ("large", [40, 242, 300, 302], [60, 5], "bicubic"),
    "tall_150x1_to_50x3_bicubic": ("large", [0, 150, 123, 124], [50, 3], "bicubic"),
    "tall_150x1_to_50x1_bicubic": ("large", [0, 150, 123, 124], [50, 1], "bicubic"),
    "tall_202x2_to_60x5_lanczos": ("large", [40, 242, 300, 302], [60, 5], "lanczos"),
    # Tall but growing: width first as usual.
    "tall_150x1_to_160x2_bicubic": ("large", [0, 150, 123, 124], [160, 2], "bicubic"),
    "column_9x1_to_5x4_bicubic": ("large", [0, 9, 7, 8], [5, 4], "bicubic"),
    "row_1x9_to_4x5_bicubic": ("large", [77, 78, 0, 9], [4, 5], "bicubic"),
    "pixel_1x1_to_3x2_lanczos": ("large", [5, 6, 5, 6], [3, 2], "lanczos"),
    "column_17x1_to_1x1_bilinear": ("large", [0, 17, 50, 51], [1, 1], "bilinear"),
}


def structured(seed, h, w):
    """Gradients and a sine pattern plus noise, then saturated shapes with sharp edges, so
    bicubic and Lanczos overshoot and get clipped."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack(
        [255 * x / max(w - 1, 1), 255 * y / max(h - 1, 1), 127.5 + 127.5 * np.sin(x / 7 + y / 11)],
        axis=-1,
    )
    img += rng.normal(0, 12, img.shape)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    checker = ((np.arange(h)[:, None] // 3 + np.arange(w)[None, :] // 3) % 2 * 255).astype(np.uint8)
    img[h // 5 : h // 2, w // 6 : w // 3] = checker[h // 5 : h // 2, w // 6 : w // 3, None]
    img[h // 2 : 3 * h // 4, w // 2 : 5 * w // 6] = (255, 0, 255)
    img[:, (2 * w) // 3] = 255
    img[(3 * h) // 5 : (3 * h) // 5 + 2, :] = 0
    salt = rng.random((h, w)) < 0.01
    img[salt] = rng.integers(0, 2, (salt.sum(), 1)) * 255
    return img


def pil_resize(array, size, filt):
    h, w = size
    image = Image.fromarray(array).resize((w, h), resample=FILTERS[filt], reducing_gap=None)
    return np.asarray(image)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    sources = {"large": structured(0, 300, 400), "small": structured(1, 17, 23)}
    for name, image in sources.items():
        np.save(OUT / f"{name}.npy", image)
    cases = {}
    for name, (source, (y0, y1, x0, x1), size, filt) in CASES.items():
        crop = np.ascontiguousarray(sources[source][y0:y1, x0:x1])
        out = pil_resize(crop, size, filt)
        assert out.shape == (*size, 3) and out.dtype == np.uint8, (name, out.shape)
        np.save(OUT / f"{name}.npy", out)
        cases[name] = {"source": source, "crop": [y0, y1, x0, x1], "size": size, "filter": filt}
        if name.startswith("tall_") and size[0] < crop.shape[0] and crop.shape[1] > 1:
            other = pil_resize(pil_resize(crop, [crop.shape[0], size[1]], filt), size, filt)
            assert (other != out).any(), name
    index = {"pillow": PIL.__version__, "numpy": np.__version__, "cases": cases}
    (OUT / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(cases)} cases to {OUT} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
