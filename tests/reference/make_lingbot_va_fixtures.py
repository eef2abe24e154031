#!/usr/bin/env python3
"""Golden fixtures for the LingBot-VA port: runs upstream LeRobot 0.6.1 `lingbot_va` inference.

Every case builds, with fixed seeds, a tiny Wan2.2 VAE (diffusers `AutoencoderKLWan`), a tiny
UMT5 encoder with a small T5-style Unigram tokenizer, and a tiny LingBot-VA policy with
re-initialised non-degenerate weights. It saves them exactly as the published repos are laid
out (`wan/{vae,text_encoder,tokenizer}` and a LeRobot `checkpoint/`), loads the policy back with
`LingBotVAPolicy.from_pretrained` + the saved processors and runs the public inference path
(preprocessor -> `select_action` per call -> postprocessor) in float32 over several predicted
chunks. The two `torch.randn` draws of every `_infer` call are replaced by stored noise, and
intermediates are captured by wrapping upstream methods (the math is never re-implemented).

Usage (from the repo root, after tests/reference/setup_env.sh):
    .venv-ref/bin/python tests/reference/make_lingbot_va_fixtures.py --out tests/fixtures/lingbot_va
    .venv-ref/bin/python tests/reference/make_lingbot_va_fixtures.py --case small_window
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

HUB_WAN_ID = "robbyant/lingbot-va-base"
MAX_LEN = 64  # UMT5 prompt length (max_sequence_length)
Z_DIM = 48  # upstream `_infer` hard-codes 48 latent channels

# Words the tiny tokenizer knows as whole pieces (plus the case tasks' own words).
CORPUS_WORDS = (
    "put pick place the a an and on in into of to up down left right top bottom front back "
    "mug cup plate bowl drawer cabinet basket stove pot block blocks cube bottle box shelf "
    "red green blue black white yellow open close turn push pull stack move grasp it then "
    "with arm hand over two both table"
).split()
SUBWORD_PIECES = ["ing", "ed", "er", "es", "s", "un", "re", "tion", "ly", "st", "ch", "th", "ow", "ave"]
CHARS = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?&'\"-()<>/#")


# ----------------------------------------------------------------------------------------------
# Case definitions
# ----------------------------------------------------------------------------------------------
@dataclass
class Camera:
    key: str  # full feature key
    height: int  # native size
    width: int


@dataclass
class Case:
    name: str
    description: str
    seed: int
    task: str
    cameras: list[Camera]
    camera_layout: str
    height: int  # model size
    width: int
    action_per_frame: int
    frame_chunk_size: int
    attn_window: int
    num_inference_steps: int
    action_num_inference_steps: int
    snr_shift: float
    action_snr_shift: float
    used_action_channel_ids: list[int]
    n_chunks: int
    guidance_scale: float = 5.0
    action_guidance_scale: float = 1.0
    expect_evictions: bool = False
    extra: dict = field(default_factory=dict)


CASES = [
    Case(
        name="libero_width_concat",
        description=(
            "LIBERO layout: two cameras (48x40 agentview, 24x36 wrist) bilinearly resized to the "
            "32x32 model size and concatenated on the latent width; apf 4, F 4, attn_window 30, "
            "20 video / 50 action steps, CFG 5 / 1, shifts 5 / 0.05, used channels 0..6. Task "
            "with an unknown character, an HTML entity and runs of spaces. 45 select_action calls "
            "= 4 predicted chunks (12 + 16 + 16 + 1 actions executed)."
        ),
        seed=11,
        task="Put the \u2615 mug on the plate &amp; close   the drawer, then open the microwave",
        cameras=[Camera("observation.images.image", 48, 40), Camera("observation.images.image2", 24, 36)],
        camera_layout="width_concat",
        height=32,
        width=32,
        action_per_frame=4,
        frame_chunk_size=4,
        attn_window=30,
        num_inference_steps=20,
        action_num_inference_steps=50,
        snr_shift=5.0,
        action_snr_shift=0.05,
        used_action_channel_ids=list(range(7)),
        n_chunks=4,
    ),
    Case(
        name="robotwin_tshape",
        description=(
            "RoboTwin T-shape layout: head camera (80x56 native) resized to 64x32 and encoded with "
            "VAE #1; left/right wrists (40x30 and 36x28 native) resized to 32x16 and encoded "
            "batched with VAE #2 (separate causal cache); wrist latents side by side on top of the "
            "head latent (latent 6x2). apf 8 (keyframe stride 2), F 2, attn_window 72, 25 video / "
            "50 action steps, CFG 5 / 1, shifts 5 / 1.0, used channels [0..6, 28, 7..13, 29]. "
            "25 select_action calls = 3 predicted chunks (8 + 16 + 1 actions executed)."
        ),
        seed=22,
        task="place the empty cup on the coaster with the &lt;left&gt; arm",
        cameras=[
            Camera("observation.images.head_camera", 80, 56),
            Camera("observation.images.left_camera", 40, 30),
            Camera("observation.images.right_camera", 36, 28),
        ],
        camera_layout="robotwin_tshape",
        height=64,
        width=32,
        action_per_frame=8,
        frame_chunk_size=2,
        attn_window=72,
        num_inference_steps=25,
        action_num_inference_steps=50,
        snr_shift=5.0,
        action_snr_shift=1.0,
        used_action_channel_ids=list(range(7)) + [28] + list(range(7, 14)) + [29],
        n_chunks=3,
    ),
    Case(
        name="small_window",
        description=(
            "One 32x32 camera (native = model size, no resize), apf 4, F 2, attn_window 4: the KV "
            "cache holds 2 chunks' worth of tokens (20 slots), so from chunk 2 on every write "
            "evicts the oldest entries (also during the transient, update_cache=0 forwards). "
            "20 video / 50 action steps, CFG 5 / 1, shifts 5 / 0.05, used channels [0..5, 28]. "
            "A long prompt that the tokenizer truncates to 63 pieces + `</s>` (64 = max_sequence_length). "
            "29 select_action calls = 5 chunks."
        ),
        seed=33,
        task=(
            "pick up the alphabet soup and place it in the basket, then pick up the cream cheese "
            "and place it in the basket, then pick up the tomato sauce and place it in the basket "
            "and close the top drawer of the cabinet; finally push the plate to the front of the stove "
            "and turn on the stove"
        ),
        cameras=[Camera("observation.images.image", 32, 32)],
        camera_layout="width_concat",
        height=32,
        width=32,
        action_per_frame=4,
        frame_chunk_size=2,
        attn_window=4,
        num_inference_steps=20,
        action_num_inference_steps=50,
        snr_shift=5.0,
        action_snr_shift=0.05,
        used_action_channel_ids=[0, 1, 2, 3, 4, 5, 28],
        n_chunks=5,
        expect_evictions=True,
    ),
    Case(
        name="no_guidance",
        description=(
            "Guidance off for both streams (CFG 1 / 1): upstream runs the transformer at batch 1, "
            "with no unconditional row. One 40x24 camera resized to 32x32, apf 4, F 2, "
            "attn_window 30, 20 video / 50 action steps, shifts 5 / 0.05, used channels 0..6. "
            "17 select_action calls = 3 predicted chunks (8 + 8 + 1 actions executed)."
        ),
        seed=44,
        task="stack the red block on the blue block",
        cameras=[Camera("observation.images.image", 40, 24)],
        camera_layout="width_concat",
        height=32,
        width=32,
        action_per_frame=4,
        frame_chunk_size=2,
        attn_window=30,
        num_inference_steps=20,
        action_num_inference_steps=50,
        snr_shift=5.0,
        action_snr_shift=0.05,
        used_action_channel_ids=list(range(7)),
        n_chunks=3,
        guidance_scale=1.0,
        action_guidance_scale=1.0,
    ),
]


def calls_for(case: Case) -> int:
    """select_action calls needed to trigger `n_chunks` predictions."""
    chunk = case.frame_chunk_size * case.action_per_frame
    first = chunk - case.action_per_frame  # frame 0 of the first chunk is dropped
    return first + chunk * (case.n_chunks - 2) + 1


# ----------------------------------------------------------------------------------------------
# wan/: VAE, UMT5, tokenizer
# ----------------------------------------------------------------------------------------------
def vae_kwargs(base_dim: int = 4, decoder_base_dim: int = 2) -> dict:
    """Wan2.2 VAE settings; the defaults are the fixtures' tiny widths (the real ones are 160 / 256)."""
    return dict(
        base_dim=base_dim,
        decoder_base_dim=decoder_base_dim,
        z_dim=Z_DIM,
        dim_mult=[1, 2, 4, 4],
        num_res_blocks=2,
        attn_scales=[],
        temperal_downsample=[False, True, True],
        is_residual=True,
        in_channels=12,
        out_channels=12,
        patch_size=2,
        scale_factor_temporal=4,
        scale_factor_spatial=16,
    )


