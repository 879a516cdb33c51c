"""The torch example (client/python/examples/torch_decoder.py): a small decoder whose attention
goes through the tier generates the same tokens as with plain torch attention, over 1 and 3
shards, and again when its prompt is found cached by a second run."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

EXAMPLE = os.path.join(os.environ.get("KVTIER_SOURCE_DIR", ""), "client", "python", "examples",
                       "torch_decoder.py")


def run_example(address: str, tenant: str) -> tuple:
    """The tokens the example generated, and how many of its prompt were cached."""
    result = subprocess.run([sys.executable, EXAMPLE, f"--coordinator={address}",
                             f"--tenant={tenant}", "--new_tokens=30"],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "torch_decoder: the tokens match" in result.stdout, result.stdout
    tokens = re.search(r"^kvtier: \[([0-9, ]+)\]", result.stdout, re.MULTILINE).group(1)
    cached = re.search(r"^kvtier: prompt ([0-9]+) tokens cached", result.stdout, re.MULTILINE)
    return [int(t) for t in tokens.split(",")], int(cached.group(1))


@pytest.mark.parametrize("shards", [1, 3])
def test_the_example_generates_what_plain_torch_does(tiers, shards) -> None:
    address = tiers.get(shards, "fp32").address
    tokens, cached = run_example(address, f"example-{shards}")
    assert cached == 0
    assert len(tokens) == 30 and len(set(tokens)) >= 5  # attention, not a fixed point, decides
    again, cached = run_example(address, f"example-{shards}")
    assert again == tokens and cached == 16  # 16 of its 20 prompt tokens: 4 full blocks
