#!/usr/bin/env python3
"""Exercise the real-weights interface of export.py without real weights.

Saves the seeded tiny random weights the way released weights come (a diffusers pipeline
folder with unet/ vae/ scheduler/; single .safetensors files; the prompt embedding as
.safetensors, .pt and .npy), exports each through --base / --unet --vae /
--prompt-embedding, and checks that ONNX Runtime gives the same output as the committed
gendr-tiny.onnx (same weights, so any difference is a loading bug).
Also exports the OSEDiff family (tiny, timestep 999, abar from the scheduler config)
and checks its contract shape.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import export as E


def run(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, {"lr": x})[0]


def main():
    here = Path(__file__).resolve().parent
    torch.set_grad_enabled(False)
    ns = dict(family="gendr", random_init="tiny", arch="tiny", base=None, unet=None, vae=None,
              prompt_embedding=None, lora=None, lora_alpha=None, lora_scale=None,
              scheduler_config=None, timestep=None, alpha_bar=None, vae_scaling_factor=None, prediction="epsilon",
              precision="fp32", seed=0, tile_size=None, min_overlap=None, name=None, license=None)
    model, meta = E.build(argparse.Namespace(**ns))
    x = np.random.default_rng(3).random((1, 3, 32, 48), dtype=np.float32)
    want = run(here / "gendr-tiny.onnx", x)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        base = t / "pipe"
        model.unet.save_pretrained(base / "unet")
        model.vae.save_pretrained(base / "vae")
        (base / "scheduler").mkdir(parents=True)
        (base / "scheduler" / "scheduler_config.json").write_text(json.dumps(
            {"_class_name": "DDPMScheduler", **E.SD21_SCHEDULE}))
        from safetensors.torch import save_file
        pe = model.prompt.float().contiguous()
        save_file({"prompt_embeds": pe}, str(t / "prompt.safetensors"))
        torch.save(pe[0], t / "prompt.pt")
        np.save(t / "prompt.npy", pe.numpy())
        save_file({f"unet.{k}": v.contiguous() for k, v in model.unet.state_dict().items()},
                  str(t / "unet.safetensors"))
        save_file(dict(model.vae.state_dict()), str(t / "vae.safetensors"))

        common = ["--family", "gendr", "--timestep", meta["gendr.timestep"]]
        variants = {
            "base-folder + prompt.safetensors": ["--base", str(base), "--prompt-embedding", str(t / "prompt.safetensors")],
            "unet/vae folders + prompt.pt": ["--unet", str(base / "unet"), "--vae", str(base / "vae"),
                                            "--prompt-embedding", str(t / "prompt.pt")],
        }
        for name, extra in variants.items():
            out = t / "m.onnx"
            E.main(common + extra + ["--out", str(out)])
            results[name] = float(np.abs(run(out, x) - want).max())
        # single .safetensors files carry no config: --arch names the layout
        E.main(common + ["--arch", "tiny", "--unet", str(t / "unet.safetensors"),
                         "--vae", str(t / "vae.safetensors"),
                         "--prompt-embedding", str(t / "prompt.npy"), "--out", str(t / "s.onnx")])
        results["single safetensors (--arch tiny) + prompt.npy"] = float(np.abs(run(t / "s.onnx", x) - want).max())

        out = t / "osediff-tiny.onnx"
        E.main(["--family", "osediff", "--random-init", "tiny", "--out", str(out)])
        y = run(out, x)
        import onnx
        md = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
        results["osediff tiny"] = {"out_shape": list(y.shape), "timestep": md["gendr.timestep"],
                                   "alpha_bar": md["gendr.alpha_bar"],
                                   "latent_channels": md["gendr.latent_channels"],
                                   "in_range": bool((y >= 0).all() and (y <= 1).all())}
    print(json.dumps(results, indent=1))
    ok = all(v <= 1e-6 for v in results.values() if isinstance(v, float)) and \
        results["osediff tiny"]["out_shape"] == [1, 3, 128, 192]
    print("PASS" if ok else "FAIL", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
