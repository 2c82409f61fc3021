#!/usr/bin/env python3
"""Checks `proclip grad` against the independent float64 NumPy reference (proclip_ref.py).

For both phases and for adaptors of 1 and 2 blocks: random inputs (B not divisible by G, two
identical rows), random parameters, settings read from `proclip grad --print-settings`; losses
must agree within 1e-5 (relative), features within 1e-5 and every gradient within 1e-4
(‖a−b‖/‖b‖). `--workers K` for K = 2, 3, 4 must equal K = 1 within 1e-6: each feature matrix
and the whole gradient (every parameter's gradient as one vector); each loss term and a single
tensor's gradient within 1e-5 (see below). Bad inputs must exit non-zero with one line naming
the tensor. Exits 1 on any failure.

Why a single tensor gets 1e-5: the loss side runs in float64 and gives every row's gradient to
its owner alone, so it does not depend on the split; but OpenBLAS's sgemm rounds a row's result
differently depending on how many rows share the call (and on its thread count), so the
features of a worker's rows differ from the single-worker ones in the last bits (~1e-7), and
gradients whose row sums cancel (some biases) amplify that to ~1e-6 of their own small norm.
The structure terms (str, sd_str) are differences of similarity matrices and amplify it the same
way: sd_str with 3 workers has differed from 1 worker by 1.2e-6 (OpenBLAS with AVX-512 kernels).

usage: compare_grad.py --proclip PATH/TO/proclip [--workdir DIR]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proclip_ref as ref  # noqa: E402
import safetensors_np as st  # noqa: E402

D_LLM, D_EMBED, V, B, G = 24, 12, 3, 9, 4
failures = []


def config_text(blocks):
    return f"""name: reference-check
seed: 5
model: {{d_llm: {D_LLM}, d_embed: {D_EMBED}, text_blocks: {blocks}, text_expansion: 2, image_blocks: 1, image_expansion: 3}}
data: {{path: unused, variants: [short_en, long_en, noisy_en]}}
phases:
  - name: inherit
    kind: inherit
    steps: 1
    batch: {B}
    group: {G}
    lr: 1.0e-3
    losses:
      ins: {{weight: 0.8, variants: [short_en, noisy_en]}}
      str: {{weight: 1.3, variants: [short_en, long_en]}}
  - name: contrast
    kind: contrast
    steps: 1
    batch: {B}
    group: {G}
    lr: 1.0e-3
    lambda: 0.5
    variants: [short_en, long_en, noisy_en]
