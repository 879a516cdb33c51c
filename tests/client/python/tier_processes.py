"""Test support: real tiers as child processes. ``LocalTier`` is ``kvtier-local`` (a coordinator
and N CPU shards in one process); ``Coordinator`` and ``Shard`` are ``kvtier-coordinator`` and
``kvtier-shard`` processes, for tests that kill a shard. The binaries' paths come from the
environment (KVTIER_LOCAL_BIN, KVTIER_COORDINATOR_BIN, KVTIER_SHARD_BIN, KVTIER_LOAD_BIN), which
CMake sets. Each process writes its output to a file in its own temporary folder; ``stop`` ends
it with SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from typing import List, Sequence

# The tests' model: 6 KV heads (2 query heads each) spread over 1 to 3 shards, 4-token blocks.
MODEL = "name=toy,layers=2,kv_heads=6,q_heads=12,head_dim=16,block_size=4,blocks=512"


def binary(name: str) -> str:
    path = os.environ.get(name)
    if not path or not os.access(path, os.X_OK):
        raise RuntimeError(f"{name}: expected the path of an executable (CMake sets it), got "
                           f"{path!r}")
    return path


class Process:
    """A child process whose output goes to a file that ``wait_for`` reads."""

    def __init__(self, args: Sequence[str], name: str) -> None:
        self.dir = tempfile.mkdtemp(prefix=f"kvtier-{name}-")
        self.log_path = os.path.join(self.dir, "output.log")
        self._log = open(self.log_path, "wb")
        self.args = list(args)
        self.popen = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as file:
            return file.read()

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        """The rest of the first log line containing ``text``, once written."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log().splitlines():
                if text in line:
                    return line.split(text, 1)[1]
            if self.popen.poll() is not None:
                break
            time.sleep(0.01)
        raise RuntimeError(f"{self.args[0]} never logged {text!r}; its log:\n{self.log()}")

    def kill(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


class LocalTier(Process):
    """kvtier-local serving MODEL in ``dtype`` over ``shards`` shards on loopback."""

    def __init__(self, shards: int, dtype: str = "fp32", args: Sequence[str] = ()) -> None:
        self.shards = shards
        self.dtype = dtype
        address_dir = tempfile.mkdtemp(prefix="kvtier-address-")
        self._address_file = os.path.join(address_dir, "address")
        super().__init__([binary("KVTIER_LOCAL_BIN"), f"--shards={shards}", "--port=0",
                          f"--address_file={self._address_file}", "--capacity_mib=16",
                          "--threads_per_shard=1", f"--model={MODEL},dtype={dtype}", *args],
                         "local")
        self.address = self._wait_for_address()

    def _wait_for_address(self) -> str:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if os.path.exists(self._address_file):
                with open(self._address_file, encoding="utf-8") as file:
                    address = file.read().strip()
                if address:
                    return address
            if self.popen.poll() is not None:
                break
            time.sleep(0.01)
        raise RuntimeError(f"kvtier-local did not start; its log:\n{self.log()}")


class Coordinator(Process):
    """kvtier-coordinator with MODEL over ``shards`` head ranges, dropping a shard silent for
    1 s."""

    def __init__(self, shards: int, dtype: str = "fp32") -> None:
        super().__init__([binary("KVTIER_COORDINATOR_BIN"), "--listen=127.0.0.1:0",
                          "--heartbeat_interval=20ms", "--heartbeat_timeout=1s",
                          f"--model={MODEL},dtype={dtype},shards={shards}"], "coordinator")
        self.address = self.wait_for("kvtier-coordinator: serving on ").split(",")[0].strip()


class Shard(Process):
    """kvtier-shard joining ``coordinator``, serving on ``listen``."""

    def __init__(self, coordinator: str, listen: str = "127.0.0.1:0") -> None:
        super().__init__([binary("KVTIER_SHARD_BIN"), f"--listen={listen}",
                          f"--coordinator={coordinator}", "--threads=1", "--capacity_gib=0.02"],
                         "shard")
        self.address = self.wait_for("kvtier-shard: serving on ").split(",")[0].strip()


def stop_all(processes: List[Process]) -> None:
    for process in reversed(processes):
        process.stop()
