"""NumPy side of the feature-shard interop tests (run by FeaturesTests/NumpyInteropTests.swift).

  features_interop.py check DIR   -- DIR was written by proclip: every array loads with
                                     numpy.load(mmap_mode="r") in the documented shape and dtype,
                                     holds the known values, and its zlib CRC-32 matches the manifest.
  features_interop.py write DIR DTYPE -- writes a dataset with NumPy alone (np.save and .npy format
                                     versions 1.0, 2.0 and 3.0) for proclip to read.

Known values: element j of global row g, variant v of array a (image 0, clip_text 1, llm 2) is
a*100 + g*8 + v*2 + j*0.25 (exact in float16 too). Prints "ok ..." and exits 0, or exits 1.
"""
import json
import os
import sys
import zlib

import numpy as np

D_EMBED, D_LLM = 4, 6
VARIANTS = ["short_en", "long_en", "long_de"]


def known(a, rows, v_count, d, start):
    g = np.arange(start, start + rows)[:, None, None]
    v = np.arange(v_count)[None, :, None]
    j = np.arange(d)[None, None, :]
    return a * 100 + g * 8 + v * 2 + j * 0.25


def crc(path):
    c = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return "%08x" % (c & 0xFFFFFFFF)
            c = zlib.crc32(b, c)


def check(root):
    m = json.load(open(os.path.join(root, "manifest.json")))
    assert m["format"] == "proclip-features" and m["version"] == 1 and m["checksum"] == "crc32", m
    dtype = {"float32": np.float32, "float16": np.float16}[m["dtype"]]
    V = len(m["variants"])
    start = 0
    for s in m["shards"]:
        n = s["rows"]
        base = os.path.join(root, s["name"])
        for name, shape, a, d in [("image", (n, m["d_embed"]), 0, m["d_embed"]),
                                  ("clip_text", (n, V, m["d_embed"]), 1, m["d_embed"]),
                                  ("llm", (n, V, m["d_llm"]), 2, m["d_llm"])]:
            arr = np.load(os.path.join(base, name + ".npy"), mmap_mode="r")
            assert isinstance(arr, np.memmap), (name, type(arr))
            assert arr.shape == shape, (s["name"], name, arr.shape, shape)
            assert arr.dtype == np.dtype(dtype).newbyteorder("<"), (name, arr.dtype)
            assert arr.flags.c_contiguous
            want = known(a, n, V if name != "image" else 1, d, start)
            if name == "image":
                want = want[:, 0, :]
            assert np.array_equal(np.asarray(arr, dtype=np.float64), want), (s["name"], name)
        concepts = np.load(os.path.join(base, "concepts.npy"), mmap_mode="r")
        assert concepts.dtype == np.int32 and concepts.shape == (n, 2), concepts
        assert list(concepts[:, 0]) == list(range(start, start + n)) and (concepts[:, 1] == -1).all()
        for fname, entry in s["files"].items():
            path = os.path.join(base, fname)
            assert os.path.getsize(path) == entry["bytes"], (path, entry)
            assert crc(path) == entry["crc32"], (path, crc(path), entry)
        start += n
    print("ok: %d rows checked by numpy" % start)


def write(root, dtype_name):
    dtype = {"float32": np.float32, "float16": np.float16}[dtype_name]
    os.makedirs(root)
    shards, start = [], 0
    for i, (n, split, version) in enumerate([(4, "train", (1, 0)), (3, "train", (2, 0)), (2, "eval", (3, 0))]):
        name = "part-%d" % i
        os.makedirs(os.path.join(root, name))
        arrays = {
            "image": known(0, n, 1, D_EMBED, start)[:, 0, :],
            "clip_text": known(1, n, len(VARIANTS), D_EMBED, start),
            "llm": known(2, n, len(VARIANTS), D_LLM, start),
        }
        files = {}
        for key, value in arrays.items():
            path = os.path.join(root, name, key + ".npy")
            value = np.ascontiguousarray(value.astype(dtype))
            if version == (1, 0):
                np.save(path, value)
            else:
                with open(path, "wb") as f:
                    np.lib.format.write_array(f, value, version=version)
            files[key + ".npy"] = {"bytes": os.path.getsize(path), "crc32": crc(path)}
        shards.append({"name": name, "split": split, "rows": n, "files": files})
        start += n
    manifest = {"format": "proclip-features", "version": 1, "description": "written by numpy",
                "dtype": dtype_name, "d_embed": D_EMBED, "d_llm": D_LLM, "variants": VARIANTS,
                "checksum": "crc32", "shards": shards}
    with open(os.path.join(root, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print("ok: wrote %d rows with numpy %s" % (start, np.__version__))


if __name__ == "__main__":
    if sys.argv[1] == "check":
        check(sys.argv[2])
    else:
        write(sys.argv[2], sys.argv[3])
