"""Writes the Qwen2-style text-stack fixture: a tiny random transformers `Qwen2Model` (no q/k
norms, biases on q/k/v) and, for a few text-only prompts, the output of its last decoder layer
(the residual stream before the final norm), which is what the text graph reads out.

Run from the repo root:
    .venv-ref/bin/python graphs/tests/make_qwen2_text_reference.py

Output: graphs/tests/fixtures/qwen2_text/
  config.json, model.safetensors     the tiny model as `save_pretrained` writes it
  <prompt>/input_ids.npy              i64 [seq]
  <prompt>/last_layer_hidden.npy      f32 [seq, hidden]
"""

import pathlib
import shutil

import numpy as np
import torch
from transformers import Qwen2Config, Qwen2Model

torch.set_num_threads(1)
torch.manual_seed(0)

OUT = pathlib.Path(__file__).resolve().parent / "fixtures" / "qwen2_text"
PROMPT_LENGTHS = {"short": 5, "long": 13}


def tiny_model() -> Qwen2Model:
    config = Qwen2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=48,
        vocab_size=64,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_theta": 10000.0, "rope_type": "default"},
        attn_implementation="eager",
    )
    model = Qwen2Model(config).eval()
    # The default init leaves biases at 0 and norm weights at 1, which would hide a missing
    # bias or norm weight: draw every parameter instead.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
            elif name.endswith(".bias"):
                param.copy_(0.5 * torch.randn_like(param))
            else:
                param.copy_(0.3 * torch.randn_like(param))
    return model


def last_layer_hidden(model: Qwen2Model, input_ids: torch.Tensor) -> np.ndarray:
    captured = {}

    def hook(_module, _inputs, output):
        captured["hidden"] = output[0] if isinstance(output, tuple) else output

    handle = model.layers[-1].register_forward_hook(hook)
    with torch.no_grad():
        model(input_ids=input_ids[None], use_cache=False)
    handle.remove()
    return captured["hidden"][0].float().numpy()


def main() -> None:
    model = tiny_model()
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    model.save_pretrained(OUT)
    assert not any("q_norm" in n or "k_norm" in n for n, _ in model.named_parameters())
    for name, length in PROMPT_LENGTHS.items():
        input_ids = torch.randint(0, model.config.vocab_size, (length,))
        hidden = last_layer_hidden(model, input_ids)
        case = OUT / name
        case.mkdir()
        np.save(case / "input_ids.npy", input_ids.numpy().astype(np.int64))
        np.save(case / "last_layer_hidden.npy", hidden.astype(np.float32))
        print(f"{name}: seq {length}, |hidden| {np.linalg.norm(hidden):.3f}")


if __name__ == "__main__":
    main()
