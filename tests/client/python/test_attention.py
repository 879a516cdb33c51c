"""Attention through the tier from Python equals the float64 reference (reference.py), for numpy
and torch inputs in every dtype, over 1 to 3 shards: a prefill then decode steps, batched
sessions of different lengths, a second turn, a session resumed by a second client, a fork,
and a prompt found cached by a second session."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

import kvtier
from reference import Conversation, checked_step

SHARDS = [1, 2, 3]
# Every dtype with numpy and torch, except bf16, which numpy has no type for.
KINDS = [("fp32", "numpy"), ("fp16", "numpy"), ("fp32", "torch"), ("fp16", "torch"),
         ("bf16", "torch")]


def tokens(rng: np.random.Generator, n: int) -> list:
    return [int(t) for t in rng.integers(0, 50000, n)]


@pytest.fixture(params=SHARDS, ids=lambda n: f"{n}shards")
def shards(request: pytest.FixtureRequest) -> int:
    return request.param


@pytest.mark.parametrize("dtype,kind", KINDS)
def test_prefill_decode_and_a_second_turn(tiers, shards, dtype, kind, rng) -> None:
    with kvtier.Client(tiers.get(shards, dtype).address) as client:
        session = client.open_session("toy", "acme")
        conversation = Conversation(session, dtype, kind)
        assert session.extend(tokens(rng, 7)) == kvtier.Extended(cached=0, computed=7)
        checked_step(client, [conversation], rng)
        for _ in range(6):  # decode, across block boundaries
            assert session.extend(tokens(rng, 1)) == (0, 1)
            checked_step(client, [conversation], rng)
        assert session.context_len == 13
        assert session.turn_computed_tokens == 13
        session.end_turn(retain_for=60)
        assert session.extend(tokens(rng, 5)).computed == 5  # the second turn
        checked_step(client, [conversation], rng)
        session.extend(tokens(rng, 1))
        checked_step(client, [conversation], rng)
        assert session.context_len == 19
        session.close()
        assert session.closed


@pytest.mark.parametrize("dtype,kind", [("fp16", "numpy"), ("bf16", "torch")])
def test_batched_sessions(tiers, shards, dtype, kind, rng) -> None:
    with kvtier.Client(tiers.get(shards, dtype).address) as client:
        conversations = [Conversation(client.open_session("toy", "acme"), dtype, kind)
                         for _ in range(3)]
        for conversation, n in zip(conversations, (5, 1, 9)):
            conversation.session.extend(tokens(rng, n))
        checked_step(client, conversations, rng)  # prefills of 5, 1 and 9 tokens in one step
        for _ in range(5):
            for conversation in conversations:
                conversation.session.extend(tokens(rng, 1))
            checked_step(client, conversations, rng)
        conversations[1].session.extend(tokens(rng, 3))  # a prefill among decodes
        for conversation in (conversations[0], conversations[2]):
            conversation.session.extend(tokens(rng, 1))
        checked_step(client, conversations, rng)
        for conversation in conversations:
            conversation.session.close()


@pytest.mark.parametrize("dtype,kind", [("fp32", "numpy"), ("fp16", "torch")])
def test_resume_from_a_second_client(tiers, shards, dtype, kind, rng) -> None:
    tier = tiers.get(shards, dtype)
    with kvtier.Client(tier.address) as first, kvtier.Client(tier.address) as second:
        session = first.open_session("toy", "acme")
        conversation = Conversation(session, dtype, kind)
        session.extend(tokens(rng, 6))
        checked_step(first, [conversation], rng)
        session.extend(tokens(rng, 1))
        checked_step(first, [conversation], rng)
        session.end_turn(retain_for=60)

        resumed = second.resume_session(session.id, "acme")
        assert resumed.context_len == 7
        continued = Conversation(resumed, dtype, kind, conversation.history(7))
        resumed.extend(tokens(rng, 3))
        checked_step(second, [continued], rng)
        for _ in range(3):
            resumed.extend(tokens(rng, 1))
            checked_step(second, [continued], rng)
        resumed.end_turn()
        # The first client no longer writes the session: the shards refuse its lease, the
        # coordinator its commits.
        session.extend(tokens(rng, 1))
        with pytest.raises(kvtier.PermissionDenied, match="newer writer"):
            checked_step(first, [conversation], rng)
        with pytest.raises(kvtier.WriterSuperseded) as raised:
            session.end_turn()
        assert raised.value.code == grpc.StatusCode.ABORTED
        assert raised.value.reason == kvtier.Reason.WRITER_SUPERSEDED
        resumed.close()


@pytest.mark.parametrize("dtype,kind", [("fp32", "torch"), ("bf16", "torch")])
def test_fork(tiers, shards, dtype, kind, rng) -> None:
    with kvtier.Client(tiers.get(shards, dtype).address) as client:
        source = client.open_session("toy", "acme")
        original = Conversation(source, dtype, kind)
        source.extend(tokens(rng, 6))  # one full block and a partial one
        checked_step(client, [original], rng)
        forked = source.fork()
        assert forked.id != source.id and forked.context_len == 6
        branch = Conversation(forked, dtype, kind, original.history(6))
        for _ in range(4):  # both continue, each over its own tail
            source.extend(tokens(rng, 1))
            forked.extend(tokens(rng, 1))
            checked_step(client, [original, branch], rng)
        source.close()
        forked.extend(tokens(rng, 2))
        checked_step(client, [branch], rng)  # the fork outlives its source
        forked.close()


def test_a_cached_prompt_is_not_computed_again(tiers, shards, rng) -> None:
    with kvtier.Client(tiers.get(shards, "fp32").address) as client:
        prompt = tokens(rng, 10)  # two full blocks of 4, and 2 more
        first = client.open_session("toy", "acme")
        writer = Conversation(first, "fp32", "numpy")
        first.extend(prompt)
        checked_step(client, [writer], rng)
        first.end_turn(retain_for=60)

        second = client.open_session("toy", "acme")
        found = second.extend(prompt)
        assert found == kvtier.Extended(cached=8, computed=2)
        assert second.turn_cached_tokens == 8 and second.pending_tokens == 2
        reader = Conversation(second, "fp32", "numpy", writer.history(8))
        checked_step(client, [reader], rng)  # attends over the first session's K/V
        other = client.open_session("toy", "globex")  # another tenant shares nothing
        assert other.extend(prompt).cached == 0
        for session in (first, second, other):
            session.close()
