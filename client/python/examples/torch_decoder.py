#!/usr/bin/python3
"""A small PyTorch decoder (seeded random weights, RMSNorm, RoPE, grouped-query attention, a
SiLU MLP) whose attention goes through a kvtier tier: it generates greedily twice, once with
attention through kvtier (the tier keeps the K/V; each step sends only the new tokens' q, k, v)
and once with plain torch attention over a local K/V cache, and checks the tokens are equal.
Exits 1 when they differ.

  kvtier-local --shards=2 &    # a tier on 127.0.0.1:50051 (its default model: toy)
  /usr/bin/python3 client/python/examples/torch_decoder.py --coordinator=127.0.0.1:50051

The decoder takes the tier model's geometry (layers, heads, head_dim, dtype); q, k and v go to
the tier in the model's dtype, and the plain torch run rounds its K/V the same way.
"""

import argparse
import math
import sys
import time
from typing import Callable, List

import torch

import kvtier

# attend(layer, q [T, Hq, D], k [T, Hkv, D], v [T, Hkv, D]) -> [T, Hq, D]: the new tokens'
# attention over their whole context.
Attend = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
DTYPES = {kvtier.v1.common_pb2.DTYPE_FP32: torch.float32,
          kvtier.v1.common_pb2.DTYPE_FP16: torch.float16,
          kvtier.v1.common_pb2.DTYPE_BF16: torch.bfloat16}


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