@torch.no_grad()
def reinit_vae(vae, gen: torch.Generator) -> None:
    for name, p in vae.named_parameters():
        if name.endswith("gamma"):
            v = 1.0 + 0.1 * torch.randn(p.shape, generator=gen)
        elif name.endswith("bias"):
            v = 0.05 * torch.randn(p.shape, generator=gen)
        else:
            fan_in = int(np.prod(p.shape[1:]))
            v = torch.randn(p.shape, generator=gen) * (1.6 / math.sqrt(fan_in))
        p.copy_(v)


@torch.no_grad()
def build_vae(out: Path, sample_clips: list[torch.Tensor], gen: torch.Generator, **widths) -> dict:
    """Wan2.2 VAE (tiny unless `widths` says otherwise, see `vae_kwargs`); latents_mean/std measured
    on `sample_clips` (model-size frames in [-1,1])."""
    from diffusers import AutoencoderKLWan

    from lerobot.policies.lingbot_va.utils import WanVAEStreamingWrapper

    vae = AutoencoderKLWan(**vae_kwargs(**widths), latents_mean=[0.0] * Z_DIM, latents_std=[1.0] * Z_DIM)
    reinit_vae(vae, gen)
    vae.eval()
    mus = []
    for clip in sample_clips:  # [N, 3, 1 + 4k, H, W]: first frame alone, then the stream
        stream = WanVAEStreamingWrapper(vae)
        for part in (clip[:, :, :1], clip[:, :, 1:]):
            mu = stream.encode_chunk(part)[:, :Z_DIM]
            mus.append(mu.permute(1, 0, 2, 3, 4).reshape(Z_DIM, -1))
    mu = torch.cat(mus, dim=1).double()
    mean = [round(float(x), 4) for x in mu.mean(1)]
    std = [round(float(x), 4) for x in mu.std(1)]
    vae.register_to_config(latents_mean=mean, latents_std=std)
    vae.save_pretrained(out)
    raw = {"mu_std_overall": float(mu.std()), "mu_mean_abs_mean": float(mu.mean(1).abs().mean()),
           "latents_std_min": min(std), "latents_std_max": max(std)}
    return raw


