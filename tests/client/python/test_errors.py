"""Errors from Python: bad arguments (shapes, dtypes, layouts, types, layers, tokens, closed
sessions, steps out of order) raise kvtier.InvalidArgument or FailedPrecondition naming the
argument before any RPC (the step goes on working, and no server saw them); server errors keep
their gRPC code and reason; a shard killed mid-session raises ReprefillRequired; a shard
restarted at its address serves the next session (the step's first message resent over a fresh
stream); a stopped shard fails the step with DeadlineExceeded, and the next step works."""

from __future__ import annotations

import signal
import time

import grpc
import numpy as np
import pytest
import torch

import kvtier
from reference import Conversation, checked_step
from tier_processes import Coordinator, Shard

# The model's shapes (tier_processes.MODEL): 12 query heads, 6 KV heads, head_dim 16.
Q, KV, D = 12, 6, 16


@pytest.fixture
def client(tiers):
    with kvtier.Client(tiers.get(2, "fp16").address) as opened:
        yield opened


def one_token_step(client: kvtier.Client) -> kvtier.Step:
    session = client.open_session("toy", "acme")
    session.extend([1])
    return session.step()


def good(heads: int, dtype=np.float16, tokens: int = 1) -> np.ndarray:
    return np.ones((tokens, heads, D), dtype)


def torch_ones(*shape: int, dtype=torch.float16) -> torch.Tensor:
    return torch.ones(*shape, dtype=dtype)


# (q, k, v, the error's message): one bad argument each.
BAD_TENSORS = [
    (good(Q, tokens=2), good(KV), good(KV),
     r"q: expected shape \[1, 12, 16\] \(tokens, q heads, head_dim\), got \[2, 12, 16\]"),
    (good(Q), good(KV - 1), good(KV), r"k: expected shape \[1, 6, 16\] \(tokens, kv heads"),
    (good(Q), good(KV), np.ones((1, KV * D), np.float16), r"v: expected shape \[1, 6, 16\]"),
    (good(Q, np.float32), good(KV), good(KV),
     r"q: expected a numpy float16 array \(the model is fp16\), got float32"),
    (good(Q), good(KV, np.float64), good(KV), "k: expected a numpy float16 array"),
    (good(Q), good(KV), good(KV).astype(">f2"), "v: expected a numpy float16 array"),
    (np.ones((1, D, Q), np.float16).transpose(0, 2, 1), good(KV), good(KV),
     "q: expected a C-contiguous array"),
    (good(Q), [[[0.0] * D] * KV], good(KV),
     "k: expected a numpy array or a torch tensor, got list"),
    (torch_ones(1, Q, D, dtype=torch.bfloat16), good(KV), good(KV),
     r"q: expected a torch.float16 tensor \(the model is fp16\), got torch.bfloat16"),
    (torch_ones(1, Q, D), torch_ones(1, D, KV).transpose(1, 2), good(KV),
     r"k: expected a contiguous tensor \(call .contiguous\(\)\)"),
    (good(Q), good(KV), torch_ones(1, KV, D, dtype=torch.int32),
     "v: expected a torch.float16 tensor"),
]


@pytest.mark.parametrize("q,k,v,message", BAD_TENSORS)
def test_bad_tensors_are_refused_before_any_rpc(client, q, k, v, message) -> None:
    step = one_token_step(client)
    with pytest.raises(kvtier.InvalidArgument, match=message) as raised:
        step.attend(0, q, k, v)
    assert isinstance(raised.value, ValueError)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    # Nothing was sent: the step goes on, and its first layer still carries the plan.
    out = step.attend(0, good(Q), good(KV), good(KV))
    np.testing.assert_allclose(out, np.ones((1, Q, D)), atol=1e-3)
    step.attend(1, good(Q), good(KV), good(KV))
    step.finish()


@pytest.mark.parametrize("layer", [-1, 2, 1.0, True, "0"])
def test_a_bad_layer_is_refused(client, layer) -> None:
    step = one_token_step(client)
    with pytest.raises(kvtier.InvalidArgument, match=r"layer: expected 0..1, got"):
        step.attend(layer, good(Q), good(KV), good(KV))
    step.close()


def test_out_is_checked_and_filled(client) -> None:
    step = one_token_step(client)
    with pytest.raises(kvtier.InvalidArgument, match=r"out: expected shape \[1, 12, 16\]"):
        step.attend(0, good(Q), good(KV), good(KV), out=good(KV))
    out = np.zeros((1, Q, D), np.float16)
    assert step.attend(0, good(Q), good(KV), good(KV), out=out) is out
    np.testing.assert_allclose(out, np.ones((1, Q, D)), atol=1e-3)
    step.close()