def rope(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding of x [T, heads, D] (D even) at ``positions``."""
    half = x.shape[-1] // 2
    frequencies = 10000.0 ** (-torch.arange(half, dtype=torch.float32) / half)
    angles = positions.float()[:, None, None] * frequencies  # [T, 1, half]
    cos, sin = angles.cos(), angles.sin()
    first, second = x[..., :half], x[..., half:]
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)


class Decoder(torch.nn.Module):
    """A decoder-only transformer with seeded random weights; attention is whatever
    ``forward`` is given."""

    def __init__(self, vocab: int, layers: int, q_heads: int, kv_heads: int, head_dim: int,
                 seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        hidden = q_heads * head_dim

        def weight(*shape: int) -> torch.nn.Parameter:
            scale = 1.0 / math.sqrt(shape[0])
            return torch.nn.Parameter(torch.randn(*shape, generator=generator) * scale,
                                      requires_grad=False)

        self.q_heads, self.kv_heads, self.head_dim = q_heads, kv_heads, head_dim
        self.embed = weight(vocab, hidden)
        self.head = weight(hidden, vocab)
        self.layers = torch.nn.ModuleList()
        for _ in range(layers):
            layer = torch.nn.Module()
            layer.wq = weight(hidden, q_heads * head_dim)
            layer.wk = weight(hidden, kv_heads * head_dim)
            layer.wv = weight(hidden, kv_heads * head_dim)
            layer.wo = weight(q_heads * head_dim, hidden)
            layer.up = weight(hidden, 2 * hidden)
            layer.down = weight(2 * hidden, hidden)
            self.layers.append(layer)

    @torch.no_grad()
    def forward(self, tokens: torch.Tensor, positions: torch.Tensor,
                attend: Attend) -> torch.Tensor:
        """The logits [T, vocab] of ``tokens`` at ``positions``."""
        x = self.embed[tokens]
        t = len(tokens)
        for index, layer in enumerate(self.layers):
            h = rms_norm(x)
            q = rope((h @ layer.wq).view(t, self.q_heads, self.head_dim), positions)
            k = rope((h @ layer.wk).view(t, self.kv_heads, self.head_dim), positions)
            v = (h @ layer.wv).view(t, self.kv_heads, self.head_dim)
            x = x + attend(index, q, k, v).reshape(t, -1) @ layer.wo
            x = x + torch.nn.functional.silu(rms_norm(x) @ layer.up) @ layer.down
        return rms_norm(x) @ self.head


class TorchAttention:
    """Plain torch attention over a local K/V cache, K/V rounded to ``dtype`` as the tier
    keeps them."""

    def __init__(self, layers: int, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self.k: List[torch.Tensor] = [None] * layers
        self.v: List[torch.Tensor] = [None] * layers

    def __call__(self, layer: int, q: torch.Tensor, k: torch.Tensor,
                 v: torch.Tensor) -> torch.Tensor:
        def stored(x: torch.Tensor) -> torch.Tensor:
            return x.to(self.dtype).float()

        k, v, q = stored(k), stored(v), stored(q)
        self.k[layer] = k if self.k[layer] is None else torch.cat([self.k[layer], k])
        self.v[layer] = v if self.v[layer] is None else torch.cat([self.v[layer], v])
        keys, values = self.k[layer], self.v[layer]
        group = q.shape[1] // keys.shape[1]
        keys = keys.repeat_interleave(group, dim=1)
        values = values.repeat_interleave(group, dim=1)
        t, n = q.shape[0], keys.shape[0]
        scores = torch.einsum("thd,nhd->htn", q, keys) / math.sqrt(q.shape[-1])
        hidden = torch.arange(n)[None, :] > (n - t + torch.arange(t))[:, None]
        scores = scores.masked_fill(hidden, float("-inf"))
        out = torch.einsum("htn,nhd->thd", scores.softmax(-1), values)
        return out.to(self.dtype).float()


def generate(decoder: Decoder, prompt: List[int], new_tokens: int,
             step: Callable[[List[int], int], Callable[[Attend], torch.Tensor]]) -> List[int]:
    """Greedy generation: ``step(tokens, first_position)`` runs the decoder over ``tokens``
    through the attention it is given and returns their logits."""
    tokens = list(prompt)
    logits = step(tokens, 0)
    for _ in range(new_tokens):
        tokens.append(int(logits[-1].argmax()))
        logits = step(tokens[-1:], len(tokens) - 1)
    return tokens[len(prompt):]


def run_torch(decoder: Decoder, prompt: List[int], new_tokens: int,
              dtype: torch.dtype) -> List[int]:
    attention = TorchAttention(len(decoder.layers), dtype)

    def step(tokens: List[int], first: int) -> torch.Tensor:
        positions = torch.arange(first, first + len(tokens))
        return decoder(torch.tensor(tokens), positions, attention)

    return generate(decoder, prompt, new_tokens, step)


def run_tier(decoder: Decoder, session: kvtier.Session, prompt: List[int],
             new_tokens: int, dtype: torch.dtype) -> List[int]:
    def step(tokens: List[int], first: int) -> torch.Tensor:
        found = session.extend(tokens)  # a prompt may be cached already: skip those tokens
        if first == 0:
            print(f"kvtier: prompt {found.cached} tokens cached, {found.computed} computed")
        tokens = tokens[found.cached:]
        positions = torch.arange(first + found.cached, first + found.cached + len(tokens))
        with session.step() as tier_step:
            def attend(layer: int, q, k, v) -> torch.Tensor:
                return tier_step.attend(layer, q.to(dtype).contiguous(),
                                        k.to(dtype).contiguous(),
                                        v.to(dtype).contiguous()).float()

            return decoder(torch.tensor(tokens), positions, attend)

    return generate(decoder, prompt, new_tokens, step)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coordinator", default="127.0.0.1:50051", help="the tier, host:port")
    parser.add_argument("--model", default="toy", help="the tier's model (its geometry is used)")
    parser.add_argument("--tenant", default="example")
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--prompt_tokens", type=int, default=20)
    parser.add_argument("--new_tokens", type=int, default=40)
    parser.add_argument("--seed", type=int, default=3,
                        help="the weights' and the prompt's seed")
    args = parser.parse_args()
    for name in ("vocab", "prompt_tokens", "new_tokens"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: expected >= 1, got {getattr(args, name)}")

    prompt = torch.randint(0, args.vocab, (args.prompt_tokens,),
                           generator=torch.Generator().manual_seed(args.seed)).tolist()
    with kvtier.Client(args.coordinator) as client:
        session = client.open_session(args.model, args.tenant)
        model = session.model
        if model.head_dim % 2:
            parser.error(f"--model: RoPE needs an even head_dim, the model's is {model.head_dim}")
        dtype = DTYPES[model.dtype]
        decoder = Decoder(args.vocab, model.num_layers, model.num_q_heads, model.num_kv_heads,
                          model.head_dim, args.seed)
        print(f"torch_decoder: model {model.id.name} ({model.num_layers} layers, "
              f"{model.num_q_heads}/{model.num_kv_heads} heads, head_dim {model.head_dim}), "
              f"prompt {len(prompt)} tokens, {args.new_tokens} new", flush=True)
        began = time.perf_counter()
        through_tier = run_tier(decoder, session, prompt, args.new_tokens, dtype)
        tier_seconds = time.perf_counter() - began
        session.close()
    began = time.perf_counter()
    plain = run_torch(decoder, prompt, args.new_tokens, dtype)
    torch_seconds = time.perf_counter() - began
    print(f"kvtier: {through_tier} ({args.new_tokens / tier_seconds:.1f} tokens/s)")
    print(f"torch:  {plain} ({args.new_tokens / torch_seconds:.1f} tokens/s)")
    if through_tier != plain:
        first = next(i for i, (a, b) in enumerate(zip(through_tier, plain)) if a != b)
        print(f"torch_decoder: MISMATCH from token {first}", file=sys.stderr)
        return 1
    print("torch_decoder: the tokens match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