@torch.no_grad()
def build_text_encoder(
    out: Path, vocab_size: int, gen: torch.Generator, *,
    d_model: int = 32, d_kv: int = 8, d_ff: int = 64, num_layers: int = 2, num_heads: int = 4,
) -> None:
    """UMT5 encoder; the defaults are the fixtures' tiny sizes (UMT5-XXL: 4096, 64, 10240, 24, 64)."""
    from transformers import UMT5Config, UMT5EncoderModel

    cfg = UMT5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=d_kv,
        d_ff=d_ff,
        num_layers=num_layers,
        num_heads=num_heads,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu",
        layer_norm_epsilon=1e-6,
        dropout_rate=0.0,
        tie_word_embeddings=False,
        is_encoder_decoder=False,
        use_cache=False,
    )
    model = UMT5EncoderModel(cfg)
    for name, p in model.named_parameters():
        if "layer_norm" in name:
            v = 1.0 + 0.1 * torch.randn(p.shape, generator=gen)
        elif "relative_attention_bias" in name:
            v = 0.5 * torch.randn(p.shape, generator=gen)
        elif "shared" in name or "embed_tokens" in name:
            v = torch.randn(p.shape, generator=gen)
        else:
            v = torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1])
        p.copy_(v)
    model.save_pretrained(out)


def tokenizer_vocab(tasks: list[str]) -> list[tuple[str, float]]:
    """T5 layout: <pad>=0, </s>=1, <unk>=2, then SentencePiece-style pieces with log-prob scores."""
    from lerobot.policies.lingbot_va.utils import clean_prompt

    words = list(dict.fromkeys(CORPUS_WORDS))
    for t in tasks:  # the case tasks' plain lowercase words, except a few left to sub-word pieces
        for w in re.findall(r"[a-z]+", clean_prompt(t)):
            if w not in words and w not in ("microwave", "coaster", "alphabet"):
                words.append(w)
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -3.0)]
    seen = {p for p, _ in vocab}

    def add(piece: str, score: float) -> None:
        if piece not in seen:
            seen.add(piece)
            vocab.append((piece, score))

    for i, w in enumerate(words):
        add("\u2581" + w, -5.0 - 0.01 * i)
    for i, w in enumerate(words):
        add(w, -7.0 - 0.01 * i)
    for i, s in enumerate(SUBWORD_PIECES):
        add(s, -8.0 - 0.01 * i)
        add("\u2581" + s, -8.5 - 0.01 * i)
    for i, c in enumerate(CHARS):
        add(c, -10.0 - 0.01 * i)
        add("\u2581" + c, -10.5 - 0.01 * i)
    return vocab


def build_tokenizer(out: Path, vocab: list[tuple[str, float]]):
    """T5/UMT5-style Unigram tokenizer with exactly the pipeline `T5TokenizerFast` rebuilds on
    load (transformers 5 re-creates the pre-tokenizer, decoder and post-processor in Python)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    tok = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single=["$A", "</s>"], pair=["$A", "</s>", "$B", "</s>"], special_tokens=[("</s>", 1)]
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<pad>", "</s>", "<unk>")])
    hf = T5TokenizerFast(
        tokenizer_object=tok, extra_ids=0, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        model_max_length=512,
    )
    hf.save_pretrained(out)
    (out / "special_tokens_map.json").write_text(
        json.dumps({"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}, indent=2) + "\n"
    )


def check_tokenizer(tok_dir: Path, texts: list[str]) -> dict[str, list[int]]:
    """`T5TokenizerFast.from_pretrained` (what upstream uses) and the raw tokenizer.json must agree,
    including padding to MAX_LEN and truncation."""
    from tokenizers import Tokenizer
    from transformers import T5TokenizerFast

    hf = T5TokenizerFast.from_pretrained(str(tok_dir))
    # the backend upstream tokenizes with serialises to the file we wrote (checked before any call,
    # since padding/truncation calls leave their settings on the backend)
    with tempfile.TemporaryDirectory() as d:
        hf.backend_tokenizer.save(str(Path(d) / "t.json"))
        assert json.loads((Path(d) / "t.json").read_text()) == json.loads((tok_dir / "tokenizer.json").read_text())
    raw = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    raw.enable_padding(length=MAX_LEN, pad_id=0, pad_token="<pad>")
    raw.enable_truncation(max_length=MAX_LEN)
    ids = {}
    for t in texts:
        a = hf([t], padding="max_length", max_length=MAX_LEN, truncation=True, add_special_tokens=True,
               return_attention_mask=True)
        b = raw.encode(t)
        assert a["input_ids"][0] == b.ids, (t, a["input_ids"][0], b.ids)
        assert a["attention_mask"][0] == b.attention_mask, t
        ids[t] = b.ids
    raw.no_truncation()
    raw.no_padding()
    ids["untruncated_lengths"] = [len(raw.encode(t).ids) for t in texts]
    return ids


# ----------------------------------------------------------------------------------------------
# Policy
# ----------------------------------------------------------------------------------------------
def policy_config(
    case: Case, *,
    num_attention_heads: int = 2, attention_head_dim: int = 24, text_dim: int = 32, ffn_dim: int = 96,
    num_layers: int = 2, max_sequence_length: int = MAX_LEN,
):
    """The case's LingBotVAConfig; the transformer sizes default to the fixtures' tiny ones
    (the real model: 24 heads x 128, text_dim 4096, ffn 14336, 30 layers, 512 prompt tokens)."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.lingbot_va.configuration_lingbot_va import LingBotVAConfig

    inputs = {
        c.key: PolicyFeature(type=FeatureType.VISUAL, shape=(3, c.height, c.width)) for c in case.cameras
    }
    outputs = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(len(case.used_action_channel_ids),))}
    return LingBotVAConfig(
        device="cpu",
        push_to_hub=False,
        input_features=inputs,
        output_features=outputs,
        patch_size=(1, 2, 2),
        num_attention_heads=num_attention_heads,
        attention_head_dim=attention_head_dim,
        in_channels=Z_DIM,
        out_channels=Z_DIM,
        action_dim=30,
        text_dim=text_dim,
        freq_dim=256,
        ffn_dim=ffn_dim,
        num_layers=num_layers,
        wan_pretrained_path=HUB_WAN_ID,
        dtype="float32",
        obs_cam_keys=[c.key for c in case.cameras],
        camera_layout=case.camera_layout,
        height=case.height,
        width=case.width,
        action_per_frame=case.action_per_frame,
        frame_chunk_size=case.frame_chunk_size,
        attn_window=case.attn_window,
        num_inference_steps=case.num_inference_steps,
        action_num_inference_steps=case.action_num_inference_steps,
        guidance_scale=case.guidance_scale,
        action_guidance_scale=case.action_guidance_scale,
        snr_shift=case.snr_shift,
        action_snr_shift=case.action_snr_shift,
        max_sequence_length=max_sequence_length,
        used_action_channel_ids=list(case.used_action_channel_ids),
    )


