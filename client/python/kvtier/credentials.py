"""Credentials: how a client secures its channels to the coordinator and every shard (README:
Security), as the C++ client's ``ChannelSecurity`` does: TLS from PEM text (with a client
certificate for mTLS) and a bearer token sent as ``authorization: Bearer <token>`` on every
call. Without TLS a token crosses the network in the clear: use that on loopback only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import grpc

from kvtier.errors import InvalidArgument


def _read_pem(field: str, path: Optional[str]) -> Optional[bytes]:
    if not path:
        return None
    try:
        with open(path, "rb") as file:
            text = file.read()
    except OSError as error:
        raise InvalidArgument(f"{field}: cannot read {path}: {error.strerror}") from None
    if b"-----BEGIN " not in text:
        raise InvalidArgument(f"{field}: {path} holds no PEM block")
    return text


@dataclass(frozen=True)
class Credentials:
    """TLS material (PEM bytes) and a bearer token; all optional. TLS is on when any of the PEM
    fields is set (no ``root_certificates``: the system's roots verify the servers)."""

    root_certificates: Optional[bytes] = None
    private_key: Optional[bytes] = None
    certificate_chain: Optional[bytes] = None
    token: Optional[str] = None

    def __post_init__(self) -> None:
        if (self.private_key is None) != (self.certificate_chain is None):
            raise InvalidArgument("private_key, certificate_chain: a certificate and its key go "
                                  "together")
        if self.token is not None and (not self.token or "\n" in self.token):
            raise InvalidArgument("token: expected a non-empty single-line token")

    @classmethod
    def from_files(cls, ca_file: Optional[str] = None, cert_file: Optional[str] = None,
                   key_file: Optional[str] = None, token_file: Optional[str] = None,
                   token: Optional[str] = None) -> "Credentials":
        """Reads PEM files (``tls_ca_file``, ``tls_cert_file``, ``tls_key_file`` of the C++
        tools) and a token file; without ``token_file`` or ``token``, the ``KVTIER_TOKEN``
        environment variable, if set."""
        if token_file:
            try:
                with open(token_file, encoding="utf-8") as file:
                    token = file.read().strip()
            except OSError as error:
                raise InvalidArgument(f"token_file: cannot read {token_file}: "
                                      f"{error.strerror}") from None
        elif token is None:
            token = os.environ.get("KVTIER_TOKEN") or None
        return cls(root_certificates=_read_pem("ca_file", ca_file),
                   private_key=_read_pem("key_file", key_file),
                   certificate_chain=_read_pem("cert_file", cert_file), token=token)

    @property
    def tls(self) -> bool:
        return any(x is not None for x in (self.root_certificates, self.private_key,
                                           self.certificate_chain))

    def metadata(self) -> Sequence[Tuple[str, str]]:
        """The metadata every call carries."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def channel(self, target: str, options: Sequence[Tuple[str, object]]) -> grpc.Channel:
        """A channel to ``target`` secured by these credentials."""
        if not self.tls:
            return grpc.insecure_channel(target, options=options)
        ssl = grpc.ssl_channel_credentials(self.root_certificates, self.private_key,
                                           self.certificate_chain)
        return grpc.secure_channel(target, ssl, options=options)
