"""The decode benchmark (client/python/bench/decode_bench.py) runs end to end, briefly: both
clients through one tier per shard count, a row each with its ratios. It measures nothing here
(speed belongs to the benchmark's own runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tier_processes import binary


def test_the_benchmark_compares_both_clients_on_one_tier() -> None:
    bench = os.path.join(os.environ["KVTIER_SOURCE_DIR"], "client", "python", "bench",
                         "decode_bench.py")
    result = subprocess.run([sys.executable, bench, f"--kvtier_local={binary('KVTIER_LOCAL_BIN')}",
                             f"--kvtier_load={binary('KVTIER_LOAD_BIN')}", "--shards=1,2",
                             "--layers=2", "--tokens=4", "--rounds=1",
                             "--model=kv_heads=2,q_heads=4,head_dim=16,dtype=fp32,blocks=64"],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["shards", "py", "step", "us", "C++", "step", "us", "ratio", "py",
                                "layer", "us", "C++", "layer", "us", "ratio"]
    report = json.loads(lines[-1])
    assert [row["shards"] for row in report["rows"]] == [1, 2]
    for row in report["rows"]:
        for key in ("python_step_us", "cpp_step_us", "python_layer_us", "cpp_layer_us"):
            assert row[key] > 0, key
        assert row["step_ratio"] == row["python_step_us"] / row["cpp_step_us"]