@pytest.mark.parametrize("tokens,message", [
    ([], "tokens: expected at least one"),
    ([1, -2], r"tokens\[1\]: expected a token id in 0..2147483647, got -2"),
    ([1, 2**31], r"tokens\[1\]: expected a token id in 0..2147483647"),
    ([0.5], r"tokens\[0\]: expected an integer token id, got float"),
])
def test_bad_tokens_are_refused(client, tokens, message) -> None:
    session = client.open_session("toy", "acme")
    with pytest.raises(kvtier.InvalidArgument, match=message):
        session.extend(tokens)
    assert session.pending_tokens == 0
    session.close()


def test_a_closed_session_refuses_everything_before_any_rpc(tiers) -> None:
    tier = tiers.get(1, "fp32")
    with kvtier.Client(tier.address) as client:
        session = client.open_session("toy", "acme")
        session.close()
        session.close()  # again: nothing
        for call, name in ((lambda: session.extend([1]), "extend"),
                           (lambda: session.step(), "step"),
                           (lambda: session.end_turn(), "end_turn"),
                           (lambda: session.fork(), "fork")):
            with pytest.raises(kvtier.FailedPrecondition,
                               match=f"{name}: session {session.id} is closed"):
                call()
        with pytest.raises(kvtier.FailedPrecondition, match=r"sessions\[0\]: step: session"):
            client.step([session])


def test_steps_out_of_order_are_refused(client) -> None:
    session = client.open_session("toy", "acme")
    with pytest.raises(kvtier.FailedPrecondition, match="no tokens added by extend"):
        session.step()
    session.extend([1, 2])
    with pytest.raises(kvtier.FailedPrecondition, match="end_turn: 2 tokens added by extend"):
        session.end_turn()
    with pytest.raises(kvtier.FailedPrecondition, match="fork: 2 tokens added by extend"):
        session.fork()
    with pytest.raises(kvtier.InvalidArgument, match=r"sessions\[1\]: the same session twice"):
        client.step([session, session])
    with pytest.raises(kvtier.InvalidArgument, match="sessions: expected at least one"):
        client.step([])
    session.extend([3])
    step = session.step()
    with pytest.raises(kvtier.FailedPrecondition, match="finish: the step attended no layer"):
        step.finish()
    with pytest.raises(kvtier.FailedPrecondition):  # a failed step stays failed
        step.attend(0, good(Q, tokens=3), good(KV, tokens=3), good(KV, tokens=3))
    assert session.pending_tokens == 0  # dropped: extend them again
    session.close()


@pytest.mark.parametrize("kwargs,message", [
    (dict(coordinator=""), "coordinator: expected host:port, got ''"),
    (dict(coordinator="h:1", deadline=0), "deadline: expected seconds > 0, got 0"),
    (dict(coordinator="h:1", step_deadline=-1), "step_deadline: expected seconds > 0"),
    (dict(coordinator="h:1", credentials="token"), "credentials: expected kvtier.Credentials"),
])
def test_bad_client_options_are_refused(kwargs, message) -> None:
    with pytest.raises(kvtier.InvalidArgument, match=message):
        kvtier.Client(**kwargs)


def test_server_errors_keep_their_code_and_reason(tiers, rng) -> None:
    with kvtier.Client(tiers.get(2, "fp32").address) as client:
        with pytest.raises(kvtier.NotFound, match="OpenSession: ") as unknown_model:
            client.open_session("no-such-model", "acme")
        assert unknown_model.value.code == grpc.StatusCode.NOT_FOUND
        with pytest.raises(kvtier.NotFound, match="TakeOverSession: "):
            client.resume_session("0" * 32, "acme")
        session = client.open_session("toy", "acme")
        with pytest.raises(kvtier.NotFound):  # another tenant's session
            client.resume_session(session.id, "globex")
        with pytest.raises(kvtier.InvalidArgument, match="tenant"):
            client.open_session("toy", "")

        conversation = Conversation(session, "fp32", "numpy")
        session.extend([1, 2, 3])
        checked_step(client, [conversation], rng)
        result = client.invalidate_session(session.id, "acme")
        assert result.sessions == 1
        session.extend([4])
        with pytest.raises(kvtier.Invalidated) as invalidated:
            checked_step(client, [conversation], rng)
        assert isinstance(invalidated.value, kvtier.ReprefillRequired)
        assert invalidated.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert invalidated.value.reason == kvtier.Reason.INVALIDATED
        assert session.pending_tokens == 0


