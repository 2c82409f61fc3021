"""Independent float64 NumPy reference for the ProCLIP model, losses and optimizer step.

Written from the formulas of docs/design.md §2, not from the Swift code: forward and hand-derived
backward of the text adaptor (ProCLIP's TextProj), the image head, the instance, structure and
contrastive losses, one AdamW step, the logit-scale clamp and the EMA update.

Parameter names and layouts are PyTorch's ([out, in] weights):
  text.text_adaptor.{i}.ln.{weight,bias}, .fn.0.{weight,bias}, .fn.3.{weight,bias}   block i < L
  text.text_adaptor.{L}.{weight,bias}      final LayerNorm
  text.text_adaptor.{L+1}.{weight,bias}    projection
  visual.head.{i}.*                        image head blocks, same pattern
  logit_scale                              log s
"""
import math

import numpy as np

LN_EPS = 1e-5
_erf = np.vectorize(math.erf, otypes=[np.float64])


def normalize(x):
    r = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / r, r


def normalize_backward(dn, n, r):
    return (dn - n * (dn * n).sum(-1, keepdims=True)) / r


def layernorm(x, g, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + LN_EPS)
    xh = (x - mu) * rstd
    return xh * g + b, (xh, rstd)


def layernorm_backward(dy, cache, g):
    xh, rstd = cache
    dxh = dy * g
    dx = rstd * (dxh - dxh.mean(-1, keepdims=True) - xh * (dxh * xh).mean(-1, keepdims=True))
    return dx, (dy * xh).sum(0), dy.sum(0)


def gelu(h):
    return 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)))


