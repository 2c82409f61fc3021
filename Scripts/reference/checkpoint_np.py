"""Reads proclip checkpoints with NumPy alone (and the `lz4` command, or the `lz4` package).

A checkpoint is one LZ4 frame whose content is a safetensors file. When its metadata says
byte_shuffle "true", each float32 tensor of shape S is stored as uint8 planes of shape [4] + S
(plane k holds byte k of every little-endian element); `unshuffle` turns them back into floats.

    tensors, metadata = checkpoint_np.load("runs/demo/ckpt-000000001200.lz4")
    tensors["param/text.text_adaptor.0.fn.0.weight"]   # float32 [D*expansion, D]
"""
import subprocess

import numpy as np

import safetensors_np


def decompress(path):
    """The safetensors bytes inside checkpoint `path`."""
    try:
        import lz4.frame
        with open(path, "rb") as f:
            return lz4.frame.decompress(f.read())
    except ImportError:
        return subprocess.run(["lz4", "-d", "-c", path], check=True, capture_output=True).stdout


def unshuffle(planes):
    """float32 tensor of shape S from its uint8 byte planes of shape [4] + S."""
    if planes.dtype != np.uint8 or planes.ndim < 1 or planes.shape[0] != 4:
        raise ValueError(f"expected uint8 planes of shape [4, ...], got {planes.dtype} {list(planes.shape)}")
    return np.ascontiguousarray(np.moveaxis(planes, 0, -1)).view("<f4").reshape(planes.shape[1:])


def plain(tensors, metadata):
    """The tensors as float32, unshuffled when the metadata says they are shuffled."""
    if metadata.get("byte_shuffle") == "true":
        return {name: unshuffle(a) for name, a in tensors.items()}
    return tensors


def load(path):
    """Returns (tensors: dict name -> float32 ndarray, metadata: dict of str)."""
    tensors, metadata = safetensors_np.loads(decompress(path))
    return plain(tensors, metadata), metadata
