"""Credentials and TLS from Python, as from C++ (README: Security): a throwaway PKI made with
openssl (a CA, a server certificate for 127.0.0.1, a client certificate "frontend-acme", and a
client certificate from a CA the tier does not trust); kvtier-local with a credentials file,
TLS and mTLS. A front-end's token over TLS (and in the clear on loopback) reaches the
coordinator and every shard; no token, an unknown token or another tenant is refused with the
server's code; a plaintext client, a client trusting another CA, and mTLS without a trusted
client certificate cannot connect; the client certificate alone is a credential."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile

import pytest

import kvtier
from reference import Conversation, checked_step
from tier_processes import LocalTier

TOKEN = "py-frontend-token-7f3a"
ADMIN_TOKEN = "py-admin-token-91c2"


def openssl(*args: str) -> None:
    result = subprocess.run(["/usr/bin/openssl", *args], capture_output=True, text=True)
    assert result.returncode == 0, f"openssl {args[0]}: {result.stderr}"


def make_pki(dir_: str) -> None:
    """dir_/{ca,stranger-ca,server,client,stranger}.{pem,key}, as tests/test_pki.cc makes."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "stranger-ca"):
        openssl("req", "-x509", *ec, "-days", "2", "-subj", f"/CN={ca}", "-keyout",
                f"{dir_}/{ca}.key", "-out", f"{dir_}/{ca}.pem")
    server_ext = ("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                  "extendedKeyUsage=serverAuth,clientAuth\n")
    client_ext = "extendedKeyUsage=clientAuth\n"
    for name, ca, common_name, ext in (("server", "ca", "kvtier-server", server_ext),
                                       ("client", "ca", "frontend-acme", client_ext),
                                       ("stranger", "stranger-ca", "frontend-acme", client_ext)):
        base = f"{dir_}/{name}"
        openssl("req", *ec, "-subj", f"/CN={common_name}", "-keyout", f"{base}.key", "-out",
                f"{base}.csr")
        with open(f"{base}.ext", "w", encoding="utf-8") as file:
            file.write(ext)
        openssl("x509", "-req", "-in", f"{base}.csr", "-CA", f"{dir_}/{ca}.pem", "-CAkey",
                f"{dir_}/{ca}.key", "-CAcreateserial", "-days", "2", "-extfile", f"{base}.ext",
                "-out", f"{base}.pem")


@pytest.fixture(scope="module")
def pki():
    dir_ = tempfile.mkdtemp(prefix="kvtier-py-pki-")
    make_pki(dir_)
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    with open(f"{dir_}/credentials", "w", encoding="utf-8") as file:
        file.write(f"sha256:{digest} frontend acme\n"
                   f"token:{ADMIN_TOKEN} frontend,admin *\n"
                   "cert:frontend-acme frontend acme\n")
    with open(f"{dir_}/token", "w", encoding="utf-8") as file:
        file.write(TOKEN + "\n")
    return dir_


def secured_tier(pki: str, tls: bool, mtls: bool = False) -> LocalTier:
    args = [f"--credentials_file={pki}/credentials"]
    if tls:
        args += [f"--tls_cert_file={pki}/server.pem", f"--tls_key_file={pki}/server.key",
                 f"--tls_ca_file={pki}/ca.pem"]
    if mtls:
        args.append("--tls_require_client_cert")
    return LocalTier(2, "fp32", args)


@pytest.fixture(scope="module")
def tls_tier(pki):
    tier = secured_tier(pki, tls=True)
    yield tier
    assert tier.stop() == 0, tier.log()


def converse(credentials: kvtier.Credentials, address: str, rng, tenant: str = "acme") -> None:
    """A session with a prefill and a decode step, checked, through every shard."""
    with kvtier.Client(address, credentials=credentials) as client:
        session = client.open_session("toy", tenant)
        conversation = Conversation(session, "fp32", "numpy")
        session.extend([int(t) for t in rng.integers(0, 50000, 6)])  # nothing cached
        checked_step(client, [conversation], rng)
        session.extend([7])
        checked_step(client, [conversation], rng)
        session.end_turn()
        session.close()


def test_a_token_over_tls_reaches_the_coordinator_and_every_shard(pki, tls_tier, rng) -> None:
    converse(kvtier.Credentials.from_files(ca_file=f"{pki}/ca.pem",
                                           token_file=f"{pki}/token"), tls_tier.address, rng)


def test_the_token_may_come_from_kvtier_token(pki, tls_tier, rng, monkeypatch) -> None:
    monkeypatch.setenv("KVTIER_TOKEN", TOKEN)
    converse(kvtier.Credentials.from_files(ca_file=f"{pki}/ca.pem"), tls_tier.address, rng)


@pytest.mark.parametrize("token,tenant,error", [
    (None, "acme", kvtier.Unauthenticated),
    ("not-a-known-token", "acme", kvtier.Unauthenticated),
    (TOKEN, "globex", kvtier.PermissionDenied),  # a tenant the credential does not name
])
def test_credentials_are_checked(pki, tls_tier, token, tenant, error, monkeypatch) -> None:
    monkeypatch.delenv("KVTIER_TOKEN", raising=False)
    credentials = kvtier.Credentials.from_files(ca_file=f"{pki}/ca.pem", token=token)
    with kvtier.Client(tls_tier.address, credentials=credentials) as client:
        with pytest.raises(error, match="OpenSession: .*SessionService.OpenSession") as raised:
            client.open_session("toy", tenant)
        assert raised.value.code == error.default_code


def test_operator_calls_need_the_admin_role(pki, tls_tier) -> None:
    ca = f"{pki}/ca.pem"
    with kvtier.Client(tls_tier.address,
                       credentials=kvtier.Credentials.from_files(ca, token=TOKEN)) as client:
        with pytest.raises(kvtier.PermissionDenied, match="GetStats: .*admin"):
            client.stats()
    with kvtier.Client(tls_tier.address,
                       credentials=kvtier.Credentials.from_files(ca, token=ADMIN_TOKEN)) as client:
        stats = client.stats()
        assert [m.model.id.name for m in stats.models] == ["toy"] and stats.shards == 2


@pytest.mark.parametrize("ca", [None, "stranger-ca.pem"])
def test_a_client_that_cannot_verify_the_server_cannot_connect(pki, tls_tier, ca) -> None:
    credentials = kvtier.Credentials(token=TOKEN) if ca is None else \
        kvtier.Credentials.from_files(ca_file=f"{pki}/{ca}", token=TOKEN)
    with kvtier.Client(tls_tier.address, credentials=credentials, deadline=5) as client:
        with pytest.raises(kvtier.Unavailable):
            client.open_session("toy", "acme")


def test_mtls_takes_the_client_certificate_as_the_credential(pki, rng, monkeypatch) -> None:
    monkeypatch.delenv("KVTIER_TOKEN", raising=False)
    tier = secured_tier(pki, tls=True, mtls=True)
    try:
        converse(kvtier.Credentials.from_files(ca_file=f"{pki}/ca.pem",
                                               cert_file=f"{pki}/client.pem",
                                               key_file=f"{pki}/client.key"),
                 tier.address, rng)
        for cert in (None, "stranger"):  # no client certificate, or one from another CA
            credentials = kvtier.Credentials.from_files(
                ca_file=f"{pki}/ca.pem", token=TOKEN,
                cert_file=cert and f"{pki}/{cert}.pem", key_file=cert and f"{pki}/{cert}.key")
            with kvtier.Client(tier.address, credentials=credentials, deadline=5) as client:
                with pytest.raises(kvtier.Unavailable):
                    client.open_session("toy", "acme")
    finally:
        assert tier.stop() == 0, tier.log()


def test_a_token_in_the_clear_on_loopback(pki, rng) -> None:
    tier = secured_tier(pki, tls=False)
    try:
        converse(kvtier.Credentials(token=TOKEN), tier.address, rng)
        with kvtier.Client(tier.address) as client:
            with pytest.raises(kvtier.Unauthenticated):
                client.open_session("toy", "acme")
    finally:
        assert tier.stop() == 0, tier.log()


def test_bad_credentials_are_refused(pki) -> None:
    with pytest.raises(kvtier.InvalidArgument, match="ca_file: cannot read /no/such.pem"):
        kvtier.Credentials.from_files(ca_file="/no/such.pem")
    with pytest.raises(kvtier.InvalidArgument, match=r"cert_file: .*/token holds no PEM block"):
        kvtier.Credentials.from_files(cert_file=f"{pki}/token", key_file=f"{pki}/client.key")
    with pytest.raises(kvtier.InvalidArgument, match="a certificate and its key go together"):
        kvtier.Credentials.from_files(cert_file=f"{pki}/client.pem")
    with pytest.raises(kvtier.InvalidArgument, match="token_file: cannot read"):
        kvtier.Credentials.from_files(token_file=os.path.join(pki, "missing"))
