#!/usr/bin/env python3
"""Turns an image-caption dataset into proclip feature shards (the format of `proclip data verify`).

Input, one of:
  --csv FILE            a CSV with an image-path column (--image-column, default "image", paths
                        relative to the CSV) and one column per caption variant (--caption-columns
                        short_en,long_en,...; the column names become the variant names)
  --image-dir DIR       images with sidecar captions: IMG.json ({"variant": "caption", ...}) or
                        IMG.txt (one caption per line, named by --variants, default caption_0, ...)

Output (--out DIR): `train-NNNNN/` and `eval-NNNNN/` shards of --shard-rows rows, each holding
  image.npy      (n, D_embed)     CLIP image embedding (open_clip encode_image, not normalised)
  clip_text.npy  (n, V, D_embed)  CLIP text embedding per caption variant (77-token truncation)
  llm.npy        (n, V, D_llm)    LLM embedding per variant (mean pooling over up to 512 tokens)
  captions.jsonl                  one {"image": ..., "captions": {variant: text}} per row
then manifest.json (checksums: zlib CRC-32 of each file, the same numbers proclip computes).
Optional --prompts FILE (one label per line) adds prompts/ for zero-shot evaluation.

The last --eval-rows rows form the eval split. Shards appear atomically (written to a temporary
directory, fsynced, renamed), so an interrupted run resumes where it stopped: rerun the same
command and finished shards are skipped. The manifest is written last.

Dependencies (imported only when used): numpy always; for --backend real: torch, open_clip_torch,
Pillow, and sentence-transformers (--llm-backend sentence-transformers) or transformers
(--llm-backend hf); tqdm for a progress bar if installed.
  pip install numpy torch open_clip_torch pillow sentence-transformers tqdm

--backend hash is a test embedder, NOT a model: features are hashes of the image bytes and caption
words. It exists so the pipeline can be tested where the model packages are missing.
"""
import argparse
import csv
import hashlib
import json
import os
import shutil
import sys
import zlib

FORMAT, VERSION = "proclip-features", 1
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


class InputError(Exception):
    """A problem with the input, reported as one line naming the file."""


# ----------------------------------------------------------------------------- input


def read_csv(path, image_column, caption_columns):
    base = os.path.dirname(os.path.abspath(path))
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in [image_column] + caption_columns if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError("%s: no column %s (have %s)" % (path, ", ".join(repr(c) for c in missing), reader.fieldnames))
        rows = []
        for i, r in enumerate(reader):
            image = r[image_column]
            caps = {c: r[c] for c in caption_columns}
            empty = [c for c, t in caps.items() if not t or not t.strip()]
            if empty:
                raise InputError("%s: line %d: empty caption %s" % (path, i + 2, empty[0]))
            rows.append((os.path.join(base, image), caps))
    return rows


def read_image_dir(path, variants):
    rows = []
    names = sorted(n for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTENSIONS))
    for name in names:
        stem = os.path.join(path, os.path.splitext(name)[0])
        if os.path.exists(stem + ".json"):
            with open(stem + ".json", encoding="utf-8") as f:
                caps = json.load(f)
        elif os.path.exists(stem + ".txt"):
            with open(stem + ".txt", encoding="utf-8") as f:
                lines = [l.strip() for l in f if l.strip()]
            caps = dict(zip(variants or ["caption_%d" % i for i in range(len(lines))], lines))
        else:
            raise InputError("%s: no sidecar caption file (%s.json or %s.txt)" % (os.path.join(path, name), stem, stem))
        rows.append((os.path.join(path, name), caps))
    if not rows:
        raise InputError("%s: no images" % path)
    want = variants or list(rows[0][1].keys())
    for image, caps in rows:
        missing = [v for v in want if v not in caps]
        if missing:
            raise InputError("%s: caption variant '%s' missing" % (image, missing[0]))
    return [(image, {v: caps[v] for v in want}) for image, caps in rows]


# ----------------------------------------------------------------------------- embedders


