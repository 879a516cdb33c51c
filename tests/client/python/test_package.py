"""The package as users get it: pip builds and installs it offline from client/python
(--no-build-isolation, over Debian's packages; the stubs generated from proto/ by setup.py), it
imports from where pip put it, and help(kvtier) reads as documentation of the API."""

from __future__ import annotations

import os
import pydoc
import shutil
import subprocess
import sys

import kvtier


def test_pip_installs_the_package_offline(tmp_path) -> None:
    source = os.environ["KVTIER_SOURCE_DIR"]
    work = str(tmp_path)
    # A copy, so pip's in-place build leaves the source tree alone.
    shutil.copytree(os.path.join(source, "proto"), os.path.join(work, "proto"))
    shutil.copytree(os.path.join(source, "client", "python"),
                    os.path.join(work, "client", "python"),
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = os.path.join(work, "installed")
    environment = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    environment.pop("PYTHONPATH", None)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation",
                    "--no-deps", "--target", target, os.path.join(work, "client", "python")],
                   check=True, env=environment)
    assert os.path.exists(os.path.join(target, "kvtier", "v1", "attention_pb2_grpc.py"))
    imported = subprocess.run(
        [sys.executable, "-c", "import kvtier, kvtier.v1.session_pb2 as s; "
                               "print(kvtier.__file__, s.OpenSessionRequest.DESCRIPTOR.name)"],
        check=True, capture_output=True, text=True, env=dict(environment, PYTHONPATH=target))
    assert imported.stdout.split() == [os.path.join(target, "kvtier", "__init__.py"),
                                       "OpenSessionRequest"]


def test_help_documents_the_api() -> None:
    text = pydoc.render_doc(kvtier, renderer=pydoc.plaintext)
    for words in ("kvtier.Client(\"127.0.0.1:50051\")", "session.extend(prompt_ids)",
                  "client.step([s1, s2, ...])", "step.attend(layer, q, k, v)",
                  "ReprefillRequired", "Credentials"):
        assert words in text, words
    for api in (kvtier.Client.open_session, kvtier.Client.resume_session, kvtier.Client.step,
                kvtier.Session.extend, kvtier.Session.end_turn, kvtier.Session.fork,
                kvtier.Session.close, kvtier.Step.attend, kvtier.Step.finish,
                kvtier.Credentials.from_files):
        assert api.__doc__ and len(api.__doc__) > 40, api
        assert "return" in api.__annotations__, api