@torch.no_grad()
def reinit_transformer(transformer, gen: torch.Generator) -> None:
    """Non-degenerate weights: activations and velocities stay O(1)."""
    for name, p in transformer.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if "scale_shift_table" in name:
            v = 0.3 * torch.randn(p.shape, generator=gen)
        elif leaf == "bias":
            v = 0.1 * torch.randn(p.shape, generator=gen)
        elif p.ndim == 1:  # RMSNorm / LayerNorm weights
            v = 1.0 + 0.1 * torch.randn(p.shape, generator=gen)
        else:
            v = torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1])
        p.copy_(v)


def make_quantile_stats(case: Case, gen: np.random.Generator) -> dict:
    n = len(case.used_action_channel_ids)
    q01 = -gen.uniform(0.05, 1.0, n)
    q99 = q01 + gen.uniform(0.2, 2.0, n)
    return {"action": {"q01": torch.tensor(q01, dtype=torch.float32), "q99": torch.tensor(q99, dtype=torch.float32)}}


def verify_loaded_weights(policy, model_file: Path) -> None:
    from safetensors import safe_open

    sd = policy.state_dict()
    with safe_open(str(model_file), "pt") as f:
        keys = set(f.keys())
        assert keys == set(sd), (sorted(keys ^ set(sd)))[:10]
        for k in keys:
            assert k.startswith("transformer."), k
            t = f.get_tensor(k)
            assert t.dtype == torch.float32 and torch.equal(sd[k], t), k


# ----------------------------------------------------------------------------------------------
# Observation images
# ----------------------------------------------------------------------------------------------
def smooth_image(h: int, w: int, base: np.ndarray, drift: np.ndarray, phase: float) -> np.ndarray:
    """Low-frequency colour field: a 5x5 control grid (base + slowly moving drift) upsampled."""
    import torch.nn.functional as F  # noqa: N812

    grid = base + drift * math.sin(phase)
    t = torch.from_numpy(grid).permute(2, 0, 1)[None].float()
    up = F.interpolate(t, size=(h, w), mode="bicubic", align_corners=True)[0].permute(1, 2, 0).numpy()
    return np.clip(np.round(up * 255), 0, 255).astype(np.uint8)