class HashEmbedder:
    """Test embedder, NOT a model: deterministic vectors from hashes of image bytes and words."""

    def __init__(self, d_embed=16, d_llm=24):
        import numpy as np
        self.np, self.d_embed, self.d_llm = np, d_embed, d_llm

    def _vec(self, key, d):
        seed = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")
        return self.np.random.default_rng(seed).standard_normal(d)

    def images(self, paths):
        out = []
        for p in paths:
            with open(p, "rb") as f:
                out.append(self._vec("image:" + hashlib.sha256(f.read()).hexdigest(), self.d_embed))
        return self.np.stack(out)

    def clip_texts(self, texts):
        # Words stand in for tokens; CLIP's window keeps the first 77.
        return self.np.stack([sum((self._vec("clip:" + w, self.d_embed) for w in t.split()[:77]),
                                  self.np.zeros(self.d_embed)) for t in texts])

    def llm_texts(self, texts):
        return self.np.stack([sum((self._vec("llm:" + w, self.d_llm) for w in t.split()[:512]),
                                  self.np.zeros(self.d_llm)) for t in texts])


def require(module, package):
    try:
        return __import__(module)
    except ImportError:
        raise InputError("--backend real needs the Python package '%s' (pip install %s)" % (package, package))


class RealEmbedder:
    """open_clip for the CLIP image and text towers; sentence-transformers or a Hugging Face model
    with mean pooling (512 tokens) for the LLM embedding."""

    def __init__(self, args):
        torch = require("torch", "torch")
        open_clip = require("open_clip", "open_clip_torch")
        require("PIL", "pillow")
        self.torch, self.device = torch, args.device
        pretrained = args.clip_pretrained or None  # empty: random weights (pipeline tests only)
        self.clip, _, self.preprocess = open_clip.create_model_and_transforms(args.clip_model, pretrained=pretrained)
        self.clip.eval().to(self.device)
        self.tokenize = open_clip.get_tokenizer(args.clip_model)
        self.llm_backend = args.llm_backend
        if args.llm_backend == "sentence-transformers":
            st = require("sentence_transformers", "sentence-transformers")
            self.llm = st.SentenceTransformer(args.llm_model, device=self.device)
            self.llm.max_seq_length = args.max_tokens
        else:
            transformers = require("transformers", "transformers")
            self.llm_tok = transformers.AutoTokenizer.from_pretrained(args.llm_model)
            self.llm = transformers.AutoModel.from_pretrained(args.llm_model).eval().to(self.device)
        self.max_tokens = args.max_tokens
        with torch.no_grad():
            self.d_embed = int(self.clip.encode_text(self.tokenize(["x"]).to(self.device)).shape[-1])
        self.d_llm = int(self.llm_texts(["x"]).shape[-1])

    def images(self, paths):
        from PIL import Image
        batch = self.torch.stack([self.preprocess(Image.open(p).convert("RGB")) for p in paths]).to(self.device)
        with self.torch.no_grad():
            return self.clip.encode_image(batch).float().cpu().numpy()

    def clip_texts(self, texts):
        with self.torch.no_grad():
            return self.clip.encode_text(self.tokenize(texts).to(self.device)).float().cpu().numpy()

    def llm_texts(self, texts):
        if self.llm_backend == "sentence-transformers":
            return self.llm.encode(texts, batch_size=len(texts), convert_to_numpy=True, normalize_embeddings=False)
        enc = self.llm_tok(texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt").to(self.device)
        with self.torch.no_grad():
            hidden = self.llm(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).float().cpu().numpy()


# ----------------------------------------------------------------------------- output


def crc32_file(path):
    c = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return "%08x" % (c & 0xFFFFFFFF)
            c = zlib.crc32(b, c)


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path, write):
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def write_arrays(directory, arrays, captions=None):
    """Writes `arrays` (name -> ndarray) and optional caption lines into `directory` atomically."""
    import numpy as np
    tmp = directory + ".tmp-%d" % os.getpid()
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        for name, a in arrays.items():
            a = np.ascontiguousarray(a)
            bad = ~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)
            if bad.any():
                raise InputError("%s/%s.npy: array '%s': row %d holds NaN or Inf (a value beyond float16 range?)"
                                 % (directory, name, name, int(bad.argmax())))
            write_file(os.path.join(tmp, name + ".npy"), lambda f: np.lib.format.write_array(f, a, version=(1, 0)))
        if captions is not None:
            text = "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in captions).encode("utf-8")
            write_file(os.path.join(tmp, "captions.jsonl"), lambda f: f.write(text))
        fsync_dir(tmp)
        os.rename(tmp, directory)
        fsync_dir(os.path.dirname(os.path.abspath(directory)))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def file_entries(directory):
    return {n: {"bytes": os.path.getsize(os.path.join(directory, n)), "crc32": crc32_file(os.path.join(directory, n))}
            for n in sorted(os.listdir(directory))}


