#!/usr/bin/env python3
"""Golden fixtures for the DexVLA port: runs the ORIGINAL repository juruobenruo/DexVLA @ fc21a82.

Per case this script builds a tiny random DexVLA (Qwen2-VL backbone with the real Qwen2 vocabulary, FiLM
fusion, ScaleDP diffusion head), writes it in the layout a user has on disk (the original repository's
`train_output/` or the LeRobot port's (PR #767) `lerobot/` + `qwen2_vl/`), loads it back the way
`evaluate/smart_eval_agilex.py` does and runs that script's own `eval_bc` loop for one action chunk on
CPU in float32, capturing intermediates with wrappers/hooks on the upstream objects. The math is never
re-implemented here.

Usage (from the repo root, after tests/reference/setup_dexvla_env.sh):
    nice .venv-dexvla/bin/python tests/reference/make_dexvla_fixtures.py --out tests/fixtures/dexvla
    nice .venv-dexvla/bin/python tests/reference/make_dexvla_fixtures.py --case tinyvla
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import importlib
import importlib.util
import io
import json
import os
import pickle
import shutil
import sys
import tempfile
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "scripts"))
import dexvla_stats_to_json  # noqa: E402  (our pkl -> json converter)
import make_vla_jepa_fixtures as vj  # noqa: E402  (real-vocab Qwen tokenizer builder, synthetic images)

THREADS = 2
torch.set_num_threads(THREADS)
warnings.filterwarnings("ignore")

UPSTREAM_REPO = "juruobenruo/DexVLA"
UPSTREAM_COMMIT = "fc21a82"
# git blob ids at fc21a82 of the upstream files this script runs (checked at start-up).
UPSTREAM_BLOBS = {
    "evaluate/smart_eval_agilex.py": "a33f877b1fa7e4ec4d128a9c7de54884e94d55bd",
    "policy_heads/models/transformer_diffusion/configuration_scaledp.py": "982c98d8d489e2336c771fb41c49938326603c5b",
    "policy_heads/models/transformer_diffusion/modeling_scaledp.py": "e2cb001a75730717f7de5032d8bd6b49166ec4ce",
    "qwen2_vla/model_load_utils.py": "d7529bfd66b9ecd9a2e0d84936f4d82522e8c0e4",
    "qwen2_vla/models/configuration_qwen2_vla.py": "33116dbf04c5a4e9a933aab717f820db73b66d57",
    "qwen2_vla/models/modeling_qwen2_vla.py": "e47fe3d25cd9fbb6c2a38c97da83ef321c033a49",
    "qwen2_vla/utils/fusion_modules.py": "88b9fdd1446ea4159437ef2d1dd82a5671982438",
    "qwen2_vla/utils/image_processing_qwen2_vla.py": "db33f7c639021e1b538ebdc1f931986e6230be75",
    "qwen2_vla/utils/processing_qwen2_vla.py": "25c302738154e37e033d839d578c39eb8b66ea59",
}
# The bf16 casts on the inference path that the FP32 reference redirects to float32 (file, line). The
# script asserts that exactly these sites (and no other bf16 cast in the upstream source) were hit.
EXPECTED_BF16_SITES = {
    "qwen2_vla/models/modeling_qwen2_vla.py:433": "Qwen2VLVisionBlock.forward: self.norm1(h).to(torch.bfloat16)",
    "qwen2_vla/models/modeling_qwen2_vla.py:1733": "forward: pixel_values.to(dtype=self.computed_type (bf16))",
    "policy_heads/models/transformer_diffusion/modeling_scaledp.py:135": (
        "TimestepEmbedder.timestep_embedding: embedding.to(dtype=torch.bfloat16)"),
}

# ---- Qwen2-VL-2B-Instruct facts ------------------------------------------------------------------------
QWEN2VL_ADDED = [t for t, _ in vj.QWEN_ADDED[:14]]  # <|endoftext|> .. <|video_pad|> at 151643..151656
QWEN2VL_IDS = {t: 151643 + i for i, t in enumerate(QWEN2VL_ADDED)}
IM_END, IM_START, ENDOFTEXT = QWEN2VL_IDS["<|im_end|>"], QWEN2VL_IDS["<|im_start|>"], QWEN2VL_IDS["<|endoftext|>"]
IMAGE_PAD, VISION_START, VISION_END = (QWEN2VL_IDS["<|image_pad|>"], QWEN2VL_IDS["<|vision_start|>"],
                                      QWEN2VL_IDS["<|vision_end|>"])
VOCAB_SIZE = 151936
DEFAULT_SYSTEM = "You are a helpful assistant."
# preprocessor_config.json of Qwen2-VL-2B-Instruct (the train script copies it into every checkpoint).
PREPROCESSOR_CONFIG = {
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2VLProcessor",
}
# generation_config.json of Qwen2-VL-2B-Instruct as we recall it (not verified against the hub: no
# network). upstream `evaluate` overrides do_sample/num_beams/max_new_tokens/eos/pad; repetition_penalty
# (1.0, i.e. off) is the only value here that would still act on its greedy decoding.
GENERATION_CONFIG = {
    "bos_token_id": ENDOFTEXT,
    "pad_token_id": ENDOFTEXT,
    "do_sample": True,
    "eos_token_id": [IM_END, ENDOFTEXT],
    "repetition_penalty": 1.0,
    "temperature": 0.01,
    "top_p": 0.001,
    "top_k": 1,
}
# Chat template written for these fixtures. It renders the Qwen2-VL-Instruct format: a default system
# turn when the conversation does not start with one, then per message
#   <|im_start|>{role}\n{string content | per part: <|vision_start|><|image_pad|><|vision_end|> (image),
#   <|vision_start|><|video_pad|><|vision_end|> (video), text}<|im_end|>\n
# ("Picture k: " / "Video k: " before a part when add_vision_id is set), and `<|im_start|>assistant\n` for
# add_generation_prompt. A part counts as an image when its type is "image" or it has an "image" or
# "image_url" key (upstream's messages carry {"type": "image", "image": None}).
CHAT_TEMPLATE = (
    "{%- set counts = namespace(image=0, video=0) -%}"
    "{%- for msg in messages -%}"
    "{%- if loop.first and msg['role'] != 'system' -%}"
    "{{- '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{{- '<|im_start|>' + msg['role'] + '\\n' -}}"
    "{%- if msg['content'] is string -%}{{- msg['content'] -}}"
    "{%- else -%}{%- for part in msg['content'] -%}"
    "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}"
    "{%- set counts.image = counts.image + 1 -%}"
    "{%- if add_vision_id -%}{{- 'Picture ' ~ counts.image ~ ': ' -}}{%- endif -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'video' or 'video' in part -%}"
    "{%- set counts.video = counts.video + 1 -%}"
    "{%- if add_vision_id -%}{{- 'Video ' ~ counts.video ~ ': ' -}}{%- endif -%}"
    "{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- elif 'text' in part -%}{{- part['text'] -}}"
    "{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
BASE_MODEL_PLACEHOLDER = "/path/to/pretrained/qwen2_vl"  # `MNOP` of the train scripts

# Cameras in UP order (aloha_scripts/constants.py camera_names; smart_eval_agilex.process_obs stacks
# [top, left_wrist, right_wrist]).
CAMERAS = [("cam_high", "top"), ("cam_left_wrist", "left_wrist"), ("cam_right_wrist", "right_wrist")]
IMG_H, IMG_W = 240, 320
SHARED_OBS_SEED = 7  # the three camera images are shared by all cases (shared/obs_0/)
# pixel_values (5.6 MB) is not stored: vision_embeds checks the image path through it.
SHARED_EXPECTED = ["camera_0_eval", "camera_1_eval", "camera_2_eval"]

VISION = dict(depth=2, embed_dim=32, num_heads=2, mlp_ratio=4)
# Tiny depths and widths with the real 16 heads: the LeRobot port's config names only the size
# (`scaledp_l`), so its head count can only come from MODEL_STRUCTURE.
SCALEDP_TINY = {"H": dict(depth=3, n_emb=64, num_heads=16), "L": dict(depth=2, n_emb=48, num_heads=16)}
UP_HEAD_SIZE = {"H": "ScaleDP_H", "L": "ScaleDP_L"}  # upstream MODEL_STRUCTURE keys
LR_HEAD_SIZE = {"H": "scaledp_h", "L": "scaledp_l"}  # LeRobot-PR MODEL_STRUCTURE keys
UPSTREAM_MAX_NEW_TOKENS = 256


@dataclass
class TextCfg:
    hidden: int = 16
    layers: int = 2
    heads: int = 2
    kv_heads: int = 1
    intermediate: int = 32
    mrope_section: tuple[int, int, int] = (2, 1, 1)


@dataclass
class Case:
    name: str
    description: str
    layout: str  # "up": original repository train_output/ ; "lerobot": LeRobot PR #767 save_pretrained
    mode: str  # "dexvla" (generate + FiLM) | "tinyvla" (prefill mean)
    seed: int
    task: str
    state_dim: int
    action_dim: int
    chunk_size: int
    head: str  # "H" | "L" (tiny stand-ins for ScaleDP_H / ScaleDP_L)
    stop: str | None  # "eos": <|im_end|> after 3..10 tokens ; "limit": never <|im_end|>
    max_new_tokens: int = UPSTREAM_MAX_NEW_TOKENS
    text: TextCfg = field(default_factory=TextCfg)
    num_inference_timesteps: int = 10
    num_train_timesteps: int = 100


CASES = [
    Case(
        name="reasoning_stop",
        description=(
            "Original-repository layout (train_output/dataset_stats.pkl + checkpoint-100/ as train_vla.py and "
            "train_dexvla_stage2.sh leave it). DexVLA mode: greedy reasoning generation that emits <|im_end|> "
            "after a few tokens (steered through the <|im_end|> embedding row), FiLM fusion, tiny ScaleDP_H "
            "head, A=S=14, chunk 50, 10 DDIM steps. Three 240x320 cameras [cam_high, cam_left_wrist, "
            "cam_right_wrist]; task with punctuation and non-ASCII text."
        ),
        layout="up", mode="dexvla", seed=11,
        task="Fold the T-shirt on the table, then put it in the bin \u2014 caf\u00e9 #2!",
        state_dim=14, action_dim=14, chunk_size=50, head="H", stop="eos",
    ),
    Case(
        name="reasoning_limit",
        description=(
            "LeRobot PR #767 layout: lerobot/ (DexVLAConfig config.json, model.safetensors with 'model.'-"
            "prefixed weights and the normalization buffers) and qwen2_vl/ (the base dir qwen2_vl_path points "
            "to). Expected outputs come from the original repository's eval path on the same weights (same "
            "math). Generation never emits <|im_end|> and stops at max_new_tokens=12 (upstream default 256). "
            "Tiny ScaleDP_L head, A=10, S=12, chunk 20. Text hidden 8 with one head (MHA; reasoning_stop has "
            "GQA 2:1)."
        ),
        layout="lerobot", mode="dexvla", seed=12,
        task="Open the drawer (slowly); put the cup inside \u00fcber-carefully?",
        state_dim=12, action_dim=10, chunk_size=20, head="L", stop="limit", max_new_tokens=12,
        text=TextCfg(hidden=8, heads=1, kv_heads=1, intermediate=32),
    ),
    Case(
        name="tinyvla",
        description=(
            "Original-repository layout, TinyVLA mode (using_film=False, policy_head_config.is_tinyvla=True, "
            "run through smart_eval_agilex with tinyvla=True -> evaluate_tinyvla): no generation; the head "
            "condition is the mean of the prefill's final-norm hidden states (then ScaleDP's is_tinyvla "
            "pool + LayerNorm). Note the prefill uses plain 1-D positions (forward gets no position_ids). "
            "Tiny ScaleDP_L head, A=S=14, chunk 50. Text hidden 8, one head."
        ),
        layout="up", mode="tinyvla", seed=13,
        task="Pick up the red block & stack it on the green one: \u00e9t\u00e9 \u2192 done.",
        state_dim=14, action_dim=14, chunk_size=50, head="L", stop=None,
        text=TextCfg(hidden=8, heads=1, kv_heads=1, intermediate=32),
    ),
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------------
# Importing the original repository
# ----------------------------------------------------------------------------------------------------------
def _git_blob(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _install_import_stubs() -> list[str]:
    """Placeholders for modules that only the upstream TRAINING code imports at module level:
    - diffusers.training_utils (EMAModel; imported by qwen2_vla/train/qwen2_vla_trainer.py and the UNet head
      through the package __init__ files). diffusers 0.39's version imports diffusers.pipelines, which needs
      a newer transformers than the pinned 4.45.2.
    - h5py, IPython (imported by data_utils/utils.py, which smart_eval_agilex imports for set_seed)."""
    notes = []
    try:
        importlib.import_module("diffusers.training_utils")
    except Exception as exc:  # noqa: BLE001
        stub = types.ModuleType("diffusers.training_utils")

        class EMAModel:  # training only
            def __init__(self, *a, **k):
                raise RuntimeError("EMAModel is stubbed out (training only)")

        stub.EMAModel = EMAModel
        sys.modules["diffusers.training_utils"] = stub
        notes.append(f"diffusers.training_utils stubbed ({type(exc).__name__})")
    for name in ("h5py", "IPython"):
        try:
            importlib.import_module(name)
        except ImportError:
            stub = types.ModuleType(name)
            if name == "IPython":
                stub.embed = lambda *a, **k: None
            sys.modules[name] = stub
            notes.append(f"{name} stubbed (not installed)")
    return notes


class Upstream:
    """Handles to the original repository's modules (imported the way the eval script imports them)."""

    def __init__(self) -> None:
        self.stub_notes = _install_import_stubs()
        import qwen2_vla  # registers qwen2_vla with AutoConfig / AutoModelForCausalLM / AutoProcessor
        import policy_heads  # noqa: F401  registers scale_dp_policy with AutoConfig / AutoModel

        self.src = Path(qwen2_vla.__file__).resolve().parent.parent
        bad = {rel: _git_blob(self.src / rel) for rel in UPSTREAM_BLOBS}
        bad = {rel: got for rel, got in bad.items() if got != UPSTREAM_BLOBS[rel]}
        if bad:
            sys.exit(f"upstream source at {self.src} is not {UPSTREAM_COMMIT}: {bad}")
        self.cfg_scaledp = importlib.import_module("models.transformer_diffusion.configuration_scaledp")
        self.mod_scaledp = importlib.import_module("models.transformer_diffusion.modeling_scaledp")
        self.mod_qwen = importlib.import_module("qwen2_vla.models.modeling_qwen2_vla")
        spec = importlib.util.spec_from_file_location(
            "smart_eval_agilex", self.src / "evaluate" / "smart_eval_agilex.py")
        self.ev = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.ev)
        # Tiny ScaleDP sizes: ScaleDPPolicyConfig takes depth/n_emb/num_heads from MODEL_STRUCTURE[model_size].
        self.model_structure_orig = copy.deepcopy(self.cfg_scaledp.MODEL_STRUCTURE)
        for shape, dims in SCALEDP_TINY.items():
            self.cfg_scaledp.MODEL_STRUCTURE[UP_HEAD_SIZE[shape]] = dict(dims)
        # what AutoProcessor resolves to (transformers' class; upstream's copies are identical)
        self.rel = lambda p: str(Path(p).resolve().relative_to(self.src))


