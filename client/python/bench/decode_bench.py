#!/usr/bin/python3
"""Decode round trips through one tier, the Python client against the C++ one, in one run: for
each shard count it starts kvtier-local, then alternates blocks of the Python client (this
package) and of the C++ client (kvtier-load, one session, one turn), each block one fresh
session that prefills --prompt_tokens and decodes --tokens tokens, one token a step: the
session's extend, every layer's attend (q, k, v for that shard's heads out, the output back)
and the step's finish. Prints, per shard count, the medians over the blocks of each block's
median per token (step_us) and per layer round trip (layer_us), and the Python/C++ ratios.

  decode_bench.py --kvtier_local=build/service/local/kvtier-local \\
                  --kvtier_load=build/client/load/kvtier-load [--shards=1,2] [--layers=32]

NOTE: kvtier-load draws each layer's q/k/v (seeded random) inside its timed step; the Python
side reuses arrays drawn beforehand, so it is timed on a little less work.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

import numpy as np

import kvtier


def start_tier(binary: str, shards: int, model: str, folder: str) -> subprocess.Popen:
    address_file = os.path.join(folder, f"address-{shards}")
    log = os.path.join(folder, f"tier-{shards}.log")
    with open(log, "wb") as output:
        process = subprocess.Popen([binary, f"--shards={shards}", "--port=0",
                                    f"--address_file={address_file}", "--threads_per_shard=1",
                                    f"--model={model}", "--capacity_mib=1024"],
                                   stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not (os.path.exists(address_file) and open(address_file).read().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            sys.exit(f"decode_bench: {binary} did not start:\n{open(log).read()[-2000:]}")
        time.sleep(0.02)
    process.address = open(address_file).read().strip()
    return process


def python_block(address: str, prompt_tokens: int, tokens: int,
                 rng: np.random.Generator) -> Dict[str, float]:
    """One session through the Python client: medians per token and per layer, in us."""
    with kvtier.Client(address) as client:
        session = client.open_session("bench", "python-bench")
        model = session.model
        dtype = {kvtier.v1.common_pb2.DTYPE_FP32: np.float32,
                 kvtier.v1.common_pb2.DTYPE_FP16: np.float16}[model.dtype]

        def tensors(rows: int):
            return [(rng.uniform(-1, 1, (rows, model.num_q_heads, model.head_dim)).astype(dtype),
                     rng.uniform(-1, 1, (rows, model.num_kv_heads, model.head_dim)).astype(dtype),
                     rng.uniform(-1, 1, (rows, model.num_kv_heads, model.head_dim)).astype(dtype))
                    for _ in range(model.num_layers)]

        session.extend([int(t) for t in rng.integers(0, 32000, prompt_tokens)])
        with session.step() as step:
            for layer, (q, k, v) in enumerate(tensors(prompt_tokens)):
                step.attend(layer, q, k, v)
        decode = tensors(1)
        step_times: List[float] = []
        layer_times: List[float] = []
        clock = time.perf_counter
        for _ in range(tokens):
            began = clock()
            session.extend([int(rng.integers(0, 32000))])
            with session.step() as step:
                for layer, (q, k, v) in enumerate(decode):
                    sent = clock()
                    step.attend(layer, q, k, v)
                    layer_times.append(clock() - sent)
            step_times.append(clock() - began)
        session.end_turn()
        session.close()
    return {"step_us": statistics.median(step_times) * 1e6,
            "layer_us": statistics.median(layer_times) * 1e6}


def cpp_block(binary: str, address: str, prompt_tokens: int, tokens: int, seed: int,
              folder: str) -> Dict[str, float]:
    """One session through kvtier-load: its medians per token and per layer round trip."""
    report = os.path.join(folder, "load.json")
    subprocess.run([binary, f"--coordinator={address}", "--sessions=1", "--turns=1",
                    f"--prompt_tokens={prompt_tokens}", f"--decode_tokens={tokens}",
                    f"--seed={seed}", "--tenant=cpp-bench", f"--json={report}"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(report) as file:
        latency = json.load(file)["summary"]["latency_ms"]
    return {"step_us": latency["token"]["p50"] * 1e3,
            "layer_us": latency["layer_round_trip"]["p50"] * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kvtier_local", required=True, help="the kvtier-local binary")
    parser.add_argument("--kvtier_load", required=True, help="the kvtier-load binary")
    parser.add_argument("--shards", default="1,2", help="shard counts, comma-separated")
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--model", default="kv_heads=8,q_heads=32,head_dim=128,dtype=fp16,"
                        "block_size=16,blocks=256",
                        help="the model's other keys (kvtier-local --model)")
    parser.add_argument("--prompt_tokens", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=64, help="decode tokens per block")
    parser.add_argument("--rounds", type=int, default=5, help="blocks of each client")
    args = parser.parse_args()
    shard_counts = [int(s) for s in args.shards.split(",")]
    if args.layers < 1 or args.tokens < 1 or args.rounds < 1 or min(shard_counts) < 1:
        parser.error("--layers, --tokens, --rounds and --shards: expected >= 1")
    model = f"name=bench,layers={args.layers},{args.model}"
    folder = tempfile.mkdtemp(prefix="kvtier-decode-bench-")
    rng = np.random.default_rng(1)
    print(f"decode_bench: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; model {model}; {args.rounds} blocks of "
          f"{args.tokens} decode tokens per client", flush=True)
    print(f"{'shards':>6} {'py step us':>11} {'C++ step us':>12} {'ratio':>6} "
          f"{'py layer us':>12} {'C++ layer us':>13} {'ratio':>6}")
    rows = []
    for shards in shard_counts:
        tier = start_tier(args.kvtier_local, shards, model, folder)
        try:
            blocks = {"python": [], "cpp": []}
            for round_ in range(args.rounds):
                print(f"decode_bench: {shards} shards, block {round_ + 1}/{args.rounds}",
                      file=sys.stderr, flush=True)
                blocks["python"].append(python_block(tier.address, args.prompt_tokens,
                                                     args.tokens, rng))
                blocks["cpp"].append(cpp_block(args.kvtier_load, tier.address,
                                               args.prompt_tokens, args.tokens, round_ + 1,
                                               folder))
        finally:
            tier.terminate()
            tier.wait()
        row = {"shards": shards}
        for client, measured in blocks.items():
            for key in ("step_us", "layer_us"):
                row[f"{client}_{key}"] = statistics.median(b[key] for b in measured)
        row["step_ratio"] = row["python_step_us"] / row["cpp_step_us"]
        row["layer_ratio"] = row["python_layer_us"] / row["cpp_layer_us"]
        rows.append(row)
        print(f"{shards:>6} {row['python_step_us']:>11.1f} {row['cpp_step_us']:>12.1f} "
              f"{row['step_ratio']:>6.2f} {row['python_layer_us']:>12.1f} "
              f"{row['cpp_layer_us']:>13.1f} {row['layer_ratio']:>6.2f}", flush=True)
    print(json.dumps({"bench": "python_decode", "layers": args.layers, "rows": rows}))


if __name__ == "__main__":
    main()