"""


def random_params(rng, blocks):
    p = {}
    def block(prefix, d, h):
        p[prefix + "ln.weight"] = 1 + 0.1 * rng.standard_normal(d)
        p[prefix + "ln.bias"] = 0.1 * rng.standard_normal(d)
        p[prefix + "fn.0.weight"] = rng.standard_normal((h, d)) / np.sqrt(d)
        p[prefix + "fn.0.bias"] = 0.1 * rng.standard_normal(h)
        p[prefix + "fn.3.weight"] = rng.standard_normal((d, h)) / np.sqrt(h)
        p[prefix + "fn.3.bias"] = 0.1 * rng.standard_normal(d)
    for i in range(blocks):
        block(f"text.text_adaptor.{i}.", D_LLM, 2 * D_LLM)
    p[f"text.text_adaptor.{blocks}.weight"] = 1 + 0.1 * rng.standard_normal(D_LLM)
    p[f"text.text_adaptor.{blocks}.bias"] = 0.1 * rng.standard_normal(D_LLM)
    p[f"text.text_adaptor.{blocks + 1}.weight"] = rng.standard_normal((D_EMBED, D_LLM)) / np.sqrt(D_LLM)
    p[f"text.text_adaptor.{blocks + 1}.bias"] = 0.1 * rng.standard_normal(D_EMBED)
    block("visual.head.0.", D_EMBED, 3 * D_EMBED)
    p["logit_scale"] = np.array(2.3)
    head = {k: v for k, v in p.items() if k.startswith("visual.head.")}
    for k, v in head.items():  # a teacher that has drifted from the head, as after some training
        p["ema/" + k] = v + 0.05 * rng.standard_normal(v.shape)
    return p


def random_batch(rng):
    batch = {
        "llm": rng.standard_normal((B, V, D_LLM)),
        "clip_text": rng.standard_normal((B, V, D_EMBED)),
        "image": rng.standard_normal((B, D_EMBED)),
        "variant": rng.integers(0, V, B).astype(np.int32),
    }
    for k in ("llm", "clip_text", "image"):
        batch[k][4] = batch[k][3]  # coincident points in the structure loss
    batch["variant"][4] = batch["variant"][3]
    return batch


def f32(d):
    return {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in d.items()}


def rel(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def check(what, a, b, tol):
    r = rel(a, b)
    if not r <= tol:
        failures.append(f"{what}: relative error {r:.3e} > {tol:g}")
    return r


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def grad(binary, cfg, phase, batch_path, params_path, out_path, workers=1):
    r = run([binary, "grad", "--config", cfg, "--phase", phase, "--batch", batch_path,
             "--params", params_path, "--out", out_path, "--workers", str(workers)])
    if r.returncode != 0:
        failures.append(f"proclip grad {phase} --workers {workers} failed: {r.stderr.strip()}")
        return None
    return st.load(out_path)[0]


def compare_case(binary, work, blocks, phase, seed):
    rng = np.random.default_rng(seed)
    cfg = os.path.join(work, f"L{blocks}.yaml")
    with open(cfg, "w") as f:
        f.write(config_text(blocks))
    r = run([binary, "grad", "--config", cfg, "--phase", phase, "--print-settings"])
    if r.returncode != 0:
        failures.append(f"--print-settings failed: {r.stderr.strip()}")
        return
    settings = json.loads(r.stdout)
    params = random_params(rng, blocks)
    batch = random_batch(rng)
    params_path = os.path.join(work, f"params-{phase}-L{blocks}.safetensors")
    batch_path = os.path.join(work, f"batch-{phase}-L{blocks}.safetensors")
    st.save(params_path, f32({("param/" + k if not k.startswith("ema/") else k): v for k, v in params.items()}))
    st.save(batch_path, f32(batch))
    # The reference sees exactly the float32 values proclip reads.
    p64 = {k: v.astype(np.float32).astype(np.float64) for k, v in params.items()}
    b64 = {k: (v.astype(np.float32).astype(np.float64) if v.dtype.kind == "f" else v) for k, v in batch.items()}
    losses, grads, feats = ref.phase_loss(p64, b64, settings)
    out = grad(binary, cfg, phase, batch_path, params_path, os.path.join(work, f"out-{phase}-L{blocks}-k1.safetensors"))
    if out is None:
        return
    name = f"{phase} L={blocks}"
    worst_loss = max(check(f"{name} loss/{k}", out["loss/" + k], v, 1e-5) for k, v in losses.items())
    worst_feat = max(check(f"{name} {k}", out[k], v, 1e-5) for k, v in feats.items())
    worst_grad = 0.0
    for k, v in grads.items():
        if "grad/" + k not in out:
            failures.append(f"{name}: proclip wrote no grad/{k}")
            continue
        worst_grad = max(worst_grad, check(f"{name} grad/{k}", out["grad/" + k], v, 1e-4))
    extra = sorted(k[5:] for k in out if k.startswith("grad/") and k[5:] not in grads)
    if extra:
        failures.append(f"{name}: gradients the reference does not have: {extra}")
    print(f"{name:14s} vs float64 reference: loss {worst_loss:.1e}, features {worst_feat:.1e}, gradients {worst_grad:.1e} "
          f"({len(grads)} tensors)")
    gnames = sorted(t for t in out if t.startswith("grad/"))
    for k in (2, 3, 4):
        outk = grad(binary, cfg, phase, batch_path, params_path, os.path.join(work, f"out-{phase}-L{blocks}-k{k}.safetensors"), k)
        if outk is None:
            continue
        worst = max(check(f"{name} --workers {k} {t}", outk[t], out[t], 1e-5 if t.startswith("loss/") else 1e-6)
                    for t in out if t.startswith(("loss/", "feature/")))
        whole = check(f"{name} --workers {k} whole gradient",
                      np.concatenate([outk[t].ravel() for t in gnames]), np.concatenate([out[t].ravel() for t in gnames]), 1e-6)
        tensor = max(check(f"{name} --workers {k} {t}", outk[t], out[t], 1e-5) for t in gnames)
        print(f"{name:14s} --workers {k} vs 1: losses/features {worst:.1e}, whole gradient {whole:.1e}, worst tensor {tensor:.1e}")


def bad_inputs(binary, work):
    cfg = os.path.join(work, "L1.yaml")
    rng = np.random.default_rng(9)
    good = f32(random_batch(rng))
    cases = {
        "missing tensor": ({k: v for k, v in good.items() if k != "clip_text"}, "inherit", "clip_text"),
        "wrong shape": ({**good, "image": good["image"][:, :5]}, "contrast", "image"),
        "wrong dtype": ({**good, "llm": good["llm"].astype(np.float64)}, "inherit", "llm"),
        "NaN": ({**good, "image": np.where(np.arange(B)[:, None] == 2, np.nan, good["image"]).astype(np.float32)}, "contrast", "image"),
        "variant out of range": ({**good, "variant": np.full(B, 7, np.int32)}, "contrast", "variant"),
    }
    for what, (tensors, phase, tensor) in cases.items():
        path = os.path.join(work, "bad.safetensors")
        st.save(path, tensors)
        r = run([binary, "grad", "--config", cfg, "--phase", phase, "--batch", path, "--out", os.path.join(work, "bad-out.safetensors")])
        lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
        if r.returncode == 0 or len(lines) != 1 or f"'{tensor}'" not in lines[0]:
            failures.append(f"bad input ({what}): exit {r.returncode}, stderr {r.stderr.strip()!r}")
        else:
            print(f"bad input ({what}): {lines[0]}")
    r = run([binary, "grad", "--config", cfg, "--phase", "nosuchphase", "--batch", path, "--out", os.path.join(work, "x.safetensors")])
    if r.returncode == 0 or "nosuchphase" not in r.stderr:
        failures.append(f"unknown phase: exit {r.returncode}, stderr {r.stderr.strip()!r}")
    else:
        print(f"unknown phase: {r.stderr.strip().splitlines()[0]}")
    if os.path.exists(os.path.join(work, "bad-out.safetensors")):
        failures.append("a failed run left an output file behind")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--proclip", required=True, help="path to the proclip executable")
    ap.add_argument("--workdir", help="where to write inputs and outputs (default: a temporary directory)")
    args = ap.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="proclip-ref-")
    os.makedirs(work, exist_ok=True)
    for blocks in (1, 2):
        for phase in ("inherit", "contrast"):
            compare_case(args.proclip, work, blocks, phase, seed=100 * blocks + len(phase))
    bad_inputs(args.proclip, work)
    if failures:
        print("FAILED:", *failures, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    print("all reference checks passed")


if __name__ == "__main__":
    main()