@pytest.fixture
def processes():
    """A tier of kvtier-coordinator and two kvtier-shard processes, and its first session."""
    coordinator = Coordinator(shards=2)
    shards = [Shard(coordinator.address), Shard(coordinator.address)]
    yield coordinator, shards
    for process in [*shards, coordinator]:
        process.popen.send_signal(signal.SIGCONT)
        process.stop()


def open_when_served(client: kvtier.Client) -> kvtier.Session:
    deadline = time.monotonic() + 20
    while True:  # until every head range is served
        try:
            return client.open_session("toy", "acme")
        except kvtier.Unavailable:
            assert time.monotonic() < deadline
            time.sleep(0.02)


def test_a_lost_shard_raises_reprefill_required(processes, rng) -> None:
    coordinator, shards = processes
    with kvtier.Client(coordinator.address) as client:
        session = open_when_served(client)
        conversation = Conversation(session, "fp32", "torch")
        session.extend([1, 2, 3, 4, 5])
        checked_step(client, [conversation], rng)
        shards[1].kill()
        deadline = time.monotonic() + 20
        while True:  # UNAVAILABLE until the coordinator drops the shard
            session.extend([6])
            try:
                checked_step(client, [conversation], rng)
            except kvtier.Unavailable:
                assert time.monotonic() < deadline
                time.sleep(0.05)
                continue
            except kvtier.ReprefillRequired as error:
                assert error.reason == kvtier.Reason.REPREFILL_REQUIRED
                assert error.code == grpc.StatusCode.FAILED_PRECONDITION
                assert "missed heartbeats" in error.message
                break
            pytest.fail("a step over a killed shard succeeded")


def test_a_shard_restarted_at_its_address_serves_over_a_fresh_stream(processes, rng) -> None:
    coordinator, shards = processes
    with kvtier.Client(coordinator.address) as client:
        session = open_when_served(client)
        conversation = Conversation(session, "fp32", "numpy")
        session.extend([1, 2, 3])
        checked_step(client, [conversation], rng)  # the client keeps a stream to each shard
        address = shards[1].address
        shards[1].kill()
        shards[1] = Shard(coordinator.address, listen=address)
        # Once the coordinator dropped the killed one, the new one (the third) takes its range.
        coordinator.wait_for(f"assigned to shard 3 at {address}")
        fresh = Conversation(open_when_served(client), "fp32", "numpy")
        fresh.session.extend([4, 5, 6])
        # The idle stream to that address is broken: the step's first message goes again over
        # a fresh one.
        checked_step(client, [fresh], rng)
        fresh.session.extend([7])
        checked_step(client, [fresh], rng)


def test_a_step_past_its_deadline_fails_and_the_next_one_works(processes, rng) -> None:
    coordinator, shards = processes
    with kvtier.Client(coordinator.address, step_deadline=0.5) as client:
        session = open_when_served(client)
        conversation = Conversation(session, "fp32", "numpy")
        session.extend([1, 2, 3])
        checked_step(client, [conversation], rng)
        shards[0].popen.send_signal(signal.SIGSTOP)  # it answers nothing
        session.extend([4])
        began = time.monotonic()
        with pytest.raises(kvtier.DeadlineExceeded, match=r"shard [01] .*deadline passed"):
            checked_step(client, [conversation], rng)
        assert time.monotonic() - began < 5
        shards[0].popen.send_signal(signal.SIGCONT)
        for layer in range(len(conversation.k)):  # the failed step wrote nothing to keep
            conversation.k[layer] = conversation.k[layer][:3]
            conversation.v[layer] = conversation.v[layer][:3]
        session.extend([4])  # again, over fresh streams
        checked_step(client, [conversation], rng)


def test_a_step_left_unfinished_drops_its_tokens(client) -> None:
    session = client.open_session("toy", "acme")
    session.extend([1, 2])
    step = session.step()
    step.attend(0, good(Q, tokens=2), good(KV, tokens=2), good(KV, tokens=2))
    del step  # never finished: its tokens are dropped, its streams go back to the client
    assert session.pending_tokens == 0 and session.context_len == 0
    session.extend([1, 2])
    with pytest.raises(RuntimeError, match="boom"):
        with session.step() as step:
            step.attend(0, good(Q, tokens=2), good(KV, tokens=2), good(KV, tokens=2))
            raise RuntimeError("boom")
    assert session.pending_tokens == 0
    session.extend([1, 2])
    with session.step() as step:
        for layer in range(2):
            step.attend(layer, good(Q, tokens=2), good(KV, tokens=2), good(KV, tokens=2))
    assert session.context_len == 2
    session.close()
