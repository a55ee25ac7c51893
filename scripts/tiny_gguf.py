"""Write a tiny random-weight qwen2 model as GGUF: a real model file for a real llama-server, no hub.

The vocabulary (tokens, merges, types) comes from llama.cpp's vocabulary-only qwen2 file; the
weights are seeded noise, so answers are gibberish but every code path of the server runs: the
tokenizer, the Qwen2.5 chat template with its tool-call syntax, sampling, grammars (JSON schema,
tool calls), continuous batching, usage and /metrics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Small enough to decode fast on one thread, large enough to be a real transformer.
N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_HEAD_KV = 2
N_FF = 128
N_CTX_TRAIN = 4096

# Qwen2.5's tool-call delimiters.  The vocabulary file names these ids as [PAD...] placeholders;
# llama.cpp's Qwen2.5 template and tool-call parser need them as real user-defined tokens.
QWEN25_ADDED = {151657: "<tool_call>", 151658: "</tool_call>"}


def _field(reader, key):
    field = reader.fields[key]
    return field.contents()


def write_tiny_qwen2(vocab_file: Path, out: Path, template_file: Path | None = None, seed: int = 0) -> None:
    import gguf

    reader = gguf.GGUFReader(str(vocab_file))
    tokens = list(_field(reader, "tokenizer.ggml.tokens"))
    types = list(_field(reader, "tokenizer.ggml.token_type"))
    merges = list(_field(reader, "tokenizer.ggml.merges"))
    for token_id, text in QWEN25_ADDED.items():
        tokens[token_id] = text
        types[token_id] = gguf.TokenType.USER_DEFINED
    if template_file is None:
        template_file = vocab_file.parent / "templates" / "Qwen-Qwen2.5-7B-Instruct.jinja"
    template = template_file.read_text()

    writer = gguf.GGUFWriter(str(out), "qwen2")
    writer.add_name("loadbench-tiny-qwen2-random")
    writer.add_block_count(N_LAYER)
    writer.add_context_length(N_CTX_TRAIN)
    writer.add_embedding_length(N_EMBD)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_eos_token_id(151645)  # <|im_end|>: a chat turn ends there
    writer.add_bos_token_id(151643)
    writer.add_pad_token_id(151643)
    writer.add_add_bos_token(False)
    writer.add_chat_template(template)

    rng = np.random.default_rng(seed)
    head_dim = N_EMBD // N_HEAD

    def tensor(name: str, *shape: int, scale: float = 0.05) -> None:
        writer.add_tensor(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    def ones(name: str, n: int) -> None:
        writer.add_tensor(name, np.ones(n, dtype=np.float32))

    tensor("token_embd.weight", len(tokens), N_EMBD)
    for i in range(N_LAYER):
        ones(f"blk.{i}.attn_norm.weight", N_EMBD)
        tensor(f"blk.{i}.attn_q.weight", N_EMBD, N_EMBD)
        tensor(f"blk.{i}.attn_q.bias", N_EMBD)
        tensor(f"blk.{i}.attn_k.weight", N_HEAD_KV * head_dim, N_EMBD)
        tensor(f"blk.{i}.attn_k.bias", N_HEAD_KV * head_dim)
        tensor(f"blk.{i}.attn_v.weight", N_HEAD_KV * head_dim, N_EMBD)
        tensor(f"blk.{i}.attn_v.bias", N_HEAD_KV * head_dim)
        tensor(f"blk.{i}.attn_output.weight", N_EMBD, N_EMBD)
        ones(f"blk.{i}.ffn_norm.weight", N_EMBD)
        tensor(f"blk.{i}.ffn_gate.weight", N_FF, N_EMBD)
        tensor(f"blk.{i}.ffn_up.weight", N_FF, N_EMBD)
        tensor(f"blk.{i}.ffn_down.weight", N_EMBD, N_FF)
    ones("output_norm.weight", N_EMBD)
    # No output.weight: qwen2 ties the output head to token_embd when it is absent.

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
