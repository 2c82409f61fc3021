"""Checks that Python reads proclip checkpoints: the `lz4 -d` payload with the NumPy-only reader
and with the `safetensors` package, the checkpoint itself with checkpoint_np, and the
inference export with `safetensors`. Every tensor must equal the expected values bit for bit.

usage: checkpoint_interop.py CKPT.lz4 PAYLOAD.safetensors EXPECTED.safetensors EXPORT.safetensors
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "Scripts", "reference"))
import checkpoint_np  # noqa: E402
import safetensors_np  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402


def same(name, got, want):
    if got.dtype != np.float32 or got.shape != want.shape or not np.array_equal(got.view(np.uint32), want.view(np.uint32)):
        sys.exit(f"{name}: got {got.dtype} {list(got.shape)}, want {want.dtype} {list(want.shape)} (or values differ)")


def main():
    ckpt, payload, expected_path, export = sys.argv[1:5]
    expected, _ = safetensors_np.load(expected_path)

    raw, meta = safetensors_np.load(payload)
    with safe_open(payload, framework="np") as f:
        meta_pkg = f.metadata()
    raw_pkg = load_file(payload)
    if meta != meta_pkg:
        sys.exit("metadata differs between the NumPy reader and the safetensors package")
    for key in ["format", "format_version", "step", "phase_name", "epoch", "epoch_step", "rng_state", "config_hash", "byte_shuffle"]:
        if key not in meta:
            sys.exit(f"metadata '{key}' missing")
    shuffled = meta["byte_shuffle"] == "true"
    if sorted(raw) != sorted(expected) or sorted(raw_pkg) != sorted(expected):
        sys.exit(f"tensor names differ: {sorted(set(raw) ^ set(expected))[:5]}")
    for name, want in expected.items():
        for reader, tensors in [("numpy reader", raw), ("safetensors", raw_pkg)]:
            a = tensors[name]
            if shuffled and (a.dtype != np.uint8 or list(a.shape) != [4] + list(want.shape)):
                sys.exit(f"{name} ({reader}): shuffled tensor stored as {a.dtype} {list(a.shape)}")
            same(f"{name} ({reader})", checkpoint_np.unshuffle(a) if shuffled else a, want)

    direct, meta_direct = checkpoint_np.load(ckpt)
    if meta_direct != meta:
        sys.exit("checkpoint_np metadata differs")
    for name, want in expected.items():
        same(f"{name} (checkpoint_np)", direct[name], want)

    inference = load_file(export)
    params = {n[len("param/"):]: a for n, a in expected.items() if n.startswith("param/")}
    if sorted(inference) != sorted(params):
        sys.exit(f"export names differ: {sorted(set(inference) ^ set(params))[:5]}")
    for name, want in params.items():
        same(f"{name} (export)", inference[name], want)
    print(f"ok: {len(expected)} tensors, byte_shuffle {meta['byte_shuffle']}, step {meta['step']}")


main()
