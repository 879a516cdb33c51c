"""Session: one conversation's handle in a front-end, as the C++ client's client/session.h.
``extend`` adds the next step's tokens; a :class:`~kvtier.step.Step` writes their K/V and
computes attention layer by layer; ``end_turn`` keeps the K/V for the next turn; ``close``
releases it.

The coordinator is called only when it must be: to look a prompt up among the cached prefixes
and reserve blocks for the rest (when a turn's tokens start at a block boundary), to reserve
blocks when the next step's tokens outgrow the leased ones (once per block_size tokens in
decode), to refresh a lease about to expire, and at the end of a turn. Tokens are committed to
the coordinator only after a step wrote their K/V on every shard.

One client writes a session at a time: the one that opened it, until another resumes it
(``Client.resume_session`` takes it over); the earlier one's calls then fail with
:class:`~kvtier.WriterSuperseded` or :class:`~kvtier.PermissionDenied`.

Not thread-safe: one thread at a time.
"""

from __future__ import annotations

import datetime
import operator
import time
from typing import TYPE_CHECKING, Iterable, List, NamedTuple, NoReturn, Union

from google.protobuf import duration_pb2

from kvtier.errors import ContextChanged, Error, FailedPrecondition, InvalidArgument, \
    ReprefillRequired
from kvtier.v1 import common_pb2, session_pb2

if TYPE_CHECKING:
    from kvtier.client import Client
    from kvtier.step import Step

_MAX_TOKEN = 2**31 - 1


class Extended(NamedTuple):
    """What ``Session.extend`` found: of the tokens given, how many were ``cached`` (already in
    the tier) and how many the caller must ``compute`` q/k/v for in the next step (the last
    ``computed`` ones)."""

    cached: int
    computed: int


def _token_ids(tokens: Iterable[int]) -> List[int]:
    ids = []
    for i, token in enumerate(tokens):
        try:
            value = operator.index(token)
        except TypeError:
            raise InvalidArgument(f"tokens[{i}]: expected an integer token id, got "
                                  f"{type(token).__name__}") from None
        if not 0 <= value <= _MAX_TOKEN:
            raise InvalidArgument(f"tokens[{i}]: expected a token id in 0..{_MAX_TOKEN}, got "
                                  f"{value}")
        ids.append(value)
    if not ids:
        raise InvalidArgument("tokens: expected at least one")
    return ids