def cpu_fp32_load_model_for_eval(model_path, model_base, load_8bit=False, load_4bit=False, device_map="cuda",
                                 policy_config=None):
    """CPU/float32 stand-in for qwen2_vla.model_load_utils.load_model_for_eval (its non-LoRA 'qwen2' branch):
    the same four from_pretrained calls, without torch_dtype=bfloat16, device_map and .to('cuda')."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor, AutoTokenizer

    assert model_base is None
    config = AutoConfig.from_pretrained(model_path, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(model_path, use_fast=True)
    model = AutoModelForCausalLM.from_pretrained(model_path, config=config, use_safetensors=True,
                                                 torch_dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(model_path, use_fast=False)
    context_len = getattr(model.config, "max_sequence_length", 2048)
    return tokenizer, model, processor, context_len


class Fp32CpuPatches:
    """While active, Tensor.to / Tensor.cuda called from the DexVLA source run in float32 on CPU:
    a bfloat16 target dtype becomes float32 and a cuda device becomes cpu. Every redirected call site is
    recorded (relative path:line -> kinds). Library code (transformers, torch, diffusers) is untouched."""

    def __init__(self, src: Path) -> None:
        self.src = os.path.realpath(src) + os.sep
        self.sites: dict[str, set[str]] = {}

    def _record(self, frame, kinds) -> None:
        key = f"{os.path.relpath(os.path.realpath(frame.f_code.co_filename), self.src)}:{frame.f_lineno}"
        self.sites.setdefault(key, set()).update(kinds)

    @staticmethod
    def _rewrite(args, kwargs):
        kinds = set()
        args = list(args)
        for i, a in enumerate(args):
            if isinstance(a, torch.dtype) and a == torch.bfloat16:
                args[i], _ = torch.float32, kinds.add("bf16")
            elif isinstance(a, (str, torch.device)) and str(a).startswith("cuda"):
                args[i], _ = "cpu", kinds.add("cuda")
        if kwargs.get("dtype") is torch.bfloat16:
            kwargs["dtype"] = torch.float32
            kinds.add("bf16")
        if "device" in kwargs and str(kwargs["device"]).startswith("cuda"):
            kwargs["device"] = "cpu"
            kinds.add("cuda")
        return args, kwargs, kinds

    def __enter__(self):
        self.orig_to, self.orig_cuda = torch.Tensor.to, torch.Tensor.cuda
        patch = self

        def to(t, *args, **kwargs):
            frame = sys._getframe(1)
            if os.path.realpath(frame.f_code.co_filename).startswith(patch.src):
                args, kwargs, kinds = patch._rewrite(args, kwargs)
                if kinds:
                    patch._record(frame, kinds)
            return patch.orig_to(t, *args, **kwargs)

        def cuda(t, *args, **kwargs):
            frame = sys._getframe(1)
            if os.path.realpath(frame.f_code.co_filename).startswith(patch.src):
                patch._record(frame, {"cuda"})
                return t
            return patch.orig_cuda(t, *args, **kwargs)

        torch.Tensor.to, torch.Tensor.cuda = to, cuda
        return self

    def __exit__(self, *exc):
        torch.Tensor.to, torch.Tensor.cuda = self.orig_to, self.orig_cuda
        return False

    def bf16_sites(self) -> list[str]:
        return sorted(k for k, v in self.sites.items() if "bf16" in v)


@contextlib.contextmanager
def injected_noise(noise: torch.Tensor, caller_file: str):
    """ScaleDP.forward draws its initial DDIM sample with torch.randn((1, T, A)).cuda(); return `noise` for
    that call (from modeling_scaledp.py only) and count the calls."""
    orig = torch.randn
    calls = []

    def fake(*size, **kw):
        if os.path.realpath(sys._getframe(1).f_code.co_filename) == caller_file:
            shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else size
            assert tuple(shape) == tuple(noise.shape), (shape, noise.shape)
            calls.append(tuple(shape))
            return noise.clone()
        return orig(*size, **kw)

    torch.randn = fake
    try:
        yield calls
    finally:
        torch.randn = orig


# ----------------------------------------------------------------------------------------------------------
# Tokenizer, base model dir, config, weights
# ----------------------------------------------------------------------------------------------------------
def build_qwen2vl_tokenizer():
    """The real Qwen2 BPE (151643 ids from qwen.tiktoken, via make_vla_jepa_fixtures' builder) with the 14
    Qwen2-VL added tokens at 151643..151656 (the builder adds the 26 Qwen3 ones; the 12 later are dropped)."""
    from tokenizers import Tokenizer

    full = vj.build_real_qwen_tokenizer()
    data = json.loads(full.to_str())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["id"] < 151643 + len(QWEN2VL_ADDED)]
    assert [t["content"] for t in data["added_tokens"]] == QWEN2VL_ADDED
    assert all(t["special"] and not t["normalized"] for t in data["added_tokens"])
    tok = Tokenizer.from_str(json.dumps(data))
    assert tok.get_vocab_size(with_added_tokens=True) == 151657
    for text, tid in QWEN2VL_IDS.items():
        assert tok.token_to_id(text) == tid, text
    assert tok.token_to_id("<think>") is None
    return tok


def write_base_dir(up: Upstream, dst: Path, case: Case, tok, vision: dict | None = None) -> None:
    """The Qwen2-VL base dir (`MNOP` of the train scripts / `qwen2_vl_path` of the LeRobot port): config.json
    in the shape of upstream docs/config.json (read from the upstream tree, tiny sizes), tokenizer files,
    preprocessor_config.json, chat_template.json, generation_config.json. No weights. `vision` replaces the
    tiny VISION sizes (depth, embed_dim, num_heads, mlp_ratio; bench/dexvla_compare.py passes the real ones)."""
    vision = VISION if vision is None else vision
    from transformers import GenerationConfig, Qwen2TokenizerFast

    dst.mkdir(parents=True)
    cfg = json.loads((up.src / "docs" / "config.json").read_text())
    t = case.text
    assert sum(t.mrope_section) * 2 == t.hidden // t.heads
    cfg.update(hidden_size=t.hidden, intermediate_size=t.intermediate, num_attention_heads=t.heads,
               num_hidden_layers=t.layers, max_window_layers=t.layers, num_key_value_heads=t.kv_heads)
    cfg["vision_config"].update(depth=vision["depth"], embed_dim=vision["embed_dim"],
                                num_heads=vision["num_heads"], mlp_ratio=vision["mlp_ratio"], hidden_size=t.hidden)
    cfg["rope_scaling"]["mrope_section"] = list(t.mrope_section)
    assert cfg["vocab_size"] == VOCAB_SIZE and cfg["eos_token_id"] == IM_END and cfg["image_token_id"] == IMAGE_PAD
    assert cfg["vision_start_token_id"] == VISION_START and cfg["bos_token_id"] == ENDOFTEXT
    (dst / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")

    fast = Qwen2TokenizerFast(
        tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
        additional_special_tokens=QWEN2VL_ADDED[1:], errors="replace", clean_up_tokenization_spaces=False,
        split_special_tokens=False, model_max_length=32768,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(dst)
    (dst / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2) + "\n")
    (dst / "chat_template.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}, indent=2) + "\n")
    GenerationConfig(**GENERATION_CONFIG).save_pretrained(dst)


def up_model_config(base: Path, case: Case):
    """The Qwen2VLAConfig train_vla.py's parse_param builds (same calls, tiny head sizes)."""
    from transformers import AutoConfig

    head_args = dict(policy_head_type="scale_dp_policy", policy_head_size=UP_HEAD_SIZE[case.head],
                     state_dim=case.state_dim, action_dim=case.action_dim)
    config = AutoConfig.from_pretrained(str(base), **head_args)
    config.policy_head_size = head_args["policy_head_size"]
    config.policy_head_config = AutoConfig.for_model(
        model_type=config.policy_head_type, model_size=head_args["policy_head_size"], cond_dim=config.hidden_size,
        action_dim=case.action_dim, prediction_horizon=case.chunk_size, state_dim=case.state_dim,
        is_tinyvla=case.mode == "tinyvla")
    setattr(config.policy_head_config, "input_dim", case.action_dim)
    setattr(config.policy_head_config, "state_dim", case.state_dim)
    config.concat = "token_cat"  # train_dexvla_stage2.sh --concat "token_cat"
    config.using_film = case.mode == "dexvla"
    config.llm_loss_weight = 1.0
    return config


# Gain of the LLM MLP output projections (mlp.down_proj): with plain N(0, 1/fan_in) the tiny 2-layer LLM
# locks greedy decoding onto one repeated token (the residual stream barely changes between steps); a
# per-token MLP that dominates the residual stream makes the generated tokens differ step to step.
DOWN_PROJ_GAIN = 8.0


@torch.no_grad()
def reinit_parameters(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Non-degenerate random weights (activations stay O(1)), rounded to bf16 (the checkpoint dtype):
    linear/conv N(0, 1/fan_in) (LLM mlp.down_proj: times DOWN_PROJ_GAIN), norm weights 1+0.1N, biases 0.1N,
    token embeddings N(0,1), ScaleDP pos_embed 0.5N. FiLM, adaLN and ScaleDP's final layer are NOT zero
    (upstream zero-inits them for training)."""
    for name, p in model.named_parameters():
        shape = tuple(p.shape)
        leaf = name.rsplit(".", 1)[-1]
        if name.endswith("embed_tokens.weight"):
            v = torch.randn(*shape, generator=gen)
        elif name.endswith("pos_embed"):
            v = 0.5 * torch.randn(*shape, generator=gen)
        elif leaf == "bias":
            v = 0.1 * torch.randn(*shape, generator=gen)
        elif p.ndim == 1:
            v = 1.0 + 0.1 * torch.randn(*shape, generator=gen)
        else:
            v = torch.randn(*shape, generator=gen) / float(np.sqrt(np.prod(shape[1:])))
            if name.startswith("model.layers.") and name.endswith("mlp.down_proj.weight"):
                v = v * DOWN_PROJ_GAIN
        p.copy_(v.to(torch.bfloat16).to(p.dtype))


def build_model(up: Upstream, base: Path, case: Case):
    from transformers import GenerationConfig

    config = up_model_config(base, case)
    model = up.mod_qwen.Qwen2VLForConditionalGenerationForVLA(config)
    model.generation_config = GenerationConfig.from_pretrained(str(base))
    model.config._name_or_path = BASE_MODEL_PLACEHOLDER
    reinit_parameters(model, torch.Generator().manual_seed(case.seed))
    assert model.lm_head.weight is model.model.embed_tokens.weight  # tied
    return model.eval()


def make_stats(case: Case, gen: np.random.Generator) -> dict:
    """Synthetic dataset_stats.pkl content in data_utils.utils.get_norm_stats' layout (float32 arrays, plus
    example_qpos: one episode's raw qpos, float64 [T, S])."""
    s, a = case.state_dim, case.action_dim
    qpos_mean = gen.normal(0.0, 0.5, s)
    qpos_std = gen.uniform(0.3, 2.0, s)
    action_min = -gen.uniform(0.3, 2.0, a)
    action_max = action_min + gen.uniform(0.5, 3.0, a)
    eps = 0.0001
    return {
        "action_mean": ((action_min + action_max) / 2 + gen.normal(0, 0.05, a)).astype(np.float32),
        "action_std": ((action_max - action_min) / 4).astype(np.float32),
        "action_min": (action_min - eps).astype(np.float32),
        "action_max": (action_max + eps).astype(np.float32),
        "qpos_mean": qpos_mean.astype(np.float32),
        "qpos_std": qpos_std.astype(np.float32),
        "example_qpos": qpos_mean + qpos_std * gen.normal(0, 1, (4, s)),
    }


# ----------------------------------------------------------------------------------------------------------
# Layouts
# ----------------------------------------------------------------------------------------------------------
def save_up_layout(model, base: Path, root: Path, stats: dict) -> Path:
    """train_output/ as train_vla.py + train_dexvla_stage2.sh leave it: dataset_stats.pkl, config.json
    (model.config.save_pretrained(output_dir)), checkpoint-100/ (HF Trainer save of the bf16 model +
    tokenizer) with preprocessor_config.json and chat_template.json copied from the base dir (the `cp`
    lines at the end of the train scripts). dataset_stats.json is made by scripts/dexvla_stats_to_json.py."""
    from transformers import AutoTokenizer

    out = root / "train_output"
    ckpt = out / "checkpoint-100"
    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    bf16.config.use_cache = True
    bf16.save_pretrained(str(ckpt), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(ckpt))
    for name in ("preprocessor_config.json", "chat_template.json"):
        shutil.copy(base / name, ckpt / name)
    bf16.config.save_pretrained(str(out))
    with open(out / "dataset_stats.pkl", "wb") as f:
        pickle.dump(stats, f)
    assert dexvla_stats_to_json.main([str(out / "dataset_stats.pkl")]) == 0
    return ckpt


def lerobot_config_json(case: Case, base_rel: str) -> dict:
    """What draccus.dump(DexVLAConfig) writes (PreTrainedPolicy._save_pretrained at PR #767 d5ace554):
    "type" first, then the dataclass fields in declaration order (PreTrainedConfig's, then DexVLAConfig's)."""
    inputs = {f"observation.images.{key}": {"type": "VISUAL", "shape": [3, IMG_H, IMG_W]} for key, _ in CAMERAS}
    inputs["observation.state"] = {"type": "STATE", "shape": [case.state_dim]}
    return {
        "type": "dexvla",
        "n_obs_steps": 1,
        "normalization_mapping": {"STATE": "MEAN_STD", "ACTION": "MIN_MAX"},
        "input_features": inputs,
        "output_features": {"action": {"type": "ACTION", "shape": [case.action_dim]}},
        "device": "cuda",
        "use_amp": False,
        "policy_head_type": "scale_dp_policy",
        "policy_head_size": LR_HEAD_SIZE[case.head],
        "action_dim": case.action_dim,
        "state_dim": case.state_dim,
        "chunk_size": case.chunk_size,
        "n_action_steps": case.chunk_size,
        "hidden_size": case.text.hidden,
        "qwen2_vl_path": base_rel,
        "pretrained_path": None,
        "pretrained_scaledp_path": None,
        "training_stage": 2,
        "using_film": True,
        "llm_loss_weight": 1.0,
        "with_llm_head": True,
        "using_reasoning": True,
        "resize_size": [IMG_H, IMG_W],
        "optimizer_lr": 2e-05,
        "optimizer_betas": [0.9, 0.95],
        "optimizer_eps": 1e-08,
        "optimizer_weight_decay": 1e-10,
        "scheduler_warmup_steps": 2000,
        "scheduler_decay_steps": 30000,
        "scheduler_decay_lr": 2.5e-06,
    }


def save_lerobot_layout(model, base: Path, root: Path, stats: dict, case: Case) -> dict:
    """lerobot/ = what DexVLAPolicy.save_pretrained (PR #767) writes: config.json + model.safetensors saved
    with safetensors.torch.save_model(policy) -- the policy's modules are normalize_inputs,
    normalize_targets, unnormalize_outputs (float32 stats buffers, lerobot normalize.py create_stats_buffers)
    and model (Qwen2VLForConditionalGenerationForVLA, bf16). qwen2_vl/ = the base dir (no weights)."""
    from safetensors.torch import save_model
    from torch import nn

    qdir = root / "qwen2_vl"
    shutil.copytree(base, qdir)
    lr = root / "lerobot"
    lr.mkdir()
    (lr / "config.json").write_text(json.dumps(lerobot_config_json(case, "../qwen2_vl"), indent=4) + "\n")

    def pdict(**arrays):
        return nn.ParameterDict({k: nn.Parameter(torch.tensor(v, dtype=torch.float32), requires_grad=False)
                                 for k, v in arrays.items()})

    policy = nn.Module()
    policy.normalize_inputs = nn.Module()
    policy.normalize_inputs.buffer_observation_state = pdict(mean=stats["qpos_mean"], std=stats["qpos_std"])
    policy.normalize_targets = nn.Module()
    policy.normalize_targets.buffer_action = pdict(min=stats["action_min"], max=stats["action_max"])
    policy.unnormalize_outputs = nn.Module()
    policy.unnormalize_outputs.buffer_action = pdict(min=stats["action_min"], max=stats["action_max"])
    policy.model = copy.deepcopy(model).to(torch.bfloat16)
    save_model(policy, str(lr / "model.safetensors"))
    from safetensors import safe_open

    with safe_open(str(lr / "model.safetensors"), "pt") as f:
        meta = f.metadata() or {}
    return meta


# ----------------------------------------------------------------------------------------------------------
# Running upstream
# ----------------------------------------------------------------------------------------------------------
class StopEval(Exception):
    pass


class RecordingEnv:
    """Robot env for smart_eval_agilex.eval_bc: the same observation every step; records executed actions;
    stops the loop when it asks for an observation after `n_steps` actions."""

    def __init__(self, images: list[np.ndarray], state: np.ndarray, n_steps: int) -> None:
        self.obs = {upkey: img for (_, upkey), img in zip(CAMERAS, images)}
        self.state = state
        self.n_steps = n_steps
        self.calls = 0
        self.actions: list[list[float]] = []

    def get_obs(self):
        if self.calls == self.n_steps:
            raise StopEval
        self.calls += 1
        return {k: v.copy() for k, v in self.obs.items()}, self.state.copy()

    def step(self, action):
        self.actions.append(list(action))

    def reset(self):
        pass


class ProcessorSpy:
    """Wraps the Qwen2-VL processor to record what process_batch_to_qwen2_vla feeds it."""

    def __init__(self, inner, cap: dict) -> None:
        self._inner, self._cap = inner, cap

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def apply_chat_template(self, *args, **kwargs):
        out = self._inner.apply_chat_template(*args, **kwargs)
        self._cap["messages"] = copy.deepcopy(args[0] if args else kwargs["conversation"])
        self._cap["prompt_text"] = out
        return out

    def __call__(self, *args, **kwargs):
        self._cap["processor_images"] = [np.array(im) for im in kwargs["images"]]
        out = self._inner(*args, **kwargs)
        self._cap["processor_out"] = {k: v.clone() for k, v in out.items()}
        return out


def run_upstream(up: Upstream, ckpt: Path, case: Case, images, state, noise, gen_override=None) -> dict:
    """smart_eval_agilex.qwen2_vla_policy(...) + eval_bc(...) for one chunk, with captures."""
    ev = up.ev
    ev.load_model_for_eval = cpu_fp32_load_model_for_eval
    policy_config = {"model_path": str(ckpt), "model_base": None, "enable_lora": False,
                     "action_head": "scale_dp_policy", "tinyvla": case.mode == "tinyvla"}
    with contextlib.redirect_stdout(io.StringIO()):
        policy = ev.qwen2_vla_policy(policy_config)
    model = policy.policy
    cap: dict = {"policy": policy, "model": model, "eps": [], "t": [], "samples": [], "head_cond": [],
                 "lm_head": []}
    overridden: list[tuple[object, str]] = []

    def override(obj, name, fn):  # instance attribute shadowing the bound method; removed afterwards
        setattr(obj, name, fn)
        overridden.append((obj, name))

    policy.multimodal_processor = ProcessorSpy(policy.multimodal_processor, cap)
    hooks = []

    orig_rope = model.get_rope_index

    def get_rope_index(*a, **k):
        out = orig_rope(*a, **k)
        cap.setdefault("rope", (out[0].clone(), out[1].clone()))
        return out

    override(model, "get_rope_index", get_rope_index)

    def llm_pre(mod, args, kwargs):
        if "llm_position_ids" not in cap:
            pid = kwargs.get("position_ids")
            cap["llm_position_ids"] = None if pid is None else pid.clone()
            cap["llm_input_len"] = kwargs["inputs_embeds"].shape[1]

    def llm_post(mod, args, kwargs, out):
        cap.setdefault("llm_prefill_hidden", out[0].clone())

    hooks.append(model.model.register_forward_pre_hook(llm_pre, with_kwargs=True))
    hooks.append(model.model.register_forward_hook(llm_post, with_kwargs=True))
    hooks.append(model.visual.register_forward_hook(lambda m, a, o: cap.setdefault("vision_embeds", o.clone())))
    hooks.append(model.lm_head.register_forward_hook(lambda m, a, o: cap["lm_head"].append(o[0, -1].clone())))

    head = model.policy_head
    hooks.append(head.register_forward_pre_hook(lambda m, a: cap.setdefault("head_args", a)))
    hooks.append(head.cond_obs_emb.register_forward_hook(lambda m, a, o: cap["head_cond"].append(o.clone())))
    if getattr(head, "is_tinyvla", False):
        hooks.append(head.norm_after_pool.register_forward_hook(
            lambda m, a, o: cap.setdefault("tinyvla_norm", o.clone())))

    orig_mf = head.model_forward

    def model_forward(x, t, global_cond, states):
        out = orig_mf(x, t, global_cond, states)
        cap["t"].append(int(t))
        cap["eps"].append(out.clone())
        return out

    override(head, "model_forward", model_forward)
    sched = head.noise_scheduler
    orig_step = sched.step

    def step(*a, **k):
        out = orig_step(*a, **k)
        cap["samples"].append(out.prev_sample.clone())
        return out

    override(sched, "step", step)

    if case.mode == "dexvla":
        orig_generate = model.generate

        def generate(*a, **k):
            cap["generate_kwargs"] = {kk: v for kk, v in k.items() if not torch.is_tensor(v)}
            assert k["max_new_tokens"] == UPSTREAM_MAX_NEW_TOKENS
            if gen_override:
                k.update(gen_override)
            out = orig_generate(*a, **k)
            cap["generate_out"] = out
            return out

        override(model, "generate", generate)
        orig_film = model.film_forward

        def film_forward(labels, input_ids, hidden_states):
            out = orig_film(labels=labels, input_ids=input_ids, hidden_states=hidden_states)
            cap["film"] = (labels.clone(), input_ids.clone(), hidden_states.clone(), out.clone())
            return out

        override(model, "film_forward", film_forward)
        orig_eval = model.evaluate
    else:
        # smart_eval_agilex calls evaluate_tinyvla(**batch, is_eval=True, tokenizer=...), but
        # evaluate_tinyvla takes no `tokenizer` argument (TypeError upstream); drop it.
        orig_eval = model.evaluate_tinyvla

    def evaluate(**kwargs):
        cap["evaluate_kwargs"] = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in kwargs.items()}
        if case.mode == "tinyvla":
            kwargs.pop("tokenizer", None)
        out = orig_eval(**kwargs)
        cap["evaluate_out"] = (out[0].clone(), out[1])
        return out

    override(model, "evaluate" if case.mode == "dexvla" else "evaluate_tinyvla", evaluate)

    env = RecordingEnv(images, state, case.chunk_size)
    patches = Fp32CpuPatches(up.src)
    stdout = io.StringIO()
    try:
        with patches, injected_noise(noise[None], os.path.realpath(up.mod_scaledp.__file__)) as calls, \
                contextlib.redirect_stdout(stdout):
            try:
                ev.eval_bc(policy, env, policy_config, raw_lang=case.task, query_frequency=case.chunk_size)
            except StopEval:
                pass
    finally:
        for h in hooks:
            h.remove()
        for obj, name in overridden:
            delattr(obj, name)
        policy.multimodal_processor = policy.multimodal_processor._inner
    assert len(calls) == 1, calls
    assert len(env.actions) == case.chunk_size, len(env.actions)
    cap["actions"] = np.asarray(env.actions, dtype=np.float64)
    cap["patches"] = patches
    cap["stdout"] = stdout.getvalue()
    return cap


def search_im_end_row(up: Upstream, cap: dict, lo: int = 3, hi: int = 10):
    """Deterministic steering of the first <|im_end|>: replace the <|im_end|> embedding row (tied with the
    lm_head row) by s*u, u = seeded random unit vector, and keep the first (seed, s) with which upstream's
    greedy generate emits <|im_end|> after lo..hi other tokens, at least two of them distinct (and no
    <|endoftext|>)."""
    model = cap["model"]
    kw = cap["evaluate_kwargs"]
    assert model.lm_head.weight is model.model.embed_tokens.weight
    emb = model.model.embed_tokens.weight.data
    orig = emb[IM_END].clone()
    hidden = emb.shape[1]
    with Fp32CpuPatches(up.src), torch.inference_mode(), contextlib.redirect_stdout(io.StringIO()):
        for i in range(200):
            u = torch.randn(hidden, generator=torch.Generator().manual_seed(1000 + i))
            u = u / u.norm()
            for s in (6.0, 8.0, 10.0, 12.0):
                row = (s * u).to(torch.bfloat16).float()
                emb[IM_END] = row
                out = model.generate(kw["input_ids"], pixel_values=kw["pixel_values"],
                                     attention_mask=kw["attention_mask"], image_grid_thw=kw["image_grid_thw"],
                                     is_eval=True, num_beams=1, do_sample=False, max_new_tokens=hi + 1,
                                     eos_token_id=IM_END, pad_token_id=IM_END, use_cache=True)
                new = out[0, kw["input_ids"].shape[1]:].tolist()
                if (IM_END in new and lo <= new.index(IM_END) <= hi and ENDOFTEXT not in new
                        and len(set(new[:new.index(IM_END)])) >= 2):
                    emb[IM_END] = orig
                    return row, {"seed": 1000 + i, "scale": s, "tries": 4 * i + (6.0, 8.0, 10.0, 12.0).index(s) + 1,
                                 "predicted_ids": new}
    emb[IM_END] = orig
    raise RuntimeError("no <|im_end|> steering candidate found")


# ----------------------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------------------
def verify_weights(model, file: Path, prefix: str = "", aliases: dict | None = None) -> dict:
    """Every tensor of the model equals the file's bf16 tensor upcast to f32 (tied lm_head: the one stored)."""
    from safetensors import safe_open

    sd = model.state_dict()
    with safe_open(str(file), "pt") as f:
        keys = [k for k in f.keys() if k.startswith(prefix)]
        stored = {k[len(prefix):]: f.get_tensor(k) for k in keys}
        meta = f.metadata()
    aliases = aliases or {}
    dtypes = sorted({str(t.dtype) for t in stored.values()})
    for k, v in sd.items():
        src = k if k in stored else aliases.get(k)
        assert src in stored, (k, "missing in", file)
        assert stored[src].dtype == torch.bfloat16, (k, stored[src].dtype)
        assert v.dtype == torch.float32 and torch.equal(v, stored[src].float()), k
    extra = set(stored) - set(sd)
    assert not extra, extra
    return {"n_tensors": len(stored), "dtypes": dtypes, "metadata": meta}


def check_tokenization(tokenizer_json: Path, text: str, input_ids: np.ndarray, n_img_tokens: list[int]) -> None:
    """The Rust path: `tokenizers` on tokenizer.json, then <|image_pad|> expansion, gives upstream's ids."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    ids = tok.encode(text, add_special_tokens=False).ids
    assert ids.count(IMAGE_PAD) == len(n_img_tokens)
    expanded, k = [], 0
    for i in ids:
        if i == IMAGE_PAD:
            expanded += [IMAGE_PAD] * n_img_tokens[k]
            k += 1
        else:
            expanded.append(i)
    assert expanded == input_ids.tolist()


def to_np(t: torch.Tensor, dtype) -> np.ndarray:
    return t.detach().cpu().numpy().astype(dtype)


# ----------------------------------------------------------------------------------------------------------
# One case
# ----------------------------------------------------------------------------------------------------------
def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def link(target: Path, at: Path) -> None:
    at.symlink_to(os.path.relpath(target, at.parent))


def generate_case(up: Upstream, case: Case, out_root: Path, tok, shared: Path, images: list[np.ndarray]) -> dict:
    log(f"=== {case.name}")
    case_dir = out_root / case.name
    if case_dir.exists():
        shutil.rmtree(case_dir)
    gen_np = np.random.default_rng(case.seed)
    gen_t = torch.Generator().manual_seed(case.seed + 100)

    with tempfile.TemporaryDirectory(prefix="dexvla_fx_") as tmp_s:
        tmp = Path(tmp_s)
        base = tmp / "qwen2_vl"
        write_base_dir(up, base, case, tok)
        model = build_model(up, base, case)
        stats = make_stats(case, gen_np)

        # ---- observation: shared camera PNGs, per-case state / noise ------------------------------------
        state = (stats["qpos_mean"].astype(np.float64)
                 + stats["qpos_std"].astype(np.float64) * gen_np.normal(0, 1, case.state_dim))
        noise = torch.randn(case.chunk_size, case.action_dim, generator=gen_t)

        # ---- UP checkpoint that the eval script runs -----------------------------------------------------
        run_root = tmp / "run"
        ckpt = save_up_layout(model, base, run_root, stats)
        gen_override = None
        if case.max_new_tokens != UPSTREAM_MAX_NEW_TOKENS:
            gen_override = {"max_new_tokens": case.max_new_tokens}
        steering = None
        if case.stop == "eos":
            log("  steering <|im_end|> ...")
            cap0 = run_upstream(up, ckpt, case, images, state, noise, gen_override)
            row, steering = search_im_end_row(up, cap0)
            del cap0
            with torch.no_grad():
                model.model.embed_tokens.weight[IM_END] = row
            shutil.rmtree(run_root)
            ckpt = save_up_layout(model, base, run_root, stats)
            log(f"  steering: seed {steering['seed']} scale {steering['scale']} after {steering['tries']} tries")
        log("  running smart_eval_agilex.eval_bc ...")
        cap = run_upstream(up, ckpt, case, images, state, noise, gen_override)
        policy, lmodel = cap["policy"], cap["model"]

        # ---- checks on what upstream saw and did ----------------------------------------------------------
        tied = {"lm_head.weight": "model.embed_tokens.weight"}
        wcheck = verify_weights(lmodel, ckpt / "model.safetensors", aliases=tied)
        assert wcheck["metadata"] == {"format": "pt"}, wcheck["metadata"]
        proc = policy.multimodal_processor
        improc = proc.image_processor
        classes = {"processor": f"{type(proc).__module__}.{type(proc).__name__}",
                   "image_processor": f"{type(improc).__module__}.{type(improc).__name__}",
                   "processor_tokenizer": f"{type(proc.tokenizer).__module__}.{type(proc.tokenizer).__name__}",
                   "tokenizer": f"{type(policy.tokenizer).__module__}.{type(policy.tokenizer).__name__}"}
        assert type(improc).__name__ == "Qwen2VLImageProcessor"
        for k, v in PREPROCESSOR_CONFIG.items():
            if k not in ("image_processor_type", "processor_class"):
                assert getattr(improc, k) == v, (k, getattr(improc, k))
        tokz = policy.tokenizer
        for text, tid in QWEN2VL_IDS.items():
            assert tokz.convert_tokens_to_ids(text) == tid, text
        assert tokz.eos_token_id == IM_END and tokz.convert_tokens_to_ids("[SOA]") == 151657
        sites = cap["patches"].bf16_sites()
        assert sites == sorted(EXPECTED_BF16_SITES), sites

        pin = cap["processor_out"]
        input_ids = to_np(pin["input_ids"][0], np.int64)
        P = int(input_ids.shape[0])
        grid = to_np(pin["image_grid_thw"], np.int64)
        assert grid.tolist() == [[1, 18, 22]] * 3, grid
        n_img = [int(g.prod()) // 4 for g in grid]
        assert n_img == [99, 99, 99] and int((input_ids == IMAGE_PAD).sum()) == 297
        assert int(pin["attention_mask"].min()) == 1
        want_text = ("<|im_start|>system\n" + DEFAULT_SYSTEM + "<|im_end|>\n<|im_start|>user\n"
                     + "<|vision_start|><|image_pad|><|vision_end|>" * 3 + case.task
                     + "<|im_end|>\n<|im_start|>assistant\n")
        assert cap["prompt_text"] == want_text, cap["prompt_text"]
        check_tokenization(ckpt / "tokenizer.json", want_text, input_ids, n_img)
        ev_imgs = cap["processor_images"]
        assert [im.shape for im in ev_imgs] == [(IMG_H, IMG_W, 3)] * 3 and all(im.dtype == np.uint8 for im in ev_imgs)

        dumps: dict[str, np.ndarray] = {}
        for i, im in enumerate(ev_imgs):
            dumps[f"camera_{i}_eval"] = im
        dumps["image_grid_thw"] = grid
        dumps["input_ids"] = input_ids
        vis = cap["vision_embeds"]
        assert vis.shape == (297, case.text.hidden)
        dumps["vision_embeds"] = to_np(vis, np.float32)
        pos_used = cap["llm_position_ids"]
        assert cap["llm_input_len"] == P
        info: dict = {}
        if case.mode == "dexvla":
            pos, deltas = cap["rope"]
            assert pos_used is not None and torch.equal(pos_used, pos)
            dumps["position_ids"] = to_np(pos[:, 0], np.int64)
            dumps["rope_deltas"] = np.asarray(int(deltas.reshape(-1)[0]), dtype=np.int64)
            out = cap["generate_out"]
            seq = out.sequences[0]
            assert torch.equal(seq[:P], pin["input_ids"][0])
            new_ids = to_np(seq[P:], np.int64)
            n = int(new_ids.shape[0])
            hs = [step[-1] for step in out.hidden_states]
            assert len(hs) == n and hs[0].shape[1] == P and all(h.shape[1] == 1 for h in hs[1:])
            prompt_h = hs[0][0]
            assert torch.equal(prompt_h, cap["llm_prefill_hidden"][0])
            reason_h = torch.cat(hs[1:], dim=1)[0] if n > 1 else prompt_h[:0]
            labels, film_ids, film_hs, film_out = cap["film"]
            assert torch.equal(film_hs[0], torch.cat([prompt_h, reason_h], 0))
            assert torch.equal(film_ids[0], seq) and ENDOFTEXT not in new_ids.tolist()
            first_logits = cap["lm_head"][0]
            assert int(first_logits.argmax()) == int(new_ids[0])
            text = cap["evaluate_out"][1]
            if case.stop == "eos":
                assert new_ids[-1] == IM_END and IM_END not in new_ids[:-1].tolist() and 4 <= n <= 11, new_ids
                assert new_ids.tolist() == steering["predicted_ids"], (new_ids, steering)
            else:
                assert n == case.max_new_tokens and IM_END not in new_ids.tolist(), new_ids
                assert len(set(new_ids.tolist())) >= 3, new_ids
                assert cap["generate_kwargs"]["max_new_tokens"] == UPSTREAM_MAX_NEW_TOKENS
            dumps["prompt_hidden"] = to_np(prompt_h, np.float32)
            dumps["generated_ids"] = new_ids
            dumps["reasoning_hidden"] = to_np(reason_h, np.float32)
            cond = film_out.reshape(-1)
            info.update(n_generated=n, reasoning=text, stop=case.stop,
                        generated_tokens=[policy.tokenizer.convert_ids_to_tokens(int(i)) for i in new_ids])
        else:
            # evaluate_tinyvla: forward(..., tinyvla=True) without position_ids -> 1-D positions
            assert pos_used is None
            prompt_h = cap["llm_prefill_hidden"][0]
            dumps["position_ids"] = np.broadcast_to(np.arange(P, dtype=np.int64), (3, P)).copy()
            dumps["prompt_hidden"] = to_np(prompt_h, np.float32)
            cond = cap["head_args"][1].reshape(-1)
            assert torch.equal(cond, torch.mean(cap["llm_prefill_hidden"], dim=1).reshape(-1))
            dumps["tinyvla_norm"] = to_np(cap["tinyvla_norm"][0], np.float32)
            info.update(n_generated=0, reasoning=cap["evaluate_out"][1], stop=None)
        head_args = cap["head_args"]
        assert head_args[0] is None and head_args[3] is None
        assert torch.equal(head_args[1].reshape(-1), cond)
        dumps["film_condition"] = to_np(cond, np.float32)
        st = head_args[2][0]
        want_state = torch.from_numpy((state - stats["qpos_mean"]) / stats["qpos_std"]).float()
        assert torch.equal(st, want_state)
        dumps["state_normalized"] = to_np(st, np.float32)
        hc = cap["head_cond"]
        assert len(hc) == case.num_inference_timesteps and all(torch.equal(h, hc[0]) for h in hc)
        dumps["head_condition"] = to_np(hc[0][0], np.float32)
        assert cap["t"] == list(range(90, -1, -10)), cap["t"]
        dumps["timesteps"] = np.asarray(cap["t"], dtype=np.int64)
        for k, (e, s) in enumerate(zip(cap["eps"], cap["samples"])):
            dumps[f"epsilon_step{k}"] = to_np(e[0], np.float32)
            dumps[f"sample_step{k}"] = to_np(s[0], np.float32)
        act_norm = cap["evaluate_out"][0][0]
        assert torch.equal(act_norm, cap["samples"][-1][0])
        dumps["actions_normalized"] = to_np(act_norm, np.float32)
        actions = cap["actions"]
        assert np.array_equal(actions.astype(np.float32).astype(np.float64), actions)  # f32 values
        dumps["actions"] = actions.astype(np.float32)

        # ---- write the fixture -------------------------------------------------------------------------
        case_dir.mkdir(parents=True)
        if case.layout == "up":
            shutil.copytree(run_root / "train_output", case_dir / "train_output")
            ck_dir = case_dir / "train_output" / "checkpoint-100"
            tok_dirs = [ck_dir]
            wcheck = verify_weights(lmodel, ck_dir / "model.safetensors", aliases=tied)
            layout_info = {"train_output": "train_output", "checkpoint": "train_output/checkpoint-100",
                           "dataset_stats_pkl": "train_output/dataset_stats.pkl",
                           "dataset_stats_json": "train_output/dataset_stats.json"}
        else:
            meta = save_lerobot_layout(model, base, case_dir, stats, case)
            # tied weights: safetensors.save_model keeps one name of a shared tensor and records the others
            # in the metadata ({removed: kept}).
            aliases = {k[len("model."):]: v[len("model."):] for k, v in meta.items() if k.startswith("model.")}
            assert aliases, meta
            lcheck = verify_weights(lmodel, case_dir / "lerobot" / "model.safetensors", prefix="model.",
                                    aliases=aliases)
            from safetensors import safe_open

            with safe_open(str(case_dir / "lerobot" / "model.safetensors"), "pt") as f:
                buf = {k: f.get_tensor(k) for k in f.keys() if not k.startswith("model.")}
            want = {"normalize_inputs.buffer_observation_state.mean": stats["qpos_mean"],
                    "normalize_inputs.buffer_observation_state.std": stats["qpos_std"],
                    "normalize_targets.buffer_action.min": stats["action_min"],
                    "normalize_targets.buffer_action.max": stats["action_max"],
                    "unnormalize_outputs.buffer_action.min": stats["action_min"],
                    "unnormalize_outputs.buffer_action.max": stats["action_max"]}
            assert sorted(buf) == sorted(want)
            for k, v in want.items():
                assert buf[k].dtype == torch.float32 and np.array_equal(buf[k].numpy(), v), k
            # LeRobot normalizes the state with (x - mean) / (std + 1e-8) in f32: within 1 ulp of UP's.
            lr_state = (state.astype(np.float32) - stats["qpos_mean"]) / (stats["qpos_std"] + np.float32(1e-8))
            info["lerobot_state_norm_max_abs_diff"] = float(np.abs(lr_state - dumps["state_normalized"]).max())
            assert info["lerobot_state_norm_max_abs_diff"] < 1e-6
            tok_dirs = [case_dir / "qwen2_vl"]
            wcheck = {"lerobot": lcheck, "lerobot_metadata": meta}
            layout_info = {"lerobot": "lerobot", "qwen2_vl": "qwen2_vl",
                           "model_safetensors": "lerobot/model.safetensors"}
        # tokenizer.json is shared (symlink; same JSON, written compact); the slow-tokenizer files
        # vocab.json / merges.txt are not kept (see README)
        shared_tok = shared / "tokenizer.json"
        shared_tok_json = json.loads(shared_tok.read_text(encoding="utf-8"))
        for d in tok_dirs:
            tj = d / "tokenizer.json"
            assert json.loads(tj.read_text(encoding="utf-8")) == shared_tok_json, tj
            tj.unlink()
            link(shared_tok, tj)
            for name in ("vocab.json", "merges.txt"):
                (d / name).unlink()

        obs_dir = case_dir / "obs_0"
        exp = obs_dir / "expected"
        exp.mkdir(parents=True)
        for key, _ in CAMERAS:
            link(shared / "obs_0" / f"{key}.png", obs_dir / f"{key}.png")
        # image-path outputs depend on the (shared) images only: stored once in shared/obs_0/expected
        (shared / "obs_0" / "expected").mkdir(exist_ok=True)
        for name in SHARED_EXPECTED:
            target = shared / "obs_0" / "expected" / f"{name}.npy"
            data = _npy_bytes(dumps.pop(name))
            if target.exists():
                assert target.read_bytes() == data, target
            else:
                target.write_bytes(data)
                target.chmod(0o644)
            link(target, exp / f"{name}.npy")
        (obs_dir / "inputs.json").write_text(json.dumps({
            "task": case.task,
            "state": [float(x) for x in state],
            "cameras": [f"{key}.png" for key, _ in CAMERAS],
            "camera_keys": [key for key, _ in CAMERAS],
        }, indent=2, ensure_ascii=False) + "\n")
        np.save(obs_dir / "noise.npy", to_np(noise, np.float32))
        for name, arr in dumps.items():
            np.save(exp / f"{name}.npy", arr)
        (exp / "prompt_text.txt").write_text(cap["prompt_text"], encoding="utf-8")
        if case.mode == "dexvla":
            (exp / "reasoning.txt").write_text(info["reasoning"], encoding="utf-8")

        sdp_cfg = lmodel.policy_head.config
        hidden = case.text.hidden
        case_json = {
            "name": case.name,
            "description": case.description,
            "upstream": {"repo": UPSTREAM_REPO, "commit": UPSTREAM_COMMIT,
                         "entry": "evaluate/smart_eval_agilex.py eval_bc (query_frequency = chunk_size)"},
            "layout": case.layout,
            "paths": layout_info,
            "mode": case.mode,
            "cameras": [{"key": key, "up_obs_key": upkey, "file": f"{key}.png", "height": IMG_H, "width": IMG_W}
                        for key, upkey in CAMERAS],
            "state_dim": case.state_dim,
            "action_dim": case.action_dim,
            "chunk_size": case.chunk_size,
            "num_inference_timesteps": case.num_inference_timesteps,
            "num_train_timesteps": case.num_train_timesteps,
            "max_new_tokens": case.max_new_tokens if case.mode == "dexvla" else None,
            "upstream_max_new_tokens": UPSTREAM_MAX_NEW_TOKENS,
            "text": {"hidden": hidden, "layers": case.text.layers, "heads": case.text.heads,
                     "kv_heads": case.text.kv_heads, "head_dim": hidden // case.text.heads,
                     "intermediate": case.text.intermediate, "mrope_section": list(case.text.mrope_section),
                     "rope_theta": 1e6, "rms_norm_eps": 1e-6, "vocab_size": VOCAB_SIZE, "tied_embeddings": True},
            "vision": {**VISION, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
                       "hidden_act": "quick_gelu", "out_hidden": hidden},
            "scaledp": {"shape": case.head, "policy_head_size": (UP_HEAD_SIZE if case.layout == "up"
                                                                   else LR_HEAD_SIZE)[case.head],
                        "depth": sdp_cfg.depth, "n_emb": sdp_cfg.n_emb, "num_heads": sdp_cfg.num_heads,
                        "mlp_ratio": sdp_cfg.mlp_ratio, "cond_dim": sdp_cfg.cond_dim,
                        "is_tinyvla": bool(sdp_cfg.is_tinyvla), "combine_hidden": 1024,
                        "model_structure_override": {(UP_HEAD_SIZE if case.layout == "up" else LR_HEAD_SIZE)[
                            case.head]: SCALEDP_TINY[case.head]},
                        "model_structure_upstream": up.model_structure_orig},
            "token_ids": {"im_end": IM_END, "im_start": IM_START, "endoftext": ENDOFTEXT, "image_pad": IMAGE_PAD,
                          "vision_start": VISION_START, "vision_end": VISION_END, "soa_added_by_eval": 151657},
            "generation": {"greedy": True, "eos_token_id": IM_END, "pad_token_id": IM_END,
                           "generation_config": GENERATION_CONFIG, "steering": steering},
            "P": P,
            "n_image_tokens": n_img,
            "image_grid_thw": grid.tolist(),
            **info,
            "fp32_reference": {
                "bf16_casts_redirected": {s: EXPECTED_BF16_SITES[s] for s in sites},
                "kept_bf16": "TimestepEmbedder.timestep_embedding frequency constants "
                             "(torch.arange(..., dtype=bfloat16), exp in bf16)",
                "weights": "bf16 in the files; loaded with torch_dtype=float32",
                "threads": THREADS,
            },
            "normalization": {"state": "UP process_obs: (state - qpos_mean) / qpos_std in float64 (state f64, "
                                       "stats f32), then .float()",
                              "actions": "UP post_process: ((a + 1) / 2) * (action_max - action_min) + action_min "
                                         "in float32"},
            "weights_check": wcheck,
            "import_stubs": up.stub_notes,
            "classes": classes,
            "shared_files": {"tokenizer.json": "../shared/tokenizer.json",
                             "obs_0": [f"{key}.png" for key, _ in CAMERAS]
                             + [f"expected/{n}.npy" for n in SHARED_EXPECTED]},
            "expected_files": sorted(f"{n}.npy" for n in list(dumps) + SHARED_EXPECTED) + ["prompt_text.txt"]
            + (["reasoning.txt"] if case.mode == "dexvla" else []),
            "std": {n: float(dumps[n].std()) for n in ("vision_embeds", "prompt_hidden", "film_condition",
                                                        "head_condition", "epsilon_step0", "actions_normalized")},
        }
        (case_dir / "case.json").write_text(json.dumps(case_json, indent=2, ensure_ascii=False) + "\n")

        # no temporary path may leak into the fixture
        for f in case_dir.rglob("*"):
            if f.is_file() and not f.is_symlink():
                f.chmod(0o644)
                assert tmp_s.encode() not in f.read_bytes(), f
        log(f"  P={P} n_generated={info['n_generated']} reasoning={info['reasoning']!r}")
        log(f"  actions_normalized [{dumps['actions_normalized'].min():.3f}, {dumps['actions_normalized'].max():.3f}]"
            f" std {case_json['std']}")
        return {"P": P, **{k: info[k] for k in ("n_generated", "reasoning")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures/dexvla")
    ap.add_argument("--case", action="append", help="case name (repeatable); default: all")
    args = ap.parse_args()
    names = [c.name for c in CASES]
    todo = args.case or names
    for n in todo:
        if n not in names:
            sys.exit(f"unknown case {n!r}; known: {names}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    up = Upstream()
    log(f"upstream {UPSTREAM_REPO}@{UPSTREAM_COMMIT} at {up.src}; stubs: {up.stub_notes}")
    log("building the Qwen2 tokenizer from qwen.tiktoken ...")
    tok = build_qwen2vl_tokenizer()
    shared = out / "shared"
    if set(todo) == set(names) and shared.exists():
        shutil.rmtree(shared)
    (shared / "obs_0").mkdir(parents=True, exist_ok=True)
    # shared tokenizer.json: the JSON Qwen2TokenizerFast.save_pretrained writes (identical for every case),
    # re-serialized without indentation (11.4 MB -> about half).
    with tempfile.TemporaryDirectory() as tmp_s:
        base = Path(tmp_s) / "b"
        write_base_dir(up, base, CASES[0], tok)
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(Path(tmp_s) / "c"))
        data = json.loads((Path(tmp_s) / "c" / "tokenizer.json").read_text(encoding="utf-8"))
    (shared / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")),
                                           encoding="utf-8")
    # shared camera images (uint8 PNG; what the robot env returns is the decoded PNG)
    from PIL import Image

    gen = np.random.default_rng(SHARED_OBS_SEED)
    images = []
    for key, _ in CAMERAS:
        path = shared / "obs_0" / f"{key}.png"
        Image.fromarray(vj.make_image(IMG_H, IMG_W, gen)).save(path)
        images.append(np.asarray(Image.open(path).convert("RGB")).copy())
    for f in shared.rglob("*"):
        if f.is_file():
            f.chmod(0o644)
    results = {}
    for c in CASES:
        if c.name in todo:
            results[c.name] = generate_case(up, c, out, tok, shared, images)
    log(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
