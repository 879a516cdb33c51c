"""ShardStreams: a set of long-lived ``AttentionService.Step`` streams (attention.proto), one per
shard address, lent to one step at a time by the client, as the C++ client's
client/shard_streams.h does: a front-end that runs one step at a time keeps one stream per shard
for good, and successive steps pay no stream setup.

A round trip starts every shard's write and read at once, then takes the answers, so shards
compute side by side. As in the C++ client, each stream's completions are polled by the calling
thread itself: no other Python thread touches a message (NOTE: grpcio's public streaming API
hands every message to a sending thread and every answer back from a polling thread, which
costs more than the round trip itself; the streams use the per-call completion queue of
grpcio's ``segregated_call``, the one its own blocking calls use). A stream that broke is
dropped, and the next round trip to its address opens a new one. A step's first message over a
stream carried over from an earlier step is sent once more over a fresh stream when the old one
proves broken before answering (UNAVAILABLE or CANCELLED: the connection was reset, or the
shard restarted, while the stream was idle); that is safe because its K/V writes and attention
repeat exactly. Past the step's deadline the watchdog cancels the streams still owing an
answer, which then fail with DEADLINE_EXCEEDED (and are dropped).

Not thread-safe: one step (one thread) at a time; only the watchdog calls ``cancel``.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import grpc
from grpc import _common
from grpc._cython import cygrpc

from kvtier.errors import DeadlineExceeded, Error, error_from_status

_METHOD = b"/kvtier.v1.AttentionService/Step"
_RESEND_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
# Completion tags: which batch of operations of a stream completed.
_STATUS, _INITIAL_METADATA, _EXCHANGE = "status", "initial_metadata", "exchange"


@dataclass
class ShardExchange:
    """One shard's part of a round trip: its address and serialized StepRequest, then its
    serialized StepResponse or the error (wire.py encodes and decodes them)."""

    address: str
    context: str  # names the shard in errors: "shard 0 (127.0.0.1:1234)"
    request: bytes = b""
    response: Optional[bytes] = None
    error: Optional[Error] = None


class _Stream:
    """One Step stream on its own completion queue, which the caller polls."""

    def __init__(self, channel: grpc.Channel, metadata: Tuple[Tuple[str, str], ...]) -> None:
        self._call = channel._channel.segregated_call(
            cygrpc.PropagationConstants.GRPC_PROPAGATE_DEFAULTS, _METHOD, None, None, metadata,
            None, (((cygrpc.SendInitialMetadataOperation(metadata, 0),
                     cygrpc.ReceiveStatusOnClientOperation(0)), _STATUS),
                   ((cygrpc.ReceiveInitialMetadataOperation(0),), _INITIAL_METADATA)),
            cygrpc.build_census_context())
        self._outstanding = 2  # batches started and not completed
        self._owed = False     # this round trip's batch (the write and the read) is
        self._answer: Optional[bytes] = None
        self.broken = False    # an operation failed, or the shard ended the call
        self.cancelled = False  # by the deadline
        self._closed = False
        self.status: Optional[Tuple[grpc.StatusCode, str, tuple]] = None

    def send(self, request: bytes) -> None:
        """Starts the write of ``request`` and the read of its answer, as one batch."""
        self._answer = None
        self._call.operate((cygrpc.SendMessageOperation(request, 0),
                            cygrpc.ReceiveMessageOperation(0)), _EXCHANGE)
        self._outstanding += 1
        self._owed = True

    @property
    def owed(self) -> bool:
        """Whether a round trip waits for this stream's answer."""
        return self._owed

    def answer(self) -> Optional[bytes]:
        """Waits for the answer; None when the stream broke (``status`` says why)."""
        while self._owed:
            self._take_event()
        if self._answer is None:
            self.broken = True
            while self.status is None:
                self._take_event()
        return self._answer

    def _take_event(self) -> None:
        event = self._call.next_event()
        self._outstanding -= 1
        if event.tag is _EXCHANGE:
            self._owed = False
        if not event.success:
            self.broken = True
        for operation in event.batch_operations:
            kind = operation.type()
            if kind == cygrpc.OperationType.receive_message:
                self._answer = operation.message()
            elif kind == cygrpc.OperationType.receive_status_on_client:
                code = _common.CYGRPC_STATUS_CODE_TO_STATUS_CODE.get(operation.code(),
                                                                     grpc.StatusCode.UNKNOWN)
                details = operation.details()
                if isinstance(details, bytes):
                    details = details.decode("utf-8", "replace")
                self.status = (code, details, operation.trailing_metadata())

    def cancel(self) -> None:
        self._call.cancel(cygrpc.StatusCode.cancelled, "the step's deadline passed")

    def close(self) -> None:
        """Cancels the call and waits for its operations, so it is released. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._call.cancel(cygrpc.StatusCode.cancelled, "stream closed")
        while self._outstanding > 0:
            self._take_event()


class ShardStreams:
    """The streams of one step at a time, by shard address."""

    def __init__(self, channel_for: Callable[[str], grpc.Channel],
                 metadata: Sequence[Tuple[str, str]]) -> None:
        self._channel_for = channel_for  # address -> its channel
        self._metadata = tuple(metadata)
        self._streams: Dict[str, _Stream] = {}
        self._cancelled: List[_Stream] = []  # by the watchdog, to be closed by the step's thread
        self._lock = threading.Lock()  # guards both against the watchdog's cancel

    def _open(self, address: str) -> _Stream:
        stream = _Stream(self._channel_for(address), self._metadata)
        with self._lock:
            self._streams[address] = stream
        return stream

    def _drop(self, address: str, stream: _Stream) -> None:
        with self._lock:
            if self._streams.get(address) is stream:
                del self._streams[address]
        stream.close()

    def round_trip(self, exchanges: Sequence[ShardExchange], step_begins: bool,
                   on_answer: Callable[[int], None]) -> None:
        """Sends every exchange's request at once, then takes each answer (calling
        ``on_answer(i)``) or records why there is none in ``exchange.error``.
        ``step_begins``: the requests begin a step (see the module on resending)."""
        self._close_cancelled()
        sent: List[Tuple[_Stream, bool, bytes]] = []
        for exchange in exchanges:
            exchange.response = None
            exchange.error = None
            payload = exchange.request
            with self._lock:
                stream = self._streams.get(exchange.address)
            carried = stream is not None
            if stream is None:
                stream = self._open(exchange.address)
            stream.send(payload)
            sent.append((stream, step_begins and carried, payload))
        for index, exchange in enumerate(exchanges):
            stream, resend, payload = sent[index]
            while True:
                answer = stream.answer()
                if answer is not None:
                    exchange.response = answer
                    on_answer(index)
                    break
                self._drop(exchange.address, stream)
                code, details, trailing = stream.status
                if stream.cancelled:
                    exchange.error = DeadlineExceeded(
                        f"{exchange.context}: the step's deadline passed before the shard "
                        "answered")
                elif resend and code in _RESEND_CODES:
                    resend = False
                    stream = self._open(exchange.address)
                    stream.send(payload)
                    continue
                else:
                    exchange.error = error_from_status(code, details, trailing,
                                                       exchange.context)
                break

    def cancel(self) -> None:
        """Cancels the streams that owe an answer (the step's deadline passed): the answers
        fail, and the streams are dropped. Called by the watchdog's thread."""
        with self._lock:
            for address, stream in list(self._streams.items()):
                if stream.owed:
                    stream.cancelled = True
                    stream.cancel()
                    del self._streams[address]
                    self._cancelled.append(stream)

    def _close_cancelled(self) -> None:
        with self._lock:
            cancelled, self._cancelled = self._cancelled, []
        for stream in cancelled:
            stream.close()

    def close(self) -> None:
        """Ends every stream."""
        self._close_cancelled()
        with self._lock:
            streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.close()


class Watchdog:
    """Calls each armed callback once its deadline (time.monotonic()) passes, on one daemon
    thread started on first use. Arming a later deadline than the one waited for wakes
    nothing, so steps arm and disarm at the cost of a lock."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: Dict[int, Tuple[float, Callable[[], None]]] = {}
        self._heap: List[Tuple[float, int]] = []
        self._ids = itertools.count()
        self._waiting_until = float("inf")
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    def arm(self, deadline: float, callback: Callable[[], None]) -> int:
        with self._cond:
            token = next(self._ids)
            self._armed[token] = (deadline, callback)
            if len(self._heap) > 2 * len(self._armed) + 64:  # mostly disarmed: compact
                self._heap = [(d, t) for t, (d, _) in self._armed.items()]
                heapq.heapify(self._heap)
            else:
                heapq.heappush(self._heap, (deadline, token))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kvtier-watchdog",
                                                daemon=True)
                self._thread.start()
            elif deadline < self._waiting_until:
                self._cond.notify()
            return token

    def disarm(self, token: int) -> None:
        with self._cond:
            self._armed.pop(token, None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            due: List[Callable[[], None]] = []
            with self._cond:
                if self._closed:
                    return
                now = time.monotonic()
                while self._heap and (self._heap[0][0] <= now or
                                      self._heap[0][1] not in self._armed):
                    _, token = heapq.heappop(self._heap)
                    armed = self._armed.pop(token, None)
                    if armed is not None:
                        due.append(armed[1])
                if not due:
                    self._waiting_until = self._heap[0][0] if self._heap else float("inf")
                    timeout = None if not self._heap else self._waiting_until - now
                    self._cond.wait(timeout)
            for callback in due:
                callback()
