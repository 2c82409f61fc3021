"""Tiny inputs for the real-backend test of Scripts/extract_features.py (run only where torch,
open_clip, transformers and Pillow are installed): five small PNG images, a CSV naming them, and a
randomly initialised one-layer BERT with its own vocabulary saved as a Hugging Face model directory
(no download). Usage: make_tiny_inputs.py DIR
"""
import os
import sys

from PIL import Image
from transformers import BertConfig, BertModel, BertTokenizer

root = sys.argv[1]
os.makedirs(os.path.join(root, "imgs"), exist_ok=True)
captions = [("a dog", "a dog on a red mat"), ("a cat", "a cat on a sofa"), ("a car", "a car in the rain"),
            ("a tree", "a tree by a lake"), ("a cup", "a cup of tea")]
with open(os.path.join(root, "d.csv"), "w") as f:
    f.write("image,short_en,long_en\n")
    for i, (short, long) in enumerate(captions):
        Image.new("RGB", (32, 24), (40 * i, 255 - 40 * i, 90)).save(os.path.join(root, "imgs", "im%d.png" % i))
        f.write("imgs/im%d.png,%s,%s\n" % (i, short, long))
words = sorted({w for pair in captions for c in pair for w in c.split()})
model_dir = os.path.join(root, "tiny-bert")
os.makedirs(model_dir, exist_ok=True)
with open(os.path.join(model_dir, "vocab.txt"), "w") as f:
    f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")
BertTokenizer(os.path.join(model_dir, "vocab.txt")).save_pretrained(model_dir)
config = BertConfig(vocab_size=5 + len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=48, max_position_embeddings=512)
BertModel(config).save_pretrained(model_dir)
print("ok")
