"""Client: what a front-end uses to reach a kvtier tier, as the C++ client's client/client.h. It
holds a channel to the coordinator and one per shard, opens, resumes and forks sessions, and
starts steps (one forward pass of a batch of sessions; :mod:`kvtier.step`).

Front-ends stay stateless: a Session caches only what the coordinator can give back, so any
replica may resume a session by id. Every call carries a deadline. Errors are
:class:`kvtier.Error` subclasses carrying the gRPC code and the reason
(proto/kvtier/v1/errors.proto): :class:`kvtier.ReprefillRequired` is the one a front-end must
act on: the session's K/V is gone, so open a new session and prefill the conversation again.

Thread-safe: a Client may be shared between threads; a Session or Step is used by one thread
at a time.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Sequence

import grpc

from kvtier.credentials import Credentials
from kvtier.errors import Error, InvalidArgument, from_rpc_error
from kvtier.session import Session
from kvtier.shard_streams import ShardStreams, Watchdog
from kvtier.step import Step
from kvtier.v1 import admin_pb2, admin_pb2_grpc, common_pb2, session_pb2, session_pb2_grpc

# The coordinator's rpcs the client calls, by name: which stub has them.
_ADMIN_RPCS = ("RegisterModel", "GetStats")


def _positive(field: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidArgument(f"{field}: expected seconds > 0, got {value!r}")
    return float(value)


class _Connection:
    """The client's plumbing, shared by Session and Step: the coordinator's stubs, one channel
    per shard, the idle stream sets lent to steps, and the steps' deadline watchdog. ``_lock``
    guards the shard channels and the idle sets."""

    def __init__(self, coordinator: str, credentials: Credentials, deadline: float,
                 step_deadline: float, max_message_bytes: int) -> None:
        self.control_deadline = deadline
        self.step_deadline = step_deadline
        self.metadata = tuple(credentials.metadata())
        self._credentials = credentials
        self._options = (("grpc.max_send_message_length", max_message_bytes),
                         ("grpc.max_receive_message_length", max_message_bytes))
        self._channel = credentials.channel(coordinator, self._options)
        self._session_stub = session_pb2_grpc.SessionServiceStub(self._channel)
        self._admin_stub = admin_pb2_grpc.AdminServiceStub(self._channel)
        self._lock = threading.Lock()
        self._shards: Dict[str, grpc.Channel] = {}
        self._idle_streams: List[ShardStreams] = []
        self.watchdog = Watchdog()

    def call(self, name: str, request: Any) -> Any:
        """Calls the coordinator's rpc ``name`` under the control deadline; a failure raises the
        kvtier error for its code and reason, its message prefixed with ``name``."""
        stub = self._admin_stub if name in _ADMIN_RPCS else self._session_stub
        try:
            return getattr(stub, name)(request, timeout=self.control_deadline,
                                       metadata=self.metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error, name) from None

    def _shard_channel(self, address: str) -> grpc.Channel:
        with self._lock:
            channel = self._shards.get(address)
            if channel is None:
                channel = self._credentials.channel(address, self._options)
                self._shards[address] = channel
        return channel

    def forget_shard(self, address: str) -> None:
        """Drops the shard's channel after it failed, so the next step dials afresh."""
        with self._lock:
            channel = self._shards.pop(address, None)
        if channel is not None:
            channel.close()

    def take_streams(self) -> ShardStreams:
        with self._lock:
            if self._idle_streams:
                return self._idle_streams.pop()
        return ShardStreams(self._shard_channel, self.metadata)

    def return_streams(self, streams: ShardStreams) -> None:
        with self._lock:
            self._idle_streams.append(streams)

    def close(self) -> None:
        self.watchdog.close()
        with self._lock:
            streams, self._idle_streams = self._idle_streams, []
            channels, self._shards = list(self._shards.values()), {}
        for stream_set in streams:
            stream_set.close()
        for channel in channels:
            channel.close()
        self._channel.close()


