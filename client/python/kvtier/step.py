"""Step: one forward pass of a batch of sessions through the tier, as the C++ client's
client/step.h. Its rows are the sessions' pending tokens (``Session.extend``), session by
session, T in all. For each layer, :meth:`Step.attend` sends every shard its head slice of the
new tokens' q, k and v in one message, all at once, and assembles the full-head output:

    q, out: [T, num_q_heads, head_dim]      k, v: [T, num_kv_heads, head_dim]

in the model dtype. Each shard gets the step's block tables and positions once, with the first
layer, over the client's long-lived stream to it; :meth:`Step.finish` sends nothing. The whole
step runs under the client's step deadline. A shard whose stream breaks fails the step with its
status, or with the coordinator's re-prefill status when the session was lost with it. A step
that failed stays failed and drops the sessions' pending tokens (extend them again to retry),
as does a step left (``with`` block or :meth:`Step.close`) without finishing.

Not thread-safe: one thread at a time.
"""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, List, NoReturn, Optional, Sequence

import grpc
import numpy as np

from kvtier import tensors, wire
from kvtier.errors import Error, FailedPrecondition, InvalidArgument, ReprefillRequired, \
    Unavailable, make_error
from kvtier.shard_streams import ShardExchange
from kvtier.v1 import attention_pb2

if TYPE_CHECKING:
    from kvtier.client import _Connection
    from kvtier.session import Session


def _on_deadline(step: "weakref.ref[Step]") -> Callable[[], None]:
    """The watchdog's callback: it holds the step weakly, so a step dropped unfinished is
    closed at once."""
    def passed() -> None:
        alive = step()
        if alive is not None:
            alive._deadline_passed()
    return passed


def _contiguous(x: np.ndarray) -> np.ndarray:
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


class _Shard:
    """What a step sends one shard: its head slices and its plan."""

    def __init__(self, endpoint: Any, group: int, plan: attention_pb2.StepPlan,
                 num_tokens: int, head_dim: int, dtype: int) -> None:
        heads = endpoint.heads
        self.kv = slice(heads.kv_head_begin, heads.kv_head_end)
        self.q = slice(heads.kv_head_begin * group, heads.kv_head_end * group)
        self.out_shape = (num_tokens, self.q.stop - self.q.start, head_dim)
        self.out_bytes = int(np.prod(self.out_shape)) * tensors.element_dtype(dtype).itemsize
        own = attention_pb2.StepPlan()
        own.CopyFrom(plan)
        own.slot = endpoint.slot
        shapes = own.shapes
        shapes.num_tokens = num_tokens
        shapes.num_kv_heads = self.kv.stop - self.kv.start
        shapes.num_q_heads = shapes.num_kv_heads * group
        shapes.head_dim = head_dim
        shapes.dtype = dtype
        self.plan = wire.plan_field(own)  # sent with the step's first layer


