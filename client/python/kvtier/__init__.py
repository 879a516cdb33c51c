"""kvtier: the Python client of a kvtier KV-cache tier.

A front-end keeps its weights and computes projections and MLPs; the attention keys and values
of every conversation live in the tier, sharded by head across shard workers that compute
attention next to them. This package speaks the tier's gRPC protocol (proto/kvtier/v1) with the
same semantics as the C++ client (client/):

    import kvtier, numpy as np

    with kvtier.Client("127.0.0.1:50051") as client:
        session = client.open_session("toy", tenant="acme")
        found = session.extend(prompt_ids)        # found.cached, found.computed
        with session.step() as step:              # or client.step([s1, s2, ...])
            for layer in range(session.model.num_layers):
                out = step.attend(layer, q, k, v)  # q [T, Hq, D]; k, v [T, Hkv, D]
        session.end_turn(retain_for=600)          # keep the K/V for the next turn
        session.close()

Tensors are numpy arrays (float32, float16) or torch tensors (float32, float16, bfloat16) in
the model's dtype, ``[tokens, heads, head_dim]``, C-contiguous; the output is of q's type.
A step's rows are its sessions' pending tokens (the ``computed`` ones of each ``extend``),
session by session.

Other clients of the tenant continue a session by id (``client.resume_session(id, tenant)``,
which takes it over) or branch it (``session.fork()``). Errors are :class:`kvtier.Error`
subclasses carrying ``code`` (grpc.StatusCode) and ``reason`` (:class:`kvtier.Reason`); catch
:class:`kvtier.ReprefillRequired` to re-prefill a conversation whose K/V the tier lost.
Arguments are checked before any RPC (:class:`kvtier.InvalidArgument`, a ValueError, naming
the argument). :class:`kvtier.Credentials` gives TLS, mTLS and a bearer token.
"""

from kvtier.client import Client
from kvtier.credentials import Credentials
from kvtier.errors import (Aborted, ContextChanged, DeadlineExceeded, Error, FailedPrecondition,
                           InvalidArgument, Invalidated, NotFound, PermissionDenied, Reason,
                           ReprefillRequired, ResourceExhausted, Unauthenticated, Unavailable,
                           WriterSuperseded)
from kvtier.session import Extended, Session
from kvtier.step import Step

__all__ = [
    "Aborted", "Client", "ContextChanged", "Credentials", "DeadlineExceeded", "Error",
    "Extended", "FailedPrecondition", "InvalidArgument", "Invalidated", "NotFound",
    "PermissionDenied", "Reason", "ReprefillRequired", "ResourceExhausted", "Session", "Step",
    "Unauthenticated", "Unavailable", "WriterSuperseded",
]