def load_png(path: Path) -> torch.Tensor:
    from PIL import Image

    arr = np.asarray(Image.open(path).convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(255.0)


def sample_vae_clips(case: Case, gen: np.random.Generator) -> list[torch.Tensor]:
    """Model-size frames in [-1, 1] (same image statistics as the episode) to calibrate the VAE."""
    sizes = [(case.height, case.width)]
    if case.camera_layout == "robotwin_tshape":
        sizes.append((case.height // 2, case.width // 2))
    clips = []
    for h, w in sizes:
        cams = []
        for _ in range(8):
            base = gen.uniform(0.1, 0.9, (5, 5, 3))
            drift = gen.uniform(-0.2, 0.2, (5, 5, 3))
            frames = [smooth_image(h, w, base, drift, 0.4 * i) for i in range(9)]
            cams.append(torch.from_numpy(np.stack(frames)).permute(3, 0, 1, 2).float() / 255.0)
        clips.append(torch.stack(cams) * 2.0 - 1.0)  # [8, 3, 9, h, w]
    return clips


# ----------------------------------------------------------------------------------------------
# Running upstream with captures
# ----------------------------------------------------------------------------------------------
def to_np(t: torch.Tensor, dtype=np.float32) -> np.ndarray:
    return t.detach().cpu().numpy().astype(dtype)


class Recorder:
    """Wraps upstream methods of one policy instance and records what they see and return."""

    def __init__(self, policy, noise: list[tuple[torch.Tensor, torch.Tensor]]):
        self.policy = policy
        self.noise = noise
        self.chunks: list[dict] = []
        self.text_calls: list[dict] = []
        self.evictions: list[dict] = []
        self.vae_calls: list[tuple[str, torch.Tensor]] = []
        self._install()

    @property
    def cur(self) -> dict:
        return self.chunks[-1]

    def _install(self) -> None:
        from einops import rearrange

        from lerobot.policies.lingbot_va.utils import data_seq_to_patch

        pol, cfg = self.policy, self.policy.config
        fz = pol._frozen

        te = fz["text_encoder"]
        orig_te_forward = te.forward

        def te_forward(input_ids=None, attention_mask=None, *a, **k):
            out = orig_te_forward(input_ids, attention_mask, *a, **k)
            self.text_calls.append({"input_ids": input_ids.clone(), "attention_mask": attention_mask.clone(),
                                    "hidden": out.last_hidden_state.detach().clone()})
            return out

        te.forward = te_forward

        for name in ("streaming_vae", "streaming_vae_half"):
            if name not in fz:
                continue
            stream = fz[name]
            orig_enc = stream.encode_chunk

            def enc(x, _orig=orig_enc, _name=name):
                self.vae_calls.append((_name, x.detach().clone()))
                return _orig(x)

            stream.encode_chunk = enc

        orig_pac = pol.predict_action_chunk

        def predict_action_chunk(batch, **k):
            self.chunks.append({"vae_frames": {}, "forwards": []})
            self.vae_calls.clear()
            out = orig_pac(batch, **k)
            self.cur["returned"] = out.detach().clone()
            return out

        pol.predict_action_chunk = predict_action_chunk

        orig_encode_frames = pol._encode_frames

        def encode_frames(raw_frames):
            out = orig_encode_frames(raw_frames)
            assert "vae_latent" not in self.cur
            self.cur["vae_latent"] = out.detach().clone()
            self.cur["vae_inputs"] = list(self.vae_calls)
            self.cur["n_raw_frames"] = len(raw_frames)
            return out

        pol._encode_frames = encode_frames

        orig_infer = pol._infer

        def infer(init_latent, frame_st_id=0):
            k = len(self.chunks) - 1
            lat_noise, act_noise = self.noise[k]
            queue = [lat_noise, act_noise]
            orig_randn = torch.randn

            def fake_randn(*size, **kw):
                shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
                assert queue and shape == tuple(queue[0].shape), (shape, [tuple(q.shape) for q in queue])
                return queue.pop(0).clone().to(dtype=kw.get("dtype") or torch.float32)

            torch.randn = fake_randn
            try:
                self.cur["frame_st_id"] = int(frame_st_id)
                self.cur["in_infer"] = True
                actions, latents = orig_infer(init_latent, frame_st_id)
            finally:
                torch.randn = orig_randn
                self.cur["in_infer"] = False
            assert not queue, "both noise tensors must be consumed"
            self.cur["actions_model"] = actions.detach().clone()
            self.cur["latents"] = latents.detach().clone()
            return actions, latents

        pol._infer = infer

        tr = pol.transformer
        orig_fwd = tr.forward
        b = 2 if pol._use_cfg else 1
        lh, lw = pol._latent_hw

        def forward(input_dict, update_cache=0, cache_name="pos", action_mode=False, train_mode=False):
            out = orig_fwd(input_dict, update_cache=update_cache, cache_name=cache_name,
                           action_mode=action_mode, train_mode=train_mode)
            if action_mode:
                vel = rearrange(out, "b (f n) c -> b c f n", f=cfg.frame_chunk_size)
            else:
                nf = input_dict["noisy_latents"].shape[2]
                vel = data_seq_to_patch(cfg.patch_size, out, nf, lh, lw, batch_size=b)
            self.cur["forwards"].append({
                "action_mode": bool(action_mode),
                "update_cache": int(update_cache),
                "in_infer": bool(self.cur.get("in_infer", False)),
                "input": input_dict["noisy_latents"].detach().clone(),
                "timesteps": input_dict["timesteps"].detach().clone(),
                "velocity": vel.detach().clone(),
            })
            return out

        tr.forward = forward

        # eviction bookkeeping (the slot metadata is identical in every block: count block 0)
        for bi, blk in enumerate(tr.blocks):
            attn = blk.attn1
            orig_alloc = attn.allocate_slots

            def allocate_slots(cache_name, key_size, _orig=orig_alloc, _attn=attn, _bi=bi):
                cache = _attn.attn_caches[cache_name]
                mask0, ids0 = cache["mask"].clone(), cache["id"].clone()
                free0 = int((~mask0).sum())
                slots = _orig(cache_name, key_size)
                freed = (mask0 & ~cache["mask"]).nonzero().squeeze(-1)
                if free0 < key_size:
                    used = mask0.nonzero().squeeze(-1).tolist()
                    want = sorted(used, key=lambda s: (int(ids0[s]), s))[: key_size - free0]
                    assert sorted(want) == freed.tolist(), ("eviction order", want, freed.tolist())
                    if _bi == 0:
                        fw = self.cur["forwards"]
                        self.evictions.append({
                            "chunk": len(self.chunks) - 1,
                            "forward": len(fw),
                            "n_freed": int(freed.numel()),
                            "freed_ids": sorted({int(ids0[s]) for s in freed.tolist()}),
                        })
                else:
                    assert freed.numel() == 0
                return slots

            attn.allocate_slots = allocate_slots


def generate_case(case: Case, out_root: Path) -> dict:
    from PIL import Image

    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.lingbot_va.modeling_lingbot_va import LingBotVAPolicy
    from lerobot.policies.lingbot_va.utils import clean_prompt

    t0 = time.time()
    print(f"=== {case.name}")
    case_dir = out_root / case.name
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    torch.manual_seed(case.seed)
    gen_t = torch.Generator().manual_seed(case.seed)
    gen_np = np.random.default_rng(case.seed)

    # ---- wan/ -----------------------------------------------------------------------------------
    wan = case_dir / "wan"
    vae_stats = build_vae(wan / "vae", sample_vae_clips(case, gen_np), gen_t)
    vocab = tokenizer_vocab([case.task])
    build_tokenizer(wan / "tokenizer", vocab)
    vocab_size = int(math.ceil((len(vocab) + 8) / 8) * 8)  # a few spare rows, as real checkpoints have
    build_text_encoder(wan / "text_encoder", vocab_size, gen_t)
    prompt = clean_prompt(case.task)
    token_ids = check_tokenizer(wan / "tokenizer", [prompt, ""])
    n_prompt_tokens = sum(1 for i in token_ids[prompt] if i != 0)
    untruncated = token_ids["untruncated_lengths"][0]
    assert (untruncated > MAX_LEN) == (case.name == "small_window"), untruncated
    print(f"  vocab {len(vocab)} (embedding rows {vocab_size}); prompt {n_prompt_tokens} tokens; "
          f"VAE mu std {vae_stats['mu_std_overall']:.3f}, |mean| {vae_stats['mu_mean_abs_mean']:.3f}")

    # ---- checkpoint/ ----------------------------------------------------------------------------
    cfg = policy_config(case)
    policy = LingBotVAPolicy(cfg)
    reinit_transformer(policy.transformer, gen_t)
    stats = make_quantile_stats(case, gen_np)
    ckpt = case_dir / "checkpoint"
    policy.save_pretrained(ckpt)
    pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
    pre.save_pretrained(ckpt)
    post.save_pretrained(ckpt)
    assert json.loads((ckpt / "config.json").read_text())["wan_pretrained_path"] == HUB_WAN_ID
    del policy, pre, post

    # ---- load back and run the public path -------------------------------------------------------
    run_cfg = PreTrainedConfig.from_pretrained(ckpt)
    run_cfg.wan_pretrained_path = str(wan)
    policy = LingBotVAPolicy.from_pretrained(ckpt, config=run_cfg)
    policy.eval()
    verify_loaded_weights(policy, ckpt / "model.safetensors")
    pre, post = make_pre_post_processors(run_cfg, pretrained_path=str(ckpt))
    policy._ensure_frozen_modules()
    assert all(p.dtype == torch.float32 for p in policy.transformer.parameters())
    assert next(policy._frozen["vae"].parameters()).dtype == torch.float32

    lh, lw = policy._latent_hw
    n_calls = calls_for(case)
    noise = []
    for _ in range(case.n_chunks):
        lat = torch.randn(1, Z_DIM, case.frame_chunk_size, lh, lw, generator=gen_t)
        act = torch.randn(1, 30, case.frame_chunk_size, case.action_per_frame, 1, generator=gen_t)
        noise.append((lat, act))
    rec = Recorder(policy, noise)

    img_dir = case_dir / "images"
    img_dir.mkdir()
    cam_fields = {c.key: (gen_np.uniform(0.1, 0.9, (5, 5, 3)), gen_np.uniform(-0.2, 0.2, (5, 5, 3)),
                          gen_np.uniform(0.25, 0.6)) for c in case.cameras}
    calls, calls_norm, calls_out = [], [], []
    for i in range(n_calls):
        entry = {"images": {}}
        batch = {}
        for c in case.cameras:
            base, drift, speed = cam_fields[c.key]
            short = c.key.rsplit(".", 1)[-1]
            fname = f"images/call{i:03d}_{short}.png"
            Image.fromarray(smooth_image(c.height, c.width, base, drift, speed * i)).save(
                case_dir / fname, optimize=True)
            entry["images"][c.key] = fname
            batch[c.key] = load_png(case_dir / fname)[None]  # [1,3,H,W] = PNG / 255
        batch["task"] = case.task
        calls.append(entry)
        with torch.no_grad():
            obs = pre(batch)
            assert all(torch.equal(obs[c.key], batch[c.key]) for c in case.cameras)  # identity preprocessing
            a_norm = policy.select_action(obs)
            a = post(a_norm)
        calls_norm.append(to_np(a_norm[0]))
        calls_out.append(to_np(a[0]))
    assert len(rec.chunks) == case.n_chunks, (len(rec.chunks), case.n_chunks)

    # ---- noise + episode.json -------------------------------------------------------------------
    noise_dir = case_dir / "noise"
    noise_dir.mkdir()
    noise_entries = []
    for k, (lat, act) in enumerate(noise):
        np.save(noise_dir / f"chunk{k}_latents.npy", to_np(lat))
        np.save(noise_dir / f"chunk{k}_actions.npy", to_np(act))
        noise_entries.append({"latents": f"noise/chunk{k}_latents.npy", "actions": f"noise/chunk{k}_actions.npy"})
    episode = {"task": case.task, "calls": calls, "noise": noise_entries}
    (case_dir / "episode.json").write_text(json.dumps(episode, indent=1, ensure_ascii=False) + "\n")

    # ---- reference/ -----------------------------------------------------------------------------
    ref = case_dir / "reference"
    ref.mkdir()
    use_cfg = policy._use_cfg
    assert len(rec.text_calls) == (2 if use_cfg else 1)  # prompt, then "" only with CFG
    ids = rec.text_calls[0]["input_ids"][0]
    mask = rec.text_calls[0]["attention_mask"][0]
    assert ids.tolist() == token_ids[prompt]
    if use_cfg:
        assert rec.text_calls[1]["input_ids"][0].tolist() == token_ids[""]
    np.save(ref / "input_ids.npy", to_np(ids, np.int64))
    np.save(ref / "attention_mask.npy", to_np(mask, np.int64))
    text = policy._prompt_embeds[0]
    n_valid = int(mask.sum())
    assert torch.equal(text[:n_valid], rec.text_calls[0]["hidden"][0, :n_valid]) and not text[n_valid:].any()
    np.save(ref / "text_embeds.npy", to_np(text))
    if use_cfg:
        np.save(ref / "negative_text_embeds.npy", to_np(policy._negative_prompt_embeds[0]))
    else:
        assert policy._negative_prompt_embeds is None

    n_used = len(case.used_action_channel_ids)
    stats_out = {"text_embeds_valid": float(text[:n_valid].std())}
    chunk_summary = []
    b = 2 if use_cfg else 1
    for k, ch in enumerate(rec.chunks):
        d = ref / f"chunk{k}"
        d.mkdir()
        vae_in = ch["vae_inputs"]
        if case.camera_layout == "robotwin_tshape":
            assert [n for n, _ in vae_in] == ["streaming_vae", "streaming_vae_half"]
            np.save(d / "vae_frames_head.npy", to_np(vae_in[0][1]))
            np.save(d / "vae_frames_wrists.npy", to_np(vae_in[1][1]))
        else:
            assert [n for n, _ in vae_in] == ["streaming_vae"]
            np.save(d / "vae_frames.npy", to_np(vae_in[0][1]))
        np.save(d / "vae_latent.npy", to_np(ch["vae_latent"][0]))

        fw = [f for f in ch["forwards"] if f["in_infer"]]
        feedback = [f for f in ch["forwards"] if not f["in_infer"]]
        vid = [f for f in fw if not f["action_mode"]]
        act = [f for f in fw if f["action_mode"]]
        assert len(vid) == case.num_inference_steps + 1 and len(act) == case.action_num_inference_steps + 1
        assert [f["update_cache"] for f in vid] == [0] * case.num_inference_steps + [1]
        assert [f["update_cache"] for f in act] == [0] * case.action_num_inference_steps + [1]
        assert [(f["action_mode"], f["update_cache"]) for f in feedback] == ([] if k == 0 else [(False, 2), (True, 2)])
        assert vid[0]["velocity"].shape == (b, Z_DIM, case.frame_chunk_size, lh, lw)
        np.save(d / "video_input_first.npy", to_np(vid[0]["input"]))
        np.save(d / "video_timesteps_first.npy", to_np(vid[0]["timesteps"]))
        np.save(d / "video_velocity_first.npy", to_np(vid[0]["velocity"]))
        np.save(d / "video_velocity_last.npy", to_np(vid[-2]["velocity"]))
        np.save(d / "action_velocity_first.npy", to_np(act[0]["velocity"]))
        np.save(d / "action_velocity_last.npy", to_np(act[-2]["velocity"]))
        np.save(d / "video_latents.npy", to_np(ch["latents"][0]))
        a_model = ch["actions_model"][0, :, :, :, 0]
        np.save(d / "actions_normalized.npy", to_np(a_model))
        chunk_norm = ch["returned"]  # [1, n_steps, n_used]
        n_steps = chunk_norm.shape[1]
        assert n_steps == case.frame_chunk_size * case.action_per_frame - (case.action_per_frame if k == 0 else 0)
        used = torch.tensor(case.used_action_channel_ids)
        frames = a_model[used][:, 1:] if k == 0 else a_model[used]
        assert torch.equal(chunk_norm[0], frames.reshape(n_used, -1).T)
        with torch.no_grad():
            chunk_out = post(chunk_norm)
        np.save(d / "actions.npy", to_np(chunk_out[0]))
        chunk_summary.append({
            "frame_st_id": ch["frame_st_id"],
            "n_steps": n_steps,
            "n_vae_frames": ch["n_raw_frames"],
            "vae_latent_shape": list(ch["vae_latent"][0].shape),
            "vae_frames_shapes": {n: list(x.shape) for n, x in vae_in},
            "std": {
                "vae_latent": float(ch["vae_latent"].std()),
                "vae_latent_mean_abs": float(ch["vae_latent"].mean(dim=(0, 2, 3, 4)).abs().mean()),
                "video_velocity_first": float(vid[0]["velocity"].std()),
                "video_velocity_last": float(vid[-2]["velocity"].std()),
                "action_velocity_first": float(act[0]["velocity"][:, used].std()),
                "action_velocity_last": float(act[-2]["velocity"][:, used].std()),
                "video_latents": float(ch["latents"].std()),
                "actions_normalized_used": float(a_model[used].std()),
            },
        })
        s = chunk_summary[-1]["std"]
        print(f"  chunk{k}: frame_st_id={ch['frame_st_id']} steps={n_steps} vae_frames={ch['n_raw_frames']} "
              f"std " + " ".join(f"{n}={v:.3f}" for n, v in s.items()))

    # The rollout's predicted latents joined on frames and decoded, as upstream's
    # decode_predicted_latents gives them for --save-predicted-video: uint8 [T, H, W, 3].
    rollout = torch.cat([ch["latents"] for ch in rec.chunks], dim=2)
    predicted_video = policy.decode_predicted_latents(rollout)
    assert predicted_video.dtype == torch.uint8
    np.save(ref / "predicted_video.npy", predicted_video.numpy())

    calls_norm_a = np.stack(calls_norm)
    calls_out_a = np.stack(calls_out)
    # calls replay the chunks in order
    flat = np.concatenate([to_np(ch["returned"][0]) for ch in rec.chunks])[:n_calls]
    assert np.array_equal(flat, calls_norm_a)
    np.save(ref / "calls_actions.npy", calls_out_a)
    np.save(ref / "calls_actions_normalized.npy", calls_norm_a)

    n_evict = len(rec.evictions)
    if case.expect_evictions:
        assert n_evict > 0, "expected the KV cache to evict"
    else:
        assert n_evict == 0, rec.evictions
    slots = policy.transformer.blocks[0].attn1.attn_caches["pos"]["mask"].numel()
    evict_by_chunk = [sum(1 for e in rec.evictions if e["chunk"] == k) for k in range(case.n_chunks)]
    print(f"  cache slots {slots}; evicting writes {n_evict} (per chunk {evict_by_chunk}), "
          f"slots freed {sum(e['n_freed'] for e in rec.evictions)}")

    summary = {
        "case": case.name,
        "settings": {
            "camera_layout": case.camera_layout, "height": case.height, "width": case.width,
            "action_per_frame": case.action_per_frame, "frame_chunk_size": case.frame_chunk_size,
            "attn_window": case.attn_window, "num_inference_steps": case.num_inference_steps,
            "action_num_inference_steps": case.action_num_inference_steps,
            "guidance_scale": case.guidance_scale, "action_guidance_scale": case.action_guidance_scale,
            "snr_shift": case.snr_shift, "action_snr_shift": case.action_snr_shift,
            "used_action_channel_ids": case.used_action_channel_ids, "max_sequence_length": MAX_LEN,
        },
        "prompt_clean": prompt,
        "prompt_ids": token_ids[prompt][:n_prompt_tokens],
        "prompt_tokens_untruncated": untruncated,
        "negative_prompt_ids": [i for i in token_ids[""] if i != 0],
        "n_calls": n_calls,
        "n_chunks": case.n_chunks,
        "latent_hw": [lh, lw],
        "cache_slots": slots,
        "cfg_batch": b,
        "chunks": chunk_summary,
        "evictions": {"count": n_evict, "per_chunk": evict_by_chunk,
                      "slots_freed": sum(e["n_freed"] for e in rec.evictions),
                      "order": "ascending id, ties by ascending slot index (checked on every eviction)",
                      "events": rec.evictions},
        "shapes": {
            "text_embeds": list(text.shape), "calls_actions": list(calls_out_a.shape),
            "noise_latents": list(noise[0][0].shape), "noise_actions": list(noise[0][1].shape),
        },
        "vae_calibration": vae_stats,
        "text_embeds_std": stats_out["text_embeds_valid"],
    }
    (ref / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")

    case_json = {
        "name": case.name,
        "description": case.description,
        "backbone": "wan",
        "checkpoint": "checkpoint",
        "episode": "episode.json",
        "reference": "reference",
        "task": case.task,
        "cameras": [{"key": c.key, "height": c.height, "width": c.width} for c in case.cameras],
        "camera_layout": case.camera_layout,
        "model_height": case.height,
        "model_width": case.width,
        "latent_hw": [lh, lw],
        "action_dim": 30,
        "used_action_channel_ids": case.used_action_channel_ids,
        "n_calls": n_calls,
        "n_chunks": case.n_chunks,
        "max_sequence_length": MAX_LEN,
        "dtype": "float32",
    }
    (case_dir / "case.json").write_text(json.dumps(case_json, indent=2, ensure_ascii=False) + "\n")
    for f in case_dir.rglob("*"):  # safetensors writes 0600 files
        if f.is_file():
            f.chmod(0o644)
    size = sum(f.stat().st_size for f in case_dir.rglob("*") if f.is_file())
    dt = time.time() - t0
    print(f"  {size / 1e6:.2f} MB, {dt:.1f} s")
    return {"size": size, "seconds": dt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures/lingbot_va")
    ap.add_argument("--case", action="append", help="case name (repeatable); default: all")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = [c.name for c in CASES]
    todo = args.case or names
    for n in todo:
        if n not in names:
            sys.exit(f"unknown case {n!r}; known: {names}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for c in CASES:
        if c.name in todo:
            generate_case(c, out)


if __name__ == "__main__":
    main()
