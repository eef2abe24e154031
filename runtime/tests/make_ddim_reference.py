"""Writes runtime/tests/fixtures/ddim_reference.json: diffusers' DDIMScheduler as DexVLA's
ScaleDP head configures it (100 train steps, squaredcos_cap_v2, clip_sample, set_alpha_to_one,
epsilon prediction, leading spacing, eta 0), run for 10 steps on a fixed sample with a fixed
model output per step, all in float32. Run with the reference venv:

    .venv-ref/bin/python runtime/tests/make_ddim_reference.py
"""

import json
from pathlib import Path

import diffusers
import torch
from diffusers import DDIMScheduler

OUT = Path(__file__).parent / "fixtures" / "ddim_reference.json"


def main() -> None:
    scheduler = DDIMScheduler(
        num_train_timesteps=100,
        beta_schedule="squaredcos_cap_v2",
        clip_sample=True,
        clip_sample_range=1.0,
        set_alpha_to_one=True,
        steps_offset=0,
        prediction_type="epsilon",
        timestep_spacing="leading",
    )
    scheduler.set_timesteps(10)
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(3, 4, generator=generator, dtype=torch.float32)
    start = sample.clone()
    outputs, samples = [], []
    for t in scheduler.timesteps:
        # Large enough that the predicted clean sample leaves [-1, 1] and gets clipped.
        eps = 1.5 * torch.randn(3, 4, generator=generator, dtype=torch.float32)
        sample = scheduler.step(eps, t, sample, eta=0.0).prev_sample
        outputs.append(eps.flatten().tolist())
        samples.append(sample.flatten().tolist())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "diffusers": diffusers.__version__,
                "torch": torch.__version__,
                "alphas_cumprod": scheduler.alphas_cumprod.tolist(),
                "timesteps": scheduler.timesteps.tolist(),
                "start": start.flatten().tolist(),
                "model_outputs": outputs,
                "samples": samples,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
