#!/usr/bin/env python3
"""Export a one-step diffusion SR generator (GenDR, or the OSEDiff family) to ONE ONNX graph.

The graph keeps the gendr model contract (models/README.md):

    lr  N x 3 x H x W  RGB [0,1]  (H, W even)
      -> bicubic x4, clamp [0,1], map to [-1,1]
      -> VAE encoder, latent mean (minus shift) x scaling factor        = z
      -> UNet(z, fixed timestep t, fixed 77x1024 prompt embedding)      = eps
      -> x0 = (z - sqrt(1 - abar) * eps) / sqrt(abar)
      -> VAE decoder (x0 / scaling factor + shift)
      -> map to [0,1], clamp
    sr  N x 3 x 4H x 4W  RGB [0,1]

Weight sources (exactly one family of options):
  --random-init tiny|full     seeded random weights (tiny: small widths, same topology)
  --base DIR                  a local diffusers pipeline folder (unet/, vae/, scheduler/)
  --unet PATH --vae PATH      local diffusers model folders, or single .safetensors files
                              with diffusers key names (the config then comes from the
                              family's reference layout, --arch, with the latent channel
                              count taken from the weights)
  --lora FILE                 LoRA to merge (PEFT key layout, e.g. OSEDiff's osediff.pkl or
                              a safetensors with unet./vae. prefixes)
Nothing is ever downloaded: every path is local.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SCALE = 4          # output / input
LATENT_DOWN = 8    # VAE spatial factor

# --------------------------------------------------------------------------------------
# Reference configurations
# --------------------------------------------------------------------------------------

# SD2.1 noise schedule (scaled_linear, 1000 steps): used for abar(t) when no scheduler
# folder is given.
SD21_SCHEDULE = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
                 "num_train_timesteps": 1000}


def unet_config(size: str, latent_channels: int, upcast_attention: bool) -> dict:
    """SD2.1 UNet2DConditionModel topology ('full') or the same topology at small widths ('tiny')."""
    base = {
        "in_channels": latent_channels,
        "out_channels": latent_channels,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                             "CrossAttnDownBlock2D", "DownBlock2D"],
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                           "CrossAttnUpBlock2D"],
        "cross_attention_dim": 1024,
        "use_linear_projection": True,
        "upcast_attention": upcast_attention,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "act_fn": "silu",
        "norm_eps": 1e-5,
        "downsample_padding": 1,
    }
    if size == "full":
        # stable-diffusion-2-1 unet/config.json (the legacy 'attention_head_dim' list
        # is the number of heads per block: head dim 64)
        base.update(block_out_channels=[320, 640, 1280, 1280], layers_per_block=2,
                    attention_head_dim=[5, 10, 20, 20], norm_num_groups=32, sample_size=64)
    elif size == "tiny":
        # head dim 16 everywhere; ~2.2M parameters with the VAE, ~9 MB of fp32
        base.update(block_out_channels=[32, 32, 48, 48], layers_per_block=1,
                    attention_head_dim=[2, 2, 3, 3], norm_num_groups=8, sample_size=8)
    else:
        raise ValueError(size)
    return base


def vae_config(size: str, latent_channels: int) -> dict:
    """f8 AutoencoderKL: vae-kl-f8-d16 layout ([128,128,256,512], 16 latent channels) for
    'full'; the same topology at small widths for 'tiny'."""
    base = {
        "in_channels": 3, "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "latent_channels": latent_channels,
        "act_fn": "silu",
        "scaling_factor": 0.18215,
        "force_upcast": True,
    }
    if size == "full":
        base.update(block_out_channels=[128, 128, 256, 512], layers_per_block=2,
                    norm_num_groups=32, sample_size=512)
    elif size == "tiny":
        base.update(block_out_channels=[16, 16, 32, 32], layers_per_block=1,
                    norm_num_groups=8, sample_size=64)
    else:
        raise ValueError(size)
    return base


FAMILIES = {
    # GenDR: SD2.1 UNet on a 16-channel VAE, fixed abar = 0.5.  The UNet timestep is not
    # published; by default it is the SD2.1-schedule step whose abar is closest to 0.5
    # (override with --timestep once GenDR's code is out).
    "gendr": {"latent_channels": 16, "alpha_bar": 0.5, "timestep": None,
              "upcast_attention": False, "license": "MIT (random weights)"},
    # OSEDiff: SD2.1-base + LoRA, 4-channel VAE, eps-prediction at t = 999 with the
    # scheduler's abar_999.
    "osediff": {"latent_channels": 4, "alpha_bar": None, "timestep": 999,
                "upcast_attention": False, "license": "Apache-2.0 (random weights)"},
}


def alphas_cumprod(sched: dict) -> np.ndarray:
    n = int(sched.get("num_train_timesteps", 1000))
    kind = sched.get("beta_schedule", "scaled_linear")
    b0, b1 = float(sched.get("beta_start", 0.00085)), float(sched.get("beta_end", 0.012))
    if kind == "scaled_linear":
        betas = np.linspace(b0 ** 0.5, b1 ** 0.5, n, dtype=np.float64) ** 2
    elif kind == "linear":
        betas = np.linspace(b0, b1, n, dtype=np.float64)
    else:
        raise SystemExit(f"unsupported beta_schedule {kind!r}; pass --alpha-bar explicitly")
    # diffusers computes the schedule in float32; follow it so abar matches the scheduler
    betas = betas.astype(np.float32)
    return np.cumprod(1.0 - betas, dtype=np.float32)


# --------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------

class OneStepSR(nn.Module):
    """LR RGB [0,1] -> 4x SR RGB [0,1] in one UNet pass. Everything but the input is fixed."""

    def __init__(self, unet, vae, prompt_embedding: torch.Tensor, timestep: int,
                 alpha_bar: float, unet_dtype: torch.dtype = torch.float32,
                 io_dtype: torch.dtype = torch.float32, prediction: str = "epsilon"):
        super().__init__()
        self.prediction = prediction
        self.unet = unet
        self.vae = vae
        self.unet_dtype = unet_dtype
        self.io_dtype = io_dtype
        self.timestep = int(timestep)
        self.alpha_bar = float(alpha_bar)
        self.sqrt_ab = math.sqrt(alpha_bar)
        self.sqrt_1mab = math.sqrt(1.0 - alpha_bar)
        cfg = vae.config
        self.scaling = float(cfg.scaling_factor)
        self.shift = float(cfg.shift_factor) if getattr(cfg, "shift_factor", None) is not None else 0.0
        self.latent_channels = int(cfg.latent_channels)
        # the UNet halves the latent once per downsampling block (3 times for SD: 8)
        self.unet_mult = 2 ** sum(1 for b in unet.down_blocks if getattr(b, "downsamplers", None))
        pe = prompt_embedding.reshape(1, 77, -1)
        self.register_buffer("prompt", pe.to(unet_dtype), persistent=False)
        # The timestep embedding is a constant: compute it once, in float32, here.
        with torch.no_grad():
            t = torch.tensor([self.timestep], dtype=torch.long)
            temb = unet.time_proj(t).to(torch.float32)
            temb = unet.time_embedding(temb.to(next(unet.parameters()).dtype))
        self.register_buffer("temb", temb.detach().to(unet_dtype), persistent=False)

    # -- pieces -------------------------------------------------------------------------
    def encode(self, lr: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(lr, scale_factor=SCALE, mode="bicubic", align_corners=False)
        x = x.clamp(0.0, 1.0) * 2.0 - 1.0
        h = self.vae.encoder(x)
        if self.vae.quant_conv is not None:
            h = self.vae.quant_conv(h)
        mean = h[:, : self.latent_channels]
        return (mean - self.shift) * self.scaling

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        z = z / self.scaling + self.shift
        if self.vae.post_quant_conv is not None:
            z = self.vae.post_quant_conv(z)
        x = self.vae.decoder(z)
        return ((x + 1.0) * 0.5).clamp(0.0, 1.0)

    def eps(self, z: torch.Tensor) -> torch.Tensor:
        """UNet noise prediction at the fixed timestep. The latent is replicate-padded to a
        multiple of 8 so that any even input size works, then cropped back."""
        h, w = z.shape[-2], z.shape[-1]
        ph = (self.unet_mult - h % self.unet_mult) % self.unet_mult
        pw = (self.unet_mult - w % self.unet_mult) % self.unet_mult
        zp = F.pad(z, (0, pw, 0, ph), mode="replicate")
        n = zp.shape[0]
        ehs = self.prompt.expand(n, -1, -1)
        temb = self.temb.expand(n, -1)
        e = unet_forward(self.unet, zp.to(self.unet_dtype), temb, ehs)
        return e[:, :, :h, :w].to(z.dtype)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        lr = lr.to(torch.float32)
        z = self.encode(lr)
        e = self.eps(z)
        if self.prediction == "epsilon":
            x0 = (z - self.sqrt_1mab * e) / self.sqrt_ab
        elif self.prediction == "v_prediction":
            x0 = self.sqrt_ab * z - self.sqrt_1mab * e
        else:  # "sample": the UNet predicts x0 directly
            x0 = e
        return self.decode(x0).to(self.io_dtype)


def unet_forward(unet, sample, temb, ehs):
    """diffusers UNet2DConditionModel's forward for the SD layout, with a precomputed time
    embedding and no data-dependent branches (the input is always a multiple of 8)."""
    h = unet.conv_in(sample)
    skips = [h]
    for blk in unet.down_blocks:
        if getattr(blk, "has_cross_attention", False):
            h, res = blk(hidden_states=h, temb=temb, encoder_hidden_states=ehs)
        else:
            h, res = blk(hidden_states=h, temb=temb)
        skips.extend(res)
    h = unet.mid_block(h, temb, encoder_hidden_states=ehs)
    for blk in unet.up_blocks:
        k = len(blk.resnets)
        res, skips = tuple(skips[-k:]), skips[:-k]
        if getattr(blk, "has_cross_attention", False):
            h = blk(hidden_states=h, res_hidden_states_tuple=res, temb=temb,
                    encoder_hidden_states=ehs)
        else:
            h = blk(hidden_states=h, res_hidden_states_tuple=res, temb=temb)
    if unet.conv_norm_out is not None:
        h = unet.conv_act(unet.conv_norm_out(h))
    return unet.conv_out(h)


# --------------------------------------------------------------------------------------
# Loading weights
# --------------------------------------------------------------------------------------

def load_state_file(path: Path) -> dict:
    s = str(path)
    if s.endswith(".safetensors"):
        from safetensors.torch import load_file
        return load_file(s)
    if s.endswith(".npy"):
        return {"tensor": torch.from_numpy(np.load(s))}
    if s.endswith(".npz"):
        z = np.load(s)
        return {k: torch.from_numpy(z[k]) for k in z.files}
    obj = torch.load(s, map_location="cpu", weights_only=True)
    if isinstance(obj, torch.Tensor):
        return {"tensor": obj}
    return obj


def strip_prefix(sd: dict, prefixes) -> dict:
    for p in prefixes:
        if sd and all(k.startswith(p) for k in sd):
            return {k[len(p):]: v for k, v in sd.items()}
    return sd


def load_unet(path: Path, size_cfg: dict):
    from diffusers import UNet2DConditionModel
    if path.is_dir():
        return UNet2DConditionModel.from_pretrained(str(path), local_files_only=True).float().eval()
    sd = strip_prefix(load_state_file(path), ["unet.", "model.diffusion_model."])
    cfg = dict(size_cfg)
    ch = sd["conv_in.weight"].shape[1]
    cfg["in_channels"] = cfg["out_channels"] = int(ch)
    unet = UNet2DConditionModel(**cfg)
    unet.load_state_dict(sd, strict=True)
    return unet.float().eval()


def load_vae(path: Path, size_cfg: dict):
    from diffusers import AutoencoderKL
    if path.is_dir():
        return AutoencoderKL.from_pretrained(str(path), local_files_only=True).float().eval()
    sd = strip_prefix(load_state_file(path), ["vae.", "first_stage_model."])
    cfg = dict(size_cfg)
    cfg["latent_channels"] = int(sd["post_quant_conv.weight"].shape[1])
    vae = AutoencoderKL(**cfg)
    vae.load_state_dict(sd, strict=True)
    return vae.float().eval()


def load_prompt_embedding(path: Path) -> torch.Tensor:
    sd = load_state_file(path)
    if isinstance(sd, dict):
        for k in ("prompt_embeds", "prompt_embedding", "embedding", "tensor"):
            if k in sd:
                t = sd[k]
                break
        else:
            tensors = [v for v in sd.values() if isinstance(v, torch.Tensor)]
            if len(tensors) != 1:
                raise SystemExit(f"{path}: expected one tensor, found keys {list(sd)[:8]}")
            t = tensors[0]
    else:
        t = sd
    t = torch.as_tensor(t).float()
    if t.numel() != 77 * t.shape[-1] or t.shape[-1] != 1024:
        raise SystemExit(f"{path}: prompt embedding must be 77x1024, got {tuple(t.shape)}")
    return t.reshape(1, 77, 1024)


def merge_lora(model: nn.Module, sd: dict, alpha: float | None, scale: float | None) -> int:
    """Merge PEFT-layout LoRA weights (`<module>.lora_A[.<adapter>].weight`,
    `<module>.lora_B[.<adapter>].weight`; kohya's lora_down/lora_up also accepted) into the
    base modules in place. Plain weights (e.g. OSEDiff's trained conv_in, or
    `<module>.base_layer.weight`) are copied first. delta = (alpha / r) * B @ A, with
    alpha = r (scale 1) unless given. Returns the number of LoRA pairs merged."""
    mods = dict(model.named_modules())
    params = dict(model.named_parameters())
    tags = ("lora_A", "lora_B", "lora_down", "lora_up")
    pairs: dict[tuple, dict] = {}
    plain = {}
    for k, v in sd.items():
        parts = k.split(".")
        hit = [j for j, p in enumerate(parts) if p in tags]
        if hit:
            i = hit[0]
            key = (".".join(parts[:i]), ".".join(p for p in parts[i + 1:] if p != "weight"))
            pairs.setdefault(key, {})["A" if parts[i] in ("lora_A", "lora_down") else "B"] = v
        elif k.endswith(".alpha"):
            continue
        else:
            plain[k.replace(".base_layer.", ".")] = v
    n = 0
    with torch.no_grad():
        for k, v in plain.items():
            if k not in params:
                raise SystemExit(f"weight {k!r} does not match the model")
            params[k].copy_(v.to(params[k].dtype))
        for (mod_name, adapter), ab in pairs.items():
            if mod_name not in mods or "A" not in ab or "B" not in ab:
                raise SystemExit(f"LoRA {mod_name!r} ({adapter or 'no adapter name'}) does not "
                                 "match the model or lacks its A/B half")
            m = mods[mod_name]
            A, B = ab["A"].float(), ab["B"].float()
            r = A.shape[0]
            s = scale if scale is not None else ((alpha if alpha is not None else r) / r)
            W = m.weight
            # Linear: B (out x r) @ A (r x in). Conv: A is the k x k conv (in -> r), B the
            # 1x1 conv (r -> out); their composition is one k x k conv.
            delta = (B.reshape(B.shape[0], r) @ A.reshape(r, -1)).reshape(W.shape)
            W.add_((s * delta).to(W.dtype))
            n += 1
    return n


def split_lora_file(path: Path) -> tuple[dict, dict, dict]:
    """Returns (unet_sd, vae_sd, info). Accepts OSEDiff's checkpoint layout (a dict with
    state_dict_unet / state_dict_vae / lora_rank_unet / lora_rank_vae) or a flat state
    dict whose keys start with unet. / vae."""
    sd = load_state_file(path)
    info = {}
    if "state_dict_unet" in sd or "state_dict_vae" in sd:
        for k in ("lora_rank_unet", "lora_rank_vae"):
            if k in sd:
                info[k] = int(sd[k])
        return dict(sd.get("state_dict_unet", {})), dict(sd.get("state_dict_vae", {})), info
    u = {k[5:]: v for k, v in sd.items() if k.startswith("unet.")}
    v = {k[4:]: t for k, t in sd.items() if k.startswith("vae.")}
    if len(u) + len(v) != len(sd):
        raise SystemExit(f"{path}: keys must start with unet. or vae. (or use OSEDiff's layout)")
    return u, v, info


# --------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------

def build(args) -> tuple[OneStepSR, dict]:
    fam = FAMILIES[args.family]
    size = args.random_init or "full"
    lc = fam["latent_channels"]
    sched = dict(SD21_SCHEDULE)
    unet_dir = Path(args.base) / "unet" if args.base else None
    vae_dir = Path(args.base) / "vae" if args.base else None
    if args.base and (Path(args.base) / "scheduler" / "scheduler_config.json").exists():
        sched.update(json.loads((Path(args.base) / "scheduler" / "scheduler_config.json").read_text()))
    if args.scheduler_config:
        sched.update(json.loads(Path(args.scheduler_config).read_text()))
    unet_src = Path(args.unet) if args.unet else unet_dir
    vae_src = Path(args.vae) if args.vae else vae_dir

    torch.manual_seed(args.seed)
    if args.random_init:
        from diffusers import AutoencoderKL, UNet2DConditionModel
        unet = UNet2DConditionModel(**unet_config(size, lc, fam["upcast_attention"])).float().eval()
        vae = AutoencoderKL(**vae_config(size, lc)).float().eval()
        source = f"random-init ({size}, seed {args.seed}); models/gendr/export.py"
    else:
        if unet_src is None or vae_src is None:
            raise SystemExit("give --random-init, or --base DIR, or both --unet and --vae")
        # single-file weights carry no config: use the family's reference layout
        unet = load_unet(unet_src, unet_config(args.arch, lc, fam["upcast_attention"]))
        vae = load_vae(vae_src, vae_config(args.arch, lc))
        source = f"unet={unet_src.name}, vae={vae_src.name}"
    if int(unet.config.in_channels) != int(vae.config.latent_channels):
        raise SystemExit(f"UNet takes {unet.config.in_channels} channels, VAE makes "
                         f"{vae.config.latent_channels}")
    if int(unet.config.cross_attention_dim) != 1024:
        raise SystemExit("the UNet's cross_attention_dim must be 1024")
    for key in ("class_embed_type", "addition_embed_type", "time_cond_proj_dim", "encoder_hid_dim"):
        if getattr(unet.config, key, None) is not None:
            raise SystemExit(f"UNet config sets {key}: only the SD2.1 layout is supported")
    if args.vae_scaling_factor is not None:
        vae.register_to_config(scaling_factor=args.vae_scaling_factor)

    if args.lora:
        usd, vsd, info = split_lora_file(Path(args.lora))
        alpha = args.lora_alpha
        if alpha is None and args.family == "osediff":
            alpha = 8.0  # OSEDiff builds its LoraConfig without lora_alpha: peft's default 8
        nu = merge_lora(unet, usd, alpha, args.lora_scale)
        nv = merge_lora(vae, vsd, alpha, args.lora_scale)
        print(f"merged LoRA: {nu} UNet and {nv} VAE module pairs {info}", file=sys.stderr)
        source += f", lora={Path(args.lora).name}"

    if args.prompt_embedding:
        prompt = load_prompt_embedding(Path(args.prompt_embedding))
        source += f", prompt={Path(args.prompt_embedding).name}"
    else:
        if not args.random_init:
            raise SystemExit("--prompt-embedding is required with real weights")
        g = torch.Generator().manual_seed(args.seed + 1)
        prompt = torch.randn(1, 77, 1024, generator=g)

    ac = alphas_cumprod(sched)
    timestep = args.timestep if args.timestep is not None else fam["timestep"]
    alpha_bar = args.alpha_bar if args.alpha_bar is not None else fam["alpha_bar"]
    if timestep is None:
        timestep = int(np.argmin(np.abs(ac - alpha_bar)))
    if alpha_bar is None:
        alpha_bar = float(ac[timestep])

    half = args.precision == "fp16"
    if half:
        unet = unet.half()
    model = OneStepSR(unet, vae, prompt, timestep, alpha_bar,
                      unet_dtype=torch.float16 if half else torch.float32,
                      io_dtype=torch.float16 if half else torch.float32,
                      prediction=args.prediction).eval()
    n_params = sum(p.numel() for p in unet.parameters()) + sum(p.numel() for p in vae.parameters())
    tiny = args.random_init == "tiny"
    meta = {
        "gendr.scale": "4",
        "gendr.tile_multiple": "2",
        "gendr.tile_size": str(args.tile_size or (64 if tiny else 128)),
        "gendr.min_overlap": str(args.min_overlap or (8 if tiny else 16)),
        "gendr.precision": args.precision,
        "gendr.name": args.name or (f"{args.family}-{size}" if args.random_init else args.family),
        "gendr.license": args.license or (fam["license"] if args.random_init else "see the weights' licence"),
        "gendr.source": source,
        "gendr.family": args.family,
        "gendr.alpha_bar": f"{alpha_bar:.9g}",
        "gendr.timestep": str(timestep),
        "gendr.prediction": args.prediction,
        "gendr.latent_channels": str(vae.config.latent_channels),
        "gendr.vae_scaling_factor": f"{float(vae.config.scaling_factor):.9g}",
        "gendr.params": str(n_params),
        "gendr.compute": "unet fp16, vae fp32" if half else "fp32",
    }
    return model, meta


def export_onnx(model: OneStepSR, meta: dict, out: Path, opset: int, external_data: bool,
                example_hw=(64, 64)):
    import onnx
    dtype = model.io_dtype
    x = torch.rand(1, 3, *example_hw, generator=torch.Generator().manual_seed(0)).to(dtype)
    out.parent.mkdir(parents=True, exist_ok=True)
    for p in (out, Path(str(out) + ".data")):
        if p.exists():
            p.unlink()
    # TorchScript exporter: traces once with sizes kept symbolic (the pad arithmetic in
    # OneStepSR.eps stays in the graph); deterministic output. It writes >2 GB models as
    # one file per tensor, so export into a scratch folder and re-save from there.
    import tempfile
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".export-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        with torch.no_grad():
            torch.onnx.export(
                model, (x,), str(raw), dynamo=False, opset_version=opset,
                input_names=["lr"], output_names=["sr"],
                dynamic_axes={"lr": {0: "N", 2: "H", 3: "W"}, "sr": {0: "N", 2: "H4", 3: "W4"}},
                do_constant_folding=True,
            )
        m = onnx.load(str(raw), load_external_data=True)
    del m.metadata_props[:]
    for k, v in meta.items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    m.producer_name = "gendr models/gendr/export.py"
    m.producer_version = "1"
    m.doc_string = ("One-step diffusion 4x SR (GenDR layout): bicubic x4 -> VAE encode -> "
                    "UNet at a fixed timestep with a fixed prompt embedding -> x0 -> VAE decode.")
    if external_data:
        onnx.save_model(m, str(out), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=out.name + ".data", size_threshold=1024)
    else:
        onnx.save_model(m, str(out))
    return m


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", choices=sorted(FAMILIES), default="gendr")
    p.add_argument("--random-init", choices=["tiny", "full"])
    p.add_argument("--base", help="local diffusers pipeline folder (unet/, vae/, scheduler/)")
    p.add_argument("--unet", help="UNet: diffusers folder or .safetensors")
    p.add_argument("--vae", help="VAE: diffusers folder or .safetensors")
    p.add_argument("--arch", choices=["full", "tiny"], default="full",
                   help="layout assumed for single-file .safetensors weights (folders bring "
                        "their own config.json): full = SD2.1 UNet + VAE [128,128,256,512]")
    p.add_argument("--prompt-embedding", help="77x1024 embedding: .safetensors, .pt or .npy")
    p.add_argument("--lora", help="LoRA to merge (OSEDiff .pkl/.pt layout, or safetensors with unet./vae. keys)")
    p.add_argument("--lora-alpha", type=float, default=None,
                   help="LoRA alpha (scale = alpha / rank); default: 8 for --family osediff "
                        "(peft's default, which OSEDiff keeps), else the rank (scale 1)")
    p.add_argument("--lora-scale", type=float, default=None, help="explicit LoRA scale, overrides alpha")
    p.add_argument("--scheduler-config", help="scheduler_config.json for abar(t)")
    p.add_argument("--timestep", type=int, default=None)
    p.add_argument("--alpha-bar", type=float, default=None)
    p.add_argument("--prediction", choices=["epsilon", "v_prediction", "sample"], default="epsilon",
                   help="what the UNet predicts; epsilon: x0 = (z - sqrt(1-abar) eps) / sqrt(abar)")
    p.add_argument("--vae-scaling-factor", type=float, default=None)
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32",
                   help="fp16: fp16 input/output and UNet, VAE kept fp32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--tile-size", type=int, default=None)
    p.add_argument("--min-overlap", type=int, default=None)
    p.add_argument("--name")
    p.add_argument("--license")
    p.add_argument("--external-data", choices=["auto", "yes", "no"], default="auto")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    torch.set_grad_enabled(False)
    import warnings
    # tracer notes about shape checks inside diffusers (batch >= 64, int32 index limits)
    # and the exporter's constant-folding notes: expected, and checked by parity.py
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    warnings.filterwarnings("ignore", message=".*[Cc]onstant folding.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    model, meta = build(args)
    n = int(meta["gendr.params"])
    ext = args.external_data == "yes" or (args.external_data == "auto" and n * 4 > 1_500_000_000)
    export_onnx(model, meta, Path(args.out), args.opset, ext)
    print(json.dumps({"out": args.out, "params": n, "external_data": ext, **meta}, indent=1))


if __name__ == "__main__":
    main()