def _duration(field: str, value: Union[float, datetime.timedelta]) -> duration_pb2.Duration:
    seconds = value.total_seconds() if isinstance(value, datetime.timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
        raise InvalidArgument(f"{field}: expected seconds >= 0 or a timedelta, got {value!r}")
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(int(seconds * 1e9))
    return duration


class Session:
    """A conversation in the tier (see the module). Made by ``Client.open_session``,
    ``Client.resume_session``, ``Client.fork_session`` and ``Session.fork``; usable as a
    context manager that closes it."""

    def __init__(self, client: "Client", tenant: str, info: session_pb2.SessionInfo,
                 grant: session_pb2.WriterGrant) -> None:
        self._client = client
        self._tenant = tenant
        self._info = info
        self._writer = grant.writer
        self._lease = grant.lease
        self._committed_len = info.context_len  # the coordinator's context_len
        self._written_len = info.context_len    # committed + written
        self._written: List[int] = []           # written by steps, not yet committed
        self._pending: List[int] = []           # added by extend, not yet written
        self._turn_cached = 0
        self._turn_computed = 0
        self._closed = False

    def __repr__(self) -> str:
        return (f"<kvtier.Session {self.id} tenant={self._tenant!r} model="
                f"{self.model.id.name!r} context_len={self.context_len}"
                f"{' closed' if self._closed else ''}>")

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def id(self) -> str:
        """The session's id: any client of the tenant may resume it by id."""
        return self._info.session_id

    @property
    def tenant(self) -> str:
        return self._tenant

    @property
    def model(self) -> common_pb2.ModelSpec:
        """The model's geometry (layers, heads, head_dim, dtype, block_size)."""
        return self._info.model

    @property
    def context_len(self) -> int:
        """Tokens whose K/V the tier holds (written by finished steps)."""
        return self._written_len

    @property
    def pending_tokens(self) -> int:
        """Tokens added by ``extend`` that the next step will write."""
        return len(self._pending)

    @property
    def turn_cached_tokens(self) -> int:
        """This turn's tokens that were found cached."""
        return self._turn_cached

    @property
    def turn_computed_tokens(self) -> int:
        """This turn's tokens that steps computed."""
        return self._turn_computed

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self, call: str) -> None:
        if self._closed:
            raise FailedPrecondition(f"{call}: session {self.id} is closed")

    def _leased_tokens(self) -> int:
        return len(self._lease.blocks) * self.model.block_size

    def _commit_fields(self) -> dict:
        return dict(session_id=self.id, tenant=self._tenant, writer=self._writer,
                    expected_context_len=self._committed_len, tokens=self._written)

    def extend(self, tokens: Iterable[int]) -> Extended:
        """Adds token ids (>= 0) for the next step. When they start at a block boundary with
        nothing else pending, the coordinator first looks them up among the cached prefixes:
        the cached ones (a prefix, in whole blocks, never the last token) join the context at
        once and are not stepped. Returns how many were cached and how many the caller computes
        (the last ones: ``pending_tokens`` in all). If the step cannot begin or fails, they are
        dropped: extend them again to retry."""
        self._check_open("extend")
        ids = _token_ids(tokens)
        block_size = self.model.block_size
        lookup = (not self._pending and not self._written and
                  self._written_len % block_size == 0 and len(ids) > block_size)
        wanted = self._written_len + len(self._pending) + len(ids)
        cached = 0
        if lookup or wanted > self._leased_tokens():
            request = session_pb2.ExtendRequest(**self._commit_fields())
            if lookup:
                request.next_tokens.extend(ids)
            else:
                request.reserve_tokens = wanted - self._written_len
            response = self._client._connection.call("Extend", request)
            cached = response.cached_tokens
            self._committed_len = response.context_len
            self._written_len = self._committed_len
            self._written = []
            self._lease = response.lease
        self._pending.extend(ids[cached:])
        self._turn_cached += cached
        return Extended(cached, len(ids) - cached)

    def step(self) -> "Step":
        """A step over this session alone (``Client.step`` batches several)."""
        return self._client.step([self])

    def _prepare_step(self) -> None:
        """What a step needs: pending tokens, and a lease that outlives the step."""
        self._check_open("step")
        if not self._pending:
            raise FailedPrecondition("no tokens added by extend since the last step")
        expires = self._lease.expires_at.seconds + self._lease.expires_at.nanos * 1e-9
        if expires > time.time() + self._client._connection.step_deadline:
            return
        request = session_pb2.RenewLeaseRequest(session_id=self.id, tenant=self._tenant,
                                                writer=self._writer)
        response = self._client._connection.call("RenewLease", request)
        if response.context_len != self._committed_len:
            raise ContextChanged(f"session {self.id} holds {response.context_len} tokens, this "
                                 f"client committed {self._committed_len} (another client "
                                 "advanced it?)")
        self._lease = response.lease

    def _step_written(self) -> None:
        self._written.extend(self._pending)
        self._written_len += len(self._pending)
        self._turn_computed += len(self._pending)
        self._pending = []

    def _drop_pending(self) -> None:
        self._pending = []

    def _explain(self, failure: Error) -> Error:
        """After a data-plane failure: the coordinator's re-prefill error if the session was
        lost with a shard, else ``failure``."""
        request = session_pb2.GetSessionRequest(session_id=self.id, tenant=self._tenant)
        try:
            self._client._connection.call("GetSession", request)
        except ReprefillRequired as explained:
            return explained
        except Error:
            pass
        return failure

    def _raise_explained(self, failure: Error) -> NoReturn:
        raise self._explain(failure)

    def end_turn(self, retain_for: Union[float, datetime.timedelta] = 0) -> None:
        """Commits what steps wrote and keeps the K/V for ``retain_for`` (seconds or a
        timedelta; 0: the tier's default), for the next turn from any client.
        FailedPrecondition while tokens added by ``extend`` are not stepped yet."""
        self._check_open("end_turn")
        if self._pending:
            raise FailedPrecondition(f"end_turn: {len(self._pending)} tokens added by extend "
                                     "were never stepped")
        request = session_pb2.EndTurnRequest(**self._commit_fields(),
                                             retain_for=_duration("retain_for", retain_for))
        response = self._client._connection.call("EndTurn", request)
        self._committed_len = response.context_len
        self._written = []
        self._turn_cached = 0
        self._turn_computed = 0

    def _commit_written(self) -> None:
        request = session_pb2.ExtendRequest(**self._commit_fields())
        response = self._client._connection.call("Extend", request)
        self._committed_len = response.context_len
        self._written = []
        self._lease = response.lease

    def fork(self) -> "Session":
        """A new session, written by this client, that continues from this one's history: it
        shares the full blocks and gets its own copy of the partial last one, so both continue
        independently. Commits what steps wrote first. FailedPrecondition while tokens added
        by ``extend`` are not stepped yet."""
        self._check_open("fork")
        if self._pending:
            raise FailedPrecondition(f"fork: {len(self._pending)} tokens added by extend were "
                                     "never stepped")
        if self._written:
            self._commit_written()
        return self._client.fork_session(self.id, self._tenant)

    def close(self) -> None:
        """Commits what steps wrote, when it still can (so its full blocks stay matchable by
        other sessions until evicted), and releases the session. Closing twice does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._written:
            try:
                self._commit_written()
            except Error:
                pass  # NOTE: only sharing gains from the commit; a lost session closes anyway
            self._written = []
        request = session_pb2.CloseSessionRequest(session_id=self.id, tenant=self._tenant)
        self._client._connection.call("CloseSession", request)
