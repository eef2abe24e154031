"""Writes the UMT5 encoder test fixture: a tiny random `UMT5EncoderModel` (gated-gelu, per-layer
relative attention bias), a tiny T5-style Unigram tokenizer, and for a few prompts the upstream
prompt cleaning, tokenization and `last_hidden_state`, all computed with the upstream stack.

Run from the repo root:
    .venv-ref/bin/python graphs/tests/make_umt5_reference.py

Output: graphs/tests/fixtures/umt5/
  text_encoder/{config.json, model.safetensors}   the tiny model as `save_pretrained` writes it
  tokenizer/{tokenizer.json, tokenizer_config.json, ...}   as `T5TokenizerFast.save_pretrained` writes it
  cases.json           {case: {"prompt", "cleaned", "max_len"}}
  <case>/input_ids.npy, attention_mask.npy   i64 [max_len]
  <case>/last_hidden_state.npy               f32 [max_len, d_model] (padded rows included)
  relative_position_buckets.npy              i64 [2*R+1]: upstream's bucket of each relative
                                             position -R..R, for the tiny model's bucket config
"""

import json
import pathlib
import tempfile

import numpy as np
import torch
from lerobot.policies.lingbot_va.utils import clean_prompt
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import T5TokenizerFast, UMT5Config, UMT5EncoderModel

torch.set_num_threads(1)
torch.manual_seed(0)

OUT = pathlib.Path(__file__).resolve().parent / "fixtures" / "umt5"
BUCKET_RANGE = 300

CORPUS = [
    "pick up the red block and place it in the bowl",
    "put the black bowl on the plate",
    "open the top drawer of the cabinet and put the bowl inside",
    "turn on the stove and put the moka pot on it",
    "put both the alphabet soup and the tomato sauce in the basket",
    "pick up the book and place it in the back compartment of the caddy",
    "stack the green cube on top of the yellow cube",
    "push the plate to the front of the stove",
    "put the cream cheese in the bowl & close the microwave",
    "move the ketchup <left> of the milk; then wipe the table",
]

WORDS = (
    "pick up the red block and place it in the bowl then put the black bowl on the plate open the top "
    "drawer of the cabinet turn on the stove stack the green cube on top of the yellow cube push the plate"
).split()


def tiny_tokenizer(directory: pathlib.Path) -> T5TokenizerFast:
    """A Unigram tokenizer with T5's special tokens and `$A </s>` post-processing, saved and
    reloaded through `T5TokenizerFast` so the saved file is what upstream would load."""
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.UnigramTrainer(
        vocab_size=280, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", shrinking_factor=0.9
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        tok.save(str(tmp / "tokenizer.json"))
        (tmp / "tokenizer_config.json").write_text(
            json.dumps(
                {
                    "tokenizer_class": "T5Tokenizer",
                    "extra_ids": 0,
                    "pad_token": "<pad>",
                    "eos_token": "</s>",
                    "unk_token": "<unk>",
                    "model_max_length": 512,
                }
            )
        )
        loaded = T5TokenizerFast.from_pretrained(str(tmp))
    loaded.save_pretrained(str(directory))
    return T5TokenizerFast.from_pretrained(str(directory))


def tokenize(tokenizer, prompt: str, max_len: int):
    """The call upstream makes (`_get_t5_prompt_embeds`), on the cleaned prompt."""
    enc = tokenizer(
        [clean_prompt(prompt)],
        padding="max_length",
        max_length=max_len,
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    return enc.input_ids, enc.attention_mask


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer(OUT / "tokenizer")
    vocab = len(tokenizer)

    cfg = UMT5Config(
        vocab_size=vocab,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        layer_norm_epsilon=1e-6,
        feed_forward_proj="gated-gelu",
        dropout_rate=0.0,
    )
    model = UMT5EncoderModel(cfg).eval()
    with torch.no_grad():
        # Larger position biases than the init gives, so a wrong bucket shows in the output.
        for block in model.encoder.block:
            block.layer[0].SelfAttention.relative_attention_bias.weight.normal_(0.0, 2.0)
        for name, p in model.named_parameters():
            if name.endswith("layer_norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
    model.save_pretrained(str(OUT / "text_encoder"), safe_serialization=True)

    long_text = " ".join(WORDS[i % len(WORDS)] for i in range(45))
    very_long_text = " ".join(WORDS[(7 * i) % len(WORDS)] for i in range(400))
    cases = {
        "short": ("  Put the &amp;amp; red   bowl on the\tplate &lt;now&gt;\u3000 ", 64),
        "long_padded": (long_text, 200),
        "truncated": (very_long_text, 200),
        "empty": ("", 64),
    }
    manifest = {}
    for name, (prompt, max_len) in cases.items():
        ids, mask = tokenize(tokenizer, prompt, max_len)
        with torch.no_grad():
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        case_dir = OUT / name
        case_dir.mkdir(exist_ok=True)
        np.save(case_dir / "input_ids.npy", ids[0].numpy().astype(np.int64))
        np.save(case_dir / "attention_mask.npy", mask[0].numpy().astype(np.int64))
        np.save(case_dir / "last_hidden_state.npy", hidden[0].numpy().astype(np.float32))
        manifest[name] = {"prompt": prompt, "cleaned": clean_prompt(prompt), "max_len": max_len}
        print(f"{name}: {int(mask.sum())} of {max_len} tokens valid")
    (OUT / "cases.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")

    attn = model.encoder.block[0].layer[0].SelfAttention
    rel = torch.arange(-BUCKET_RANGE, BUCKET_RANGE + 1, dtype=torch.long)
    np.save(OUT / "relative_position_buckets.npy", attn._relative_position_bucket(rel).numpy().astype(np.int64))


if __name__ == "__main__":
    main()