class Progress:
    def __init__(self, total, done):
        try:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=done, unit="pair", file=sys.stderr)
        except ImportError:
            self.bar, self.total, self.done = None, total, done

    def update(self, n):
        if self.bar is not None:
            self.bar.update(n)
        else:
            self.done += n
            sys.stderr.write("\rextract: %d/%d pairs" % (self.done, self.total))
            sys.stderr.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()
        else:
            sys.stderr.write("\n")


def embed_shard(embedder, rows, variants, batch, dtype):
    import numpy as np
    image, clip, llm = [], [], []
    for i in range(0, len(rows), batch):
        part = rows[i:i + batch]
        image.append(embedder.images([p for p, _ in part]))
        clip.append(np.stack([embedder.clip_texts([c[v] for _, c in part]) for v in variants], axis=1))
        llm.append(np.stack([embedder.llm_texts([c[v] for _, c in part]) for v in variants], axis=1))
    cast = lambda xs: np.concatenate(xs).astype(dtype)
    return {"image": cast(image), "clip_text": cast(clip), "llm": cast(llm)}


def run(args):
    import numpy as np
    if bool(args.csv) == bool(args.image_dir):
        raise InputError("give exactly one of --csv and --image-dir")
    variants_arg = [v for v in (args.variants or "").split(",") if v]
    if args.csv:
        columns = [c for c in args.caption_columns.split(",") if c]
        rows = read_csv(args.csv, args.image_column, columns)
        variants = columns
    else:
        rows = read_image_dir(args.image_dir, variants_arg)
        variants = list(rows[0][1].keys())
    if not 0 <= args.eval_rows < len(rows):
        raise InputError("--eval-rows %d: need 0 <= eval rows < %d rows" % (args.eval_rows, len(rows)))
    for p, _ in rows:
        if not os.path.isfile(p):
            raise InputError("%s: image not found" % p)
    dtype = {"float32": np.float32, "float16": np.float16}[args.dtype]
    # Load the models before touching --out, so a missing package leaves nothing behind.
    embedder = HashEmbedder() if args.backend == "hash" else RealEmbedder(args)

    # The run's identity: resuming with other inputs or options would mix datasets.
    identity = {"rows": hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest(),
                "variants": variants, "backend": args.backend, "clip_model": args.clip_model,
                "clip_pretrained": args.clip_pretrained, "llm_model": args.llm_model, "llm_backend": args.llm_backend,
                "max_tokens": args.max_tokens, "dtype": args.dtype, "shard_rows": args.shard_rows,
                "eval_rows": args.eval_rows, "prompts": args.prompts}
    os.makedirs(args.out, exist_ok=True)
    for name in os.listdir(args.out):  # leftovers of an interrupted run
        if ".tmp-" in name:
            path = os.path.join(args.out, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
    state_path = os.path.join(args.out, "extract-state.json")
    if os.path.exists(state_path):
        with open(state_path) as f:
            if json.load(f) != identity:
                raise InputError("%s: written by a run with other inputs or options; use another --out" % state_path)
    else:
        write_file(state_path, lambda f: f.write(json.dumps(identity, indent=1).encode()))

    n_train = len(rows) - args.eval_rows
    plan = []  # (name, split, rows)
    for split, part in (("train", rows[:n_train]), ("eval", rows[n_train:])):
        for k, i in enumerate(range(0, len(part), args.shard_rows)):
            plan.append(("%s-%05d" % (split, k), split, part[i:i + args.shard_rows]))
    finished = [name for name, _, _ in plan if os.path.isdir(os.path.join(args.out, name))]
    if finished:
        print("extract: resuming; %d finished shard(s) skipped" % len(finished), file=sys.stderr)

    progress = Progress(len(rows), sum(len(r) for name, _, r in plan if name in finished))
    for name, split, part in plan:
        if name in finished:
            continue
        arrays = embed_shard(embedder, part, variants, args.batch_size, dtype)
        captions = [{"image": os.path.relpath(p, args.out), "captions": c} for p, c in part]
        write_arrays(os.path.join(args.out, name), arrays, captions)
        progress.update(len(part))
    progress.close()

    prompts = None
    if args.prompts:
        with open(args.prompts, encoding="utf-8") as f:
            labels = [l.strip() for l in f if l.strip()]
        texts = [args.prompt_template.format(l) for l in labels]
        pdir = os.path.join(args.out, "prompts")
        if not os.path.isdir(pdir):
            write_arrays(pdir, {"clip_text": embedder.clip_texts(texts).astype(dtype),
                                "llm": embedder.llm_texts(texts).astype(dtype)})
        prompts = {"directory": "prompts", "labels": labels, "texts": texts, "held_out": [], "files": file_entries(pdir)}

    first = np.load(os.path.join(args.out, plan[0][0], "llm.npy"), mmap_mode="r")
    image = np.load(os.path.join(args.out, plan[0][0], "image.npy"), mmap_mode="r")
    manifest = {
        "format": FORMAT, "version": VERSION,
        "description": "features extracted from %s by Scripts/extract_features.py (%s backend)"
                       % (args.csv or args.image_dir, args.backend),
        "dtype": args.dtype, "d_embed": int(image.shape[1]), "d_llm": int(first.shape[2]),
        "variants": variants, "checksum": "crc32",
        "shards": [{"name": name, "split": split, "rows": len(part), "files": file_entries(os.path.join(args.out, name))}
                   for name, split, part in plan],
        "source": {"kind": "test-hash-embedder" if args.backend == "hash" else "extracted",
                   "clip_model": args.clip_model, "clip_pretrained": args.clip_pretrained,
                   "llm_model": args.llm_model, "llm_backend": args.llm_backend, "max_tokens": args.max_tokens},
    }
    if args.backend == "hash":
        manifest["source"] = {"kind": "test-hash-embedder", "note": "hashes, not model features; for tests only"}
    if prompts:
        manifest["prompts"] = prompts
    text = (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    tmp = os.path.join(args.out, "manifest.json.tmp-%d" % os.getpid())
    write_file(tmp, lambda f: f.write(text))
    os.rename(tmp, os.path.join(args.out, "manifest.json"))
    fsync_dir(args.out)
    print("extract: %s: %d pairs (%d train, %d eval) in %d shards" % (args.out, len(rows), n_train, args.eval_rows, len(plan)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--csv")
    p.add_argument("--image-column", default="image")
    p.add_argument("--caption-columns", default="caption")
    p.add_argument("--image-dir")
    p.add_argument("--variants", help="names of the lines of .txt sidecars (image-dir input)")
    p.add_argument("--out", required=True)
    p.add_argument("--backend", choices=["real", "hash"], default="real",
                   help="real: open_clip + LLM; hash: test embedder, NOT a model (tests only)")
    p.add_argument("--clip-model", default="ViT-B-32")
    p.add_argument("--clip-pretrained", default="laion2b_s34b_b79k", help="open_clip weights tag; empty for random weights")
    p.add_argument("--llm-model", default="sentence-transformers/all-MiniLM-L6-v2")
    p.add_argument("--llm-backend", choices=["sentence-transformers", "hf"], default="sentence-transformers")
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--shard-rows", type=int, default=4096)
    p.add_argument("--eval-rows", type=int, default=0, help="the last N rows form the eval split")
    p.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    p.add_argument("--prompts", help="file with one zero-shot label per line")
    p.add_argument("--prompt-template", default="a photo of {}")
    args = p.parse_args(argv)
    if args.shard_rows < 1 or args.batch_size < 1:
        p.error("--shard-rows and --batch-size must be positive")
    try:
        run(args)
    except InputError as e:
        print("extract_features: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
