#!/usr/bin/env python3
"""Parity of an exported gendr generator (ONNX Runtime CPU) against the PyTorch module.

Rebuilds the PyTorch module from the same export arguments (the seeded random init is
deterministic), runs both on several random inputs and on a real photo (scikit-image's
CC0 'astronaut', downscaled), and prints max / mean absolute error of the [0,1] output.

Also checks that the export's UNet forward (fixed timestep, precomputed time embedding)
matches diffusers' own UNet2DConditionModel.forward.

  python parity.py --onnx gendr-tiny.onnx --random-init tiny
  python parity.py --onnx /tmp/gendr-tiny-fp16.onnx --random-init tiny --precision fp16
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

import export as E


def real_image(h: int, w: int) -> np.ndarray:
    """A real photo as N x 3 x h x w in [0,1]: scikit-image's astronaut (CC0),
    area-downscaled so the LR has real edges and texture."""
    try:
        from skimage import data
        from PIL import Image
        img = Image.fromarray(data.astronaut())
        img = img.resize((w * 4, h * 4), Image.BICUBIC).resize((w, h), Image.BOX)
        a = np.asarray(img, dtype=np.float32) / 255.0
        src = "skimage astronaut"
    except ImportError:  # synthetic fallback: edges, gradients, texture
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        a = np.stack([(xx / w), (yy / h), 0.5 + 0.5 * np.sin(xx * 0.7) * np.cos(yy * 0.4)], -1)
        a[h // 3: 2 * h // 3, w // 4: w // 2] = [0.9, 0.1, 0.2]
        src = "synthetic"
    return a.transpose(2, 0, 1)[None].copy(), src


def check_lora_merge(unet, vae) -> float:
    """Merge a synthetic PEFT-layout LoRA (OSEDiff's checkpoint layout, rank 4, alpha 8)
    through export.split_lora_file / merge_lora and compare each touched module with the
    unmerged computation base(x) + (alpha/r) * B(A(x)). Returns the max abs difference."""
    import copy
    import os
    import tempfile
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(5)
    r, alpha = 4, 8.0
    targets = {"unet": ["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
                        "up_blocks.1.resnets.0.conv1", "conv_in"],
               "vae": ["encoder.down_blocks.0.resnets.0.conv1", "encoder.conv_in"]}
    models = {"unet": copy.deepcopy(unet), "vae": copy.deepcopy(vae)}
    ckpt, refs = {"lora_rank_unet": r, "lora_rank_vae": r}, []
    for which, names in targets.items():
        mods = dict(models[which].named_modules())
        sd = {}
        for name in names:
            m = mods[name]
            if isinstance(m, torch.nn.Linear):
                A = torch.randn(r, m.in_features, generator=g) * 0.1
                B = torch.randn(m.out_features, r, generator=g) * 0.1
                x = torch.randn(3, m.in_features, generator=g)
                want = m(x) + alpha / r * F.linear(F.linear(x, A), B)
            else:
                kh, kw = m.kernel_size
                A = torch.randn(r, m.in_channels, kh, kw, generator=g) * 0.1
                B = torch.randn(m.out_channels, r, 1, 1, generator=g) * 0.1
                x = torch.randn(1, m.in_channels, 12, 12, generator=g)
                want = m(x) + alpha / r * F.conv2d(
                    F.conv2d(x, A, stride=m.stride, padding=m.padding), B)
            sd[f"{name}.lora_A.default_encoder.weight"] = A
            sd[f"{name}.lora_B.default_encoder.weight"] = B
            refs.append((which, name, x, want))
        ckpt[f"state_dict_{which}"] = sd
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "lora.pkl")
        torch.save(ckpt, path)
        usd, vsd, _ = E.split_lora_file(E.Path(path))
    assert E.merge_lora(models["unet"], usd, alpha, None) == 3
    assert E.merge_lora(models["vae"], vsd, alpha, None) == 2
    worst = 0.0
    for which, name, x, want in refs:
        got = dict(models[which].named_modules())[name](x)
        worst = max(worst, float((got - want).abs().max()))
    return worst


def ort_session(path: str, threads: int):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--onnx", required=True)
    p.add_argument("--random-init", choices=["tiny", "full"], default="tiny")
    p.add_argument("--family", choices=sorted(E.FAMILIES), default="gendr")
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tol", type=float, default=1e-3, help="max abs error allowed (fp32)")
    p.add_argument("--json", help="write the results here too")
    a = p.parse_args(argv)
    torch.set_grad_enabled(False)
    torch.set_num_threads(a.threads)

    ns = argparse.Namespace(family=a.family, random_init=a.random_init, arch=a.random_init, base=None, unet=None,
                            vae=None, prompt_embedding=None, lora=None, lora_alpha=None,
                            lora_scale=None, scheduler_config=None, timestep=None,
                            alpha_bar=None, vae_scaling_factor=None, prediction="epsilon", precision="fp32",
                            seed=a.seed, tile_size=None, min_overlap=None, name=None,
                            license=None)
    ref, meta = E.build(ns)  # the fp32 PyTorch module is the reference for both precisions

    res = {"onnx": a.onnx, "precision": a.precision, "cases": []}

    # 1. the export's UNet forward == diffusers' UNet2DConditionModel.forward
    g = torch.Generator().manual_seed(123)
    z = torch.randn(2, ref.latent_channels, 16, 24, generator=g)
    mine = E.unet_forward(ref.unet, z, ref.temb.expand(2, -1), ref.prompt.expand(2, -1, -1))
    theirs = ref.unet(z, ref.timestep, encoder_hidden_states=ref.prompt.expand(2, -1, -1)).sample
    res["unet_forward_vs_diffusers_max_abs"] = float((mine - theirs).abs().max())

    # 2. LoRA merging (OSEDiff route) on synthetic LoRA weights
    res["lora_merge_max_abs"] = check_lora_merge(ref.unet, ref.vae)

    # 3. ONNX vs PyTorch
    sess = ort_session(a.onnx, a.threads)
    io = np.float16 if a.precision == "fp16" else np.float32
    rng = np.random.default_rng(a.seed + 7)
    cases = [("random", (1, 3, 64, 64)), ("random", (2, 3, 48, 64)), ("random", (1, 3, 30, 26)),
             ("random", (1, 3, 16, 16)), ("real", (1, 3, 64, 64)), ("real", (1, 3, 48, 80))]
    worst = 0.0
    for kind, shape in cases:
        if kind == "random":
            x = rng.random(shape, dtype=np.float32)
            src = "uniform noise"
        else:
            x, src = real_image(shape[2], shape[3])
        want = ref(torch.from_numpy(x)).numpy()
        got = sess.run(None, {"lr": x.astype(io)})[0].astype(np.float32)
        assert got.shape == want.shape, (got.shape, want.shape)
        d = np.abs(got - want)
        inside = (want > 1e-4) & (want < 1 - 1e-4)
        c = {"input": src, "shape": list(shape), "max_abs": float(d.max()),
             "mean_abs": float(d.mean()),
             "unclamped_fraction": float(inside.mean()),
             "out_mean": float(want.mean()), "out_std": float(want.std())}
        res["cases"].append(c)
        worst = max(worst, c["max_abs"])
    res["max_abs"] = worst

    res["threads"] = a.threads
    res["params"] = int(meta["gendr.params"])

    ok = res["unet_forward_vs_diffusers_max_abs"] <= 1e-4 and res["lora_merge_max_abs"] <= 1e-4 and (a.precision == "fp16" or worst <= a.tol)
    res["pass"] = bool(ok)
    txt = json.dumps(res, indent=1)
    print(txt)
    if a.json:
        with open(a.json, "w") as f:
            f.write(txt + "\n")
    for c in res["cases"]:
        print(f"{a.precision} {c['input']:>18} {str(c['shape']):>18}: max {c['max_abs']:.2e} "
              f"mean {c['mean_abs']:.2e} (unclamped {100 * c['unclamped_fraction']:.0f}%)",
              file=sys.stderr)
    print(f"{'PASS' if ok else 'FAIL'}: max abs {worst:.3g} (tol {a.tol:g}"
          f"{', fp16: measured only' if a.precision == 'fp16' else ''}); UNet forward vs diffusers "
          f"{res['unet_forward_vs_diffusers_max_abs']:.2g}, LoRA merge "
          f"{res['lora_merge_max_abs']:.2g}", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
