"""Test support: the float64 reference for attention through the tier, and conversations whose
every output is checked against it. A ``Conversation`` keeps, per layer, the K/V history of its
session (the values as the model's dtype rounds them, in float64), makes each step's q, k and v
(seeded random, as numpy arrays or torch tensors of the model's dtype), and checks the tier's
output row by row: dense causal attention over the whole history (GQA: query head h reads KV
head h // group; scale 1/sqrt(head_dim)).
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np

import kvtier

# Per dtype: (absolute, relative) tolerance of the tier's output against the reference.
TOLERANCES = {"fp32": (1e-5, 1e-4), "fp16": (2e-3, 2e-3), "bf16": (1.5e-2, 1.5e-2)}


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Causal attention of the last ``len(q)`` positions of ``k``/``v``: q ``[t, Hq, D]``,
    k and v ``[n, Hkv, D]``, float64."""
    t, q_heads, head_dim = q.shape
    n, kv_heads, _ = k.shape
    group = q_heads // kv_heads
    k = np.repeat(k, group, axis=1)
    v = np.repeat(v, group, axis=1)
    scores = np.einsum("thd,nhd->htn", q, k) / np.sqrt(head_dim)
    hidden = np.arange(n)[None, :] > (n - t + np.arange(t))[:, None]
    scores[:, hidden] = -np.inf
    weights = np.exp(scores - scores.max(axis=2, keepdims=True))
    weights /= weights.sum(axis=2, keepdims=True)
    return np.einsum("htn,nhd->thd", weights, v)


def rounded(x: np.ndarray, dtype: str) -> np.ndarray:
    """float32 ``x`` as the model's dtype holds it, in float64."""
    if dtype == "fp16":
        return x.astype(np.float16).astype(np.float64)
    if dtype == "bf16":
        import torch
        return torch.from_numpy(x).to(torch.bfloat16).to(torch.float64).numpy()
    return x.astype(np.float64)


def tensor(x: np.ndarray, dtype: str, kind: str):
    """float32 ``x`` as a numpy array or torch tensor of the model's dtype."""
    if kind == "numpy":
        return x.astype({"fp32": np.float32, "fp16": np.float16}[dtype])
    import torch
    return torch.from_numpy(x).to({"fp32": torch.float32, "fp16": torch.float16,
                                   "bf16": torch.bfloat16}[dtype])


def as_float64(out, dtype: str) -> np.ndarray:
    if isinstance(out, np.ndarray):
        return out.astype(np.float64)
    import torch
    assert isinstance(out, torch.Tensor)
    return out.to(torch.float64).numpy()


class Conversation:
    """A session and the K/V history the reference checks it against."""

    def __init__(self, session: kvtier.Session, dtype: str, kind: str,
                 history: Sequence[np.ndarray] = ()) -> None:
        model = session.model
        self.session = session
        self.dtype = dtype
        self.kind = kind
        empty = np.zeros((0, model.num_kv_heads, model.head_dim))
        self.k: List[np.ndarray] = [h.copy() for h in history[0]] if history else \
            [empty] * model.num_layers
        self.v: List[np.ndarray] = [h.copy() for h in history[1]] if history else \
            [empty] * model.num_layers

    def history(self, length: int):
        """The first ``length`` positions of the K/V history (what a fork or a prefix match
        shares)."""
        return ([k[:length] for k in self.k], [v[:length] for v in self.v])


def checked_step(client: kvtier.Client, conversations: Sequence[Conversation],
                 rng: np.random.Generator) -> None:
    """One step over the conversations' pending tokens, every layer checked."""
    first = conversations[0]
    model = first.session.model
    rows = [c.session.pending_tokens for c in conversations]
    total = sum(rows)
    with client.step([c.session for c in conversations]) as step:
        assert step.num_tokens == total
        for layer in range(model.num_layers):
            q = rng.standard_normal((total, model.num_q_heads, model.head_dim), np.float32)
            k = rng.standard_normal((total, model.num_kv_heads, model.head_dim), np.float32)
            v = rng.standard_normal((total, model.num_kv_heads, model.head_dim), np.float32)
            out = step.attend(layer, tensor(q, first.dtype, first.kind),
                              tensor(k, first.dtype, first.kind),
                              tensor(v, first.dtype, first.kind))
            assert type(out) is type(tensor(q[:0], first.dtype, first.kind))
            assert tuple(out.shape) == q.shape
            got = as_float64(out, first.dtype)
            row = 0
            for conversation, t in zip(conversations, rows):
                rows_of = slice(row, row + t)
                conversation.k[layer] = np.concatenate(
                    [conversation.k[layer], rounded(k[rows_of], first.dtype)])
                conversation.v[layer] = np.concatenate(
                    [conversation.v[layer], rounded(v[rows_of], first.dtype)])
                expected = attention(rounded(q[rows_of], first.dtype), conversation.k[layer],
                                     conversation.v[layer])
                atol, rtol = TOLERANCES[first.dtype]
                np.testing.assert_allclose(got[rows_of], expected, atol=atol, rtol=rtol,
                                           err_msg=f"layer {layer}, session "
                                                   f"{conversation.session.id}")
                row += t
