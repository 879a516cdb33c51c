"""Errors raised by the kvtier client: one exception class per gRPC status code a caller acts on,
and one per machine-readable reason (``kvtier.v1.ErrorReason``, proto/kvtier/v1/errors.proto).

Every error carries ``code`` (a :class:`grpc.StatusCode`), ``reason`` (a :class:`Reason`) and the
server's message. A server attaches the reason as a ``kvtier.v1.ErrorInfo`` packed in the
``google.rpc.Status`` of the ``grpc-status-details-bin`` trailer; :func:`from_rpc_error` reads it
back, so ``except kvtier.ReprefillRequired`` catches exactly what the C++ client's
``IsReprefillRequired`` is true for. Arguments the client refuses before any RPC raise
:class:`InvalidArgument` (also a :class:`ValueError`) naming the argument.
"""

from __future__ import annotations

import enum
from typing import Dict, Optional, Tuple, Type

import grpc

from kvtier import _status_pb2
from kvtier.v1 import errors_pb2

_DETAILS_KEY = "grpc-status-details-bin"
_ERROR_INFO_TYPE_URL = "type.googleapis.com/kvtier.v1.ErrorInfo"


class Reason(enum.IntEnum):
    """What the caller should do about a failure (``kvtier.v1.ErrorReason``)."""

    UNSPECIFIED = errors_pb2.ERROR_REASON_UNSPECIFIED
    REPREFILL_REQUIRED = errors_pb2.ERROR_REASON_REPREFILL_REQUIRED
    CONTEXT_CHANGED = errors_pb2.ERROR_REASON_CONTEXT_CHANGED
    WRITER_SUPERSEDED = errors_pb2.ERROR_REASON_WRITER_SUPERSEDED
    INVALIDATED = errors_pb2.ERROR_REASON_INVALIDATED


class Error(Exception):
    """A failed kvtier call: its gRPC ``code``, its ``reason`` and the server's ``message``."""

    default_code = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None,
                 reason: Reason = Reason.UNSPECIFIED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.reason = reason

    def __str__(self) -> str:
        reason = "" if self.reason == Reason.UNSPECIFIED else f", reason {self.reason.name}"
        return f"{self.code.name}{reason}: {self.message}"


class InvalidArgument(Error, ValueError):
    """A malformed request, refused by the client before any RPC or by a server; the message
    names the argument or field."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(Error):
    """An unknown (or closed, or another tenant's) session, or an unknown model."""

    default_code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(Error):
    """The caller must fix something first (e.g. a closed session, tokens never stepped)."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(Error):
    """A lost race with another writer of the session."""

    default_code = grpc.StatusCode.ABORTED


class Unavailable(Error):
    """A server could not be reached, or the model lacks serving shards (retry later)."""

    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(Error):
    """A call or a whole step outlived its deadline."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class ResourceExhausted(Error):
    """The model's blocks, a tenant's quota or a shard's stream limit ran out."""

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class PermissionDenied(Error):
    """The credential lacks the role or the tenant, or a lease was refused."""

    default_code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(Error):
    """No credential, or one the server does not know."""

    default_code = grpc.StatusCode.UNAUTHENTICATED


class ReprefillRequired(FailedPrecondition):
    """The session's K/V is gone (lost with a shard, or invalidated): open a new session and
    prefill the conversation again."""


class Invalidated(ReprefillRequired):
    """The session's K/V was invalidated, or its model version retired."""


class ContextChanged(Aborted):
    """Another writer advanced the session: re-read it and decide."""


class WriterSuperseded(Aborted):
    """Another client took the session over; this one's writes are refused from now on."""


_BY_REASON: Dict[Reason, Type[Error]] = {
    Reason.REPREFILL_REQUIRED: ReprefillRequired,
    Reason.INVALIDATED: Invalidated,
    Reason.CONTEXT_CHANGED: ContextChanged,
    Reason.WRITER_SUPERSEDED: WriterSuperseded,
}
_BY_CODE: Dict[grpc.StatusCode, Type[Error]] = {
    cls.default_code: cls
    for cls in (InvalidArgument, NotFound, FailedPrecondition, Aborted, Unavailable,
                DeadlineExceeded, ResourceExhausted, PermissionDenied, Unauthenticated)
}


def make_error(code: grpc.StatusCode, message: str,
               reason: Reason = Reason.UNSPECIFIED) -> Error:
    """The exception for ``code`` and ``reason``: the reason's class when it has one."""
    cls = _BY_REASON.get(reason) or _BY_CODE.get(code, Error)
    return cls(message, code, reason)


def _reason_of(trailing_metadata: Optional[Tuple[Tuple[str, bytes], ...]]) -> Reason:
    for key, value in trailing_metadata or ():
        if key != _DETAILS_KEY:
            continue
        status = _status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.type_url == _ERROR_INFO_TYPE_URL:
                info = errors_pb2.ErrorInfo.FromString(detail.value)
                try:
                    return Reason(info.reason)
                except ValueError:
                    return Reason.UNSPECIFIED
    return Reason.UNSPECIFIED


def error_from_status(code: grpc.StatusCode, details: str,
                      trailing_metadata: Optional[Tuple[Tuple[str, bytes], ...]],
                      context: str) -> Error:
    """The kvtier exception for a call that ended with ``code``, its message prefixed with
    ``context``, its reason read from ``trailing_metadata``."""
    return make_error(code, f"{context}: {details}", _reason_of(trailing_metadata))


def from_rpc_error(error: grpc.RpcError, context: str) -> Error:
    """The kvtier exception for a failed call, its message prefixed with ``context``."""
    if not isinstance(error, grpc.Call):
        return make_error(grpc.StatusCode.UNKNOWN, f"{context}: {error}")
    return error_from_status(error.code(), error.details(), error.trailing_metadata(), context)