class Client:
    """A connection to a tier's coordinator (and, through it, its shards).

    ``coordinator`` is host:port. ``credentials`` secures every channel (TLS, a bearer token;
    default: plaintext, no token). ``deadline`` bounds each coordinator call and
    ``step_deadline`` each whole step, in seconds. Connects lazily: a coordinator that is down
    shows as :class:`kvtier.Unavailable` on the first call. Usable as a context manager that
    closes it; sessions and steps must not outlive their client.
    """

    def __init__(self, coordinator: str, credentials: Optional[Credentials] = None,
                 deadline: float = 10.0, step_deadline: float = 60.0,
                 max_message_bytes: int = 256 << 20) -> None:
        if not isinstance(coordinator, str) or not coordinator:
            raise InvalidArgument(f"coordinator: expected host:port, got {coordinator!r}")
        if credentials is not None and not isinstance(credentials, Credentials):
            raise InvalidArgument(f"credentials: expected kvtier.Credentials, got "
                                  f"{type(credentials).__name__}")
        self._connection = _Connection(coordinator, credentials or Credentials(),
                                       _positive("deadline", deadline),
                                       _positive("step_deadline", step_deadline),
                                       max_message_bytes)
        self.coordinator = coordinator

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channels and streams."""
        self._connection.close()

    def open_session(self, model: str, tenant: str, version: str = "") -> Session:
        """A new session of ``model`` (name, and ``version``) for ``tenant``, with an empty
        context; this client is its writer."""
        request = session_pb2.OpenSessionRequest(
            model=common_pb2.ModelId(name=model, version=version), tenant=tenant)
        return self._session_from(self._connection.call("OpenSession", request), tenant)

    def resume_session(self, session_id: str, tenant: str) -> Session:
        """Continues a session opened by any client, from what the tier holds, taking it over:
        the client that wrote it before can no longer."""
        request = session_pb2.TakeOverSessionRequest(session_id=session_id, tenant=tenant)
        return self._session_from(self._connection.call("TakeOverSession", request), tenant)

    def fork_session(self, session_id: str, tenant: str) -> Session:
        """A new session, written by this client, continuing from the committed history of any
        session of ``tenant`` (see ``Session.fork``)."""
        request = session_pb2.ForkSessionRequest(session_id=session_id, tenant=tenant)
        return self._session_from(self._connection.call("ForkSession", request), tenant)

    def _session_from(self, response: Any, tenant: str) -> Session:
        return Session(self, tenant, response.session, response.grant)

    def step(self, sessions: Sequence[Session]) -> Step:
        """A step over ``sessions`` (all of one model, each with tokens added by ``extend``):
        their new tokens, session by session, are the rows of every layer's tensors. If it
        cannot begin, the sessions' pending tokens are dropped."""
        sessions = list(sessions)
        if not sessions:
            raise InvalidArgument("sessions: expected at least one")
        try:
            first = sessions[0].model.id
            for i, session in enumerate(sessions):
                if not isinstance(session, Session) or session._client is not self:
                    raise InvalidArgument(f"sessions[{i}]: expected a Session of this client")
                if session.model.id != first:
                    raise InvalidArgument(f"sessions[{i}]: model {session.model.id.name}, the "
                                          f"step's is {first.name}")
                if any(session is other for other in sessions[:i]):
                    raise InvalidArgument(f"sessions[{i}]: the same session twice")
                try:
                    session._prepare_step()
                except Error as error:
                    raise type(error)(f"sessions[{i}]: {error.message}", error.code,
                                      error.reason) from None
            return Step(self._connection, sessions)
        except Error:
            for session in sessions:
                if isinstance(session, Session):
                    session._drop_pending()
            raise

    def stats(self) -> admin_pb2.GetStatsResponse:
        """The tier's models and shards (AdminService.GetStats; an operator call)."""
        return self._connection.call("GetStats", admin_pb2.GetStatsRequest())

    def register_model(self, model: common_pb2.ModelSpec) -> common_pb2.ModelSpec:
        """Registers a model (AdminService.RegisterModel; an operator call)."""
        return self._connection.call("RegisterModel",
                                     admin_pb2.RegisterModelRequest(model=model)).model

    def invalidate_session(self, session_id: str, tenant: str) -> Any:
        """Invalidates one of ``tenant``'s sessions; returns once every shard refuses what was
        dropped (an InvalidationResult)."""
        request = session_pb2.InvalidateSessionRequest(session_id=session_id, tenant=tenant)
        return self._connection.call("InvalidateSession", request).result

    def invalidate_prefix(self, model: str, tenant: str, tokens: Sequence[int],
                          version: str = "") -> Any:
        """Invalidates every cached block and session over a token prefix in ``tenant``'s
        namespace of ``model`` (an InvalidationResult)."""
        request = session_pb2.InvalidatePrefixRequest(
            model=common_pb2.ModelId(name=model, version=version), tenant=tenant,
            tokens=list(tokens))
        return self._connection.call("InvalidatePrefix", request).result
