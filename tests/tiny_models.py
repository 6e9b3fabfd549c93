"""Tiny randomly initialised causal LMs, saved to folders and loaded the way a user's model is."""

from __future__ import annotations

from pathlib import Path

WORDS = (  # noqa: SIM905 - a sentence reads better than a list of 39 strings
    "the a museum of modern art in amsterdam is was by and to design building wing city square "
    "van gogh located close south north contemporary century designed architects entrance current "
    "municipal known as it for with on at from"
).split()

ARCHITECTURES = ("gpt_neo", "gpt2", "gpt_neox", "llama", "opt", "phi")


def make_tokenizer():
    """A word-level tokenizer over a small vocabulary, with an unknown-word token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<eos>": 1}
    for word in WORDS + list(".,;:()[]0123456789"):
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>")


def make_config(arch: str, vocab_size: int, n_layers: int = 3, hidden: int = 32, context: int = 64):
    """A config of the given architecture, a few layers deep and tiny in every dimension."""
    import transformers as tf

    common = {"vocab_size": vocab_size, "bos_token_id": 1, "eos_token_id": 1, "pad_token_id": 1}
    if arch == "gpt_neo":
        return tf.GPTNeoConfig(
            **common, hidden_size=hidden, num_layers=n_layers, num_heads=4,
            attention_types=[[["global"], n_layers]], max_position_embeddings=context,
            window_size=16,
        )  # fmt: skip
    if arch == "gpt2":
        return tf.GPT2Config(**common, n_embd=hidden, n_layer=n_layers, n_head=4, n_positions=context)
    if arch == "gpt_neox":
        return tf.GPTNeoXConfig(
            **common, hidden_size=hidden, num_hidden_layers=n_layers, num_attention_heads=4,
            intermediate_size=2 * hidden, max_position_embeddings=context,
        )  # fmt: skip
    if arch == "llama":
        return tf.LlamaConfig(
            **common, hidden_size=hidden, num_hidden_layers=n_layers, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=2 * hidden, max_position_embeddings=context, tie_word_embeddings=True,
        )  # fmt: skip
    if arch == "opt":
        return tf.OPTConfig(
            **common, hidden_size=hidden, num_hidden_layers=n_layers, num_attention_heads=4, ffn_dim=2 * hidden,
            word_embed_proj_dim=hidden, max_position_embeddings=context,
        )  # fmt: skip
    if arch == "phi":
        return tf.PhiConfig(
            **common, hidden_size=hidden, num_hidden_layers=n_layers, num_attention_heads=4,
            intermediate_size=2 * hidden, max_position_embeddings=context, partial_rotary_factor=0.5,
        )  # fmt: skip
    raise ValueError(arch)


def make_tiny_model(folder: Path, arch: str = "llama", n_layers: int = 3, seed: int = 0, **kwargs) -> Path:
    """Save a random tiny model and its tokenizer to folder; return the folder."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    tokenizer = make_tokenizer()
    config = make_config(arch, len(tokenizer), n_layers, **kwargs)
    model = AutoModelForCausalLM.from_config(config)
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_tiny_bert(folder: Path) -> Path:
    """Save a tiny encoder-only model (BERT, masked LM) and its tokenizer to folder: not a causal LM."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    tokenizer = make_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    folder = Path(folder)
    BertForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