def gelu_grad(h):
    cdf = 0.5 * (1.0 + _erf(h / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * h * h) / math.sqrt(2.0 * math.pi)
    return cdf + h * pdf


def block(p, pre, x):
    l, lc = layernorm(x, p[pre + "ln.weight"], p[pre + "ln.bias"])
    h = l @ p[pre + "fn.0.weight"].T + p[pre + "fn.0.bias"]
    a = gelu(h)
    o = a @ p[pre + "fn.3.weight"].T + p[pre + "fn.3.bias"]
    return x + o, (l, lc, h, a)


def block_backward(p, pre, dout, cache, grads):
    l, lc, h, a = cache
    w1, w2 = p[pre + "fn.0.weight"], p[pre + "fn.3.weight"]
    grads[pre + "fn.3.weight"] = dout.T @ a
    grads[pre + "fn.3.bias"] = dout.sum(0)
    dh = (dout @ w2) * gelu_grad(h)
    grads[pre + "fn.0.weight"] = dh.T @ l
    grads[pre + "fn.0.bias"] = dh.sum(0)
    dl = dh @ w1
    dx, dg, db = layernorm_backward(dl, lc, p[pre + "ln.weight"])
    grads[pre + "ln.weight"] = dg
    grads[pre + "ln.bias"] = db
    return dout + dx


def count_blocks(p, prefix):
    n = 0
    while f"{prefix}{n}.fn.0.weight" in p:
        n += 1
    return n


def text_forward(p, e):
    L = count_blocks(p, "text.text_adaptor.")
    x, r0 = normalize(e)
    caches = []
    for i in range(L):
        x, c = block(p, f"text.text_adaptor.{i}.", x)
        caches.append(c)
    lf, lfc = layernorm(x, p[f"text.text_adaptor.{L}.weight"], p[f"text.text_adaptor.{L}.bias"])
    y = lf @ p[f"text.text_adaptor.{L + 1}.weight"].T + p[f"text.text_adaptor.{L + 1}.bias"]
    t, ry = normalize(y)
    return t, (L, caches, lf, lfc, t, ry)


def text_backward(p, dt, cache, grads):
    L, caches, lf, lfc, t, ry = cache
    dy = normalize_backward(dt, t, ry)
    pre = "text.text_adaptor."
    grads[f"{pre}{L + 1}.weight"] = grads.get(f"{pre}{L + 1}.weight", 0) + dy.T @ lf
    grads[f"{pre}{L + 1}.bias"] = grads.get(f"{pre}{L + 1}.bias", 0) + dy.sum(0)
    dlf = dy @ p[f"{pre}{L + 1}.weight"]
    dx, dg, db = layernorm_backward(dlf, lfc, p[f"{pre}{L}.weight"])
    grads[f"{pre}{L}.weight"] = grads.get(f"{pre}{L}.weight", 0) + dg
    grads[f"{pre}{L}.bias"] = grads.get(f"{pre}{L}.bias", 0) + db
    for i in reversed(range(L)):
        local = {}
        dx = block_backward(p, f"{pre}{i}.", dx, caches[i], local)
        for k, v in local.items():
            grads[k] = grads.get(k, 0) + v


def head_forward(p, v, prefix="visual.head."):
    caches = []
    x = v
    for i in range(count_blocks(p, prefix)):
        x, c = block(p, f"{prefix}{i}.", x)
        caches.append(c)
    u, r = normalize(x)
    return u, (caches, u, r)


def head_backward(p, du, cache, grads, prefix="visual.head."):
    caches, u, r = cache
    dx = normalize_backward(du, u, r)
    for i in reversed(range(len(caches))):
        dx = block_backward(p, f"{prefix}{i}.", dx, caches[i], grads)


def loss_ins(a, b):
    d = a - b
    return (d * d).sum(), 2.0 * d


def loss_str(a, b, group):
    """Σ over groups of G consecutive rows, Σ_{i<j} smoothL1_β=1(|a_i−a_j| − |b_i−b_j|)."""
    total = 0.0
    grad = np.zeros_like(a)
    n = a.shape[0]
    for g0 in range(0, n, group):
        for i in range(g0, min(g0 + group, n)):
            for j in range(i + 1, min(g0 + group, n)):
                diff = a[i] - a[j]
                da = math.sqrt((diff * diff).sum())
                db = math.sqrt(((b[i] - b[j]) ** 2).sum())
                delta = da - db
                if abs(delta) < 1.0:
                    total += 0.5 * delta * delta
                    ds = delta
                else:
                    total += abs(delta) - 0.5
                    ds = math.copysign(1.0, delta)
                if da > 0.0:  # the norm's subgradient at coincident points is 0 (as torch.pdist)
                    grad[i] += ds * diff / da
                    grad[j] -= ds * diff / da
    return total, grad


def _log_softmax(z):
    m = z.max(1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(1, keepdims=True))


def loss_clip(u, t, log_scale):
    """½[CE(s·U·Tᵀ, I) + CE(s·T·Uᵀ, I)], mean over rows; grads wrt u, t and log s."""
    s = math.exp(log_scale)
    n = u.shape[0]
    logits = s * (u @ t.T)
    li = _log_softmax(logits)
    lt = _log_softmax(logits.T)
    loss = -0.5 * (np.trace(li) + np.trace(lt)) / n
    eye = np.eye(n)
    dlog = 0.5 / n * ((np.exp(li) - eye) + (np.exp(lt) - eye).T)
    du = s * dlog @ t
    dt = s * dlog.T @ u
    dlogscale = (dlog * logits).sum()
    return loss, du, dt, dlogscale


def phase_loss(p, batch, settings):
    """Returns (losses dict, grads dict, features dict) for one phase on the whole batch."""
    grads = {}
    llm, clip_text, image = batch["llm"], batch["clip_text"], batch["image"]
    if settings["phase"] == "inherit":
        used = sorted(set(settings["ins_variants"]) | set(settings["str_variants"]))
        ins = st = 0.0
        feats = {}
        for v in used:
            t, cache = text_forward(p, llm[:, v])
            c, _ = normalize(clip_text[:, v])
            dt = np.zeros_like(t)
            if v in settings["ins_variants"]:
                l, g = loss_ins(t, c)
                ins += l
                dt += settings["w_ins"] * g
            if v in settings["str_variants"]:
                l, g = loss_str(t, c, settings["group"])
                st += l
                dt += settings["w_str"] * g
            text_backward(p, dt, cache, grads)
            feats.setdefault("feature/text", t)
        losses = {"ins": ins, "str": st, "total": settings["w_ins"] * ins + settings["w_str"] * st}
        return losses, grads, feats
    variant = batch["variant"]
    e = llm[np.arange(llm.shape[0]), variant]
    t, tcache = text_forward(p, e)
    u, ucache = head_forward(p, image)
    teacher_params = {k[len("ema/"):]: v for k, v in p.items() if k.startswith("ema/")}
    vt, _ = head_forward(teacher_params, image)
    lam = settings["lambda"]
    clip, du, dt, dls = loss_clip(u, t, float(p["logit_scale"]))
    sd_ins, gi = loss_ins(u, vt)
    sd_str, gs = loss_str(u, vt, settings["group"])
    du = du + lam * (gi + gs)
    text_backward(p, dt, tcache, grads)
    head_backward(p, du, ucache, grads)
    grads["logit_scale"] = np.array(dls)
    losses = {"clip": clip, "sd_ins": sd_ins, "sd_str": sd_str, "total": clip + lam * (sd_ins + sd_str)}
    return losses, grads, {"feature/text": t, "feature/image": u, "feature/teacher": vt}


def adamw_step(p, grads, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay):
    """torch.optim.AdamW on the parameters that have a gradient; decay on matrices only."""
    b1, b2 = betas
    out = dict(p)
    for name, g in grads.items():
        m = b1 * exp_avg.get(name, 0.0) + (1 - b1) * g
        v = b2 * exp_avg_sq.get(name, 0.0) + (1 - b2) * g * g
        exp_avg[name], exp_avg_sq[name] = m, v
        x = p[name]
        if np.ndim(x) == 2:
            x = x * (1 - lr * weight_decay)
        bc1 = 1 - b1 ** step
        bc2 = 1 - b2 ** step
        out[name] = x - (lr / bc1) * m / (np.sqrt(v) / math.sqrt(bc2) + eps)
    return out