class Step:
    """One forward pass of a batch of sessions (see the module). Made by ``Session.step()`` or
    ``Client.step([...])``; use it as a context manager, which finishes it on success."""

    def __init__(self, connection: "_Connection", sessions: Sequence["Session"]) -> None:
        self._connection = connection
        self._sessions: List["Session"] = list(sessions)
        model = self._sessions[0].model
        self._model = model
        plan = attention_pb2.StepPlan()
        plan.model.CopyFrom(model.id)
        for session in self._sessions:
            sequence = plan.sequences.add()
            sequence.lease.CopyFrom(session._lease)
            sequence.context_len = session.context_len + session.pending_tokens
            sequence.num_new_tokens = session.pending_tokens
        self.num_tokens: int = sum(session.pending_tokens for session in self._sessions)
        group = model.num_q_heads // model.num_kv_heads
        self._q_shape = (self.num_tokens, model.num_q_heads, model.head_dim)
        self._kv_shape = (self.num_tokens, model.num_kv_heads, model.head_dim)
        self._element = tensors.element_dtype(model.dtype)
        endpoints = self._sessions[0]._info.shards
        for endpoint in endpoints:
            if not endpoint.address:
                self._sessions[0]._raise_explained(Unavailable(
                    f"model {model.id.name}: head range {endpoint.slot} has no shard"))
        self._shards = [_Shard(e, group, plan, self.num_tokens, model.head_dim, model.dtype)
                        for e in endpoints]
        self._exchanges = [ShardExchange(e.address, f"shard {e.slot} ({e.address})")
                           for e in endpoints]
        self._plan_sent = False
        self._finished = False
        self._failure: Optional[Error] = None
        self._streams = connection.take_streams()
        deadline = time.monotonic() + connection.step_deadline
        self._watch = connection.watchdog.arm(deadline, _on_deadline(weakref.ref(self)))

    def __enter__(self) -> "Step":
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.close()

    @property
    def sessions(self) -> List["Session"]:
        """The step's sessions, in row order."""
        return list(self._sessions)

    def attend(self, layer: int, q: Any, k: Any, v: Any, out: Any = None) -> Any:
        """Writes the new tokens' ``k`` and ``v`` of ``layer`` and returns their attention
        output over each session's whole context: ``q`` ``[T, num_q_heads, head_dim]``, ``k``
        and ``v`` ``[T, num_kv_heads, head_dim]``, numpy arrays or torch tensors in the model's
        dtype, C-contiguous. The output ``[T, num_q_heads, head_dim]`` is of ``q``'s type
        (written into ``out`` when given). InvalidArgument, before any RPC, names a bad
        argument."""
        if self._failure is not None:
            raise self._failure
        if self._finished:
            raise FailedPrecondition("attend: the step is finished")
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or \
                not 0 <= layer < self._model.num_layers:
            raise InvalidArgument(f"layer: expected 0..{self._model.num_layers - 1}, got "
                                  f"{layer!r}")
        dtype = self._model.dtype
        q_elements = tensors.elements("q", q, dtype, self._q_shape, "tokens, q heads, head_dim")
        k_elements = tensors.elements("k", k, dtype, self._kv_shape,
                                      "tokens, kv heads, head_dim")
        v_elements = tensors.elements("v", v, dtype, self._kv_shape,
                                      "tokens, kv heads, head_dim")
        result, out_elements, deliver = tensors.output_like(q, dtype, self._q_shape, out)
        layer = int(layer)
        for shard, exchange in zip(self._shards, self._exchanges):
            # The shard's heads, gathered into the message (one copy; none before it when
            # they are contiguous already, as in decode).
            exchange.request = wire.step_request(
                b"" if self._plan_sent else shard.plan, layer,
                _contiguous(q_elements[:, shard.q]), _contiguous(k_elements[:, shard.kv]),
                _contiguous(v_elements[:, shard.kv]))
        failures: List[Error] = []

        def assemble(index: int) -> None:
            failure = self._assemble(index, layer, out_elements)
            if failure is not None:
                failures.append(failure)

        self._streams.round_trip(self._exchanges, not self._plan_sent, assemble)
        self._plan_sent = True
        for index, exchange in enumerate(self._exchanges):
            if exchange.error is not None:
                self._fail(self._shard_failure(index))
        if failures:
            self._fail(failures[0])
        return deliver(result)

    def _assemble(self, index: int, layer: int, out: np.ndarray) -> Optional[Error]:
        """Shard ``index``'s answer into its heads of ``out``."""
        shard = self._shards[index]
        exchange = self._exchanges[index]
        answer = exchange.response
        try:
            answered, offset, size = wire.step_response(answer)
        except ValueError as error:
            return make_error(grpc.StatusCode.INTERNAL,
                              f"{exchange.context} answered a malformed message ({error})")
        if answered != layer or size != shard.out_bytes:
            return make_error(grpc.StatusCode.INTERNAL,
                              f"{exchange.context} answered layer {answered} with {size} bytes; "
                              f"expected layer {layer}, {shard.out_bytes} bytes")
        out[:, shard.q] = np.frombuffer(answer, self._element, size // self._element.itemsize,
                                        offset).reshape(shard.out_shape)
        return None

    def _shard_failure(self, index: int) -> Error:
        """Shard ``index``'s error, explained by the coordinator when the session is gone."""
        exchange = self._exchanges[index]
        failure = exchange.error
        assert failure is not None
        if isinstance(failure, ReprefillRequired):
            return failure
        if failure.code == grpc.StatusCode.UNAVAILABLE:
            self._connection.forget_shard(exchange.address)
        for session in self._sessions:
            explained = session._explain(failure)
            if isinstance(explained, ReprefillRequired):
                return explained
        return failure

    def _fail(self, failure: Error) -> NoReturn:
        self._failure = failure
        self._drop()
        raise failure

    def _drop(self) -> None:
        for session in self._sessions:
            session._drop_pending()
        self._release_streams()

    def _deadline_passed(self) -> None:
        streams = self._streams
        if streams is not None:
            streams.cancel()

    def _release_streams(self) -> None:
        if self._streams is not None:
            self._connection.watchdog.disarm(self._watch)
            self._connection.return_streams(self._streams)
            self._streams = None

    def finish(self) -> None:
        """Ends the step: every session's pending tokens count as written. Sends nothing.
        FailedPrecondition when no layer was attended; a failed step raises its failure."""
        if self._failure is not None:
            raise self._failure
        if self._finished:
            return
        if not self._plan_sent:
            self._fail(FailedPrecondition("finish: the step attended no layer"))
        self._finished = True
        self._release_streams()
        for session in self._sessions:
            session._step_written()

    def close(self) -> None:
        """Leaves the step: when it did not finish, the sessions' pending tokens are dropped
        (extend them again to retry). A step dropped unfinished is closed."""
        if not self._finished and self._failure is None:
            self._failure = FailedPrecondition("the step was closed before it finished")
            self._drop()

    def __del__(self) -> None:
        if getattr(self, "_streams", None) is not None:
            self.close()
