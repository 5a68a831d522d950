#!/usr/bin/python3
"""Makes lpips's test fixture with /usr/bin/python3 and torch only (not the lpips package).

A reduced AlexNet with torchvision's layout and module indices (features.0, .3, .6, .8, .10) but 8/16/24/16/16
channels instead of 64/192/384/256/256, random weights, and random non-negative lin layers; LPIPS computed as
the lpips package defines it (lpips.LPIPS(net='alex', version='0.1') on uint8 images scaled to [-1, 1]):

  x = (img/127.5 - 1 - shift) / scale        shift (-.030, -.088, -.188), scale (.458, .448, .450)
  relu1..relu5 of the features               (the outputs of features[0:2], [2:5], [5:8], [8:10], [10:12])
  f / (sqrt(sum_c f^2) + 1e-10)              per pixel
  d = sum_k mean_hw( sum_c lin_k[c] * (f0 - f1)^2 )

Run from this directory: /usr/bin/python3 make_lpips_fixture.py
Writes features.pth (torchvision-style state dict with a classifier, zip format), lin.pth (the lin layers named as
the lpips package's weights/v0.1/alex.pth, in the legacy format as that file is), lpips.safetensors (all of them),
pairs of PNG images (a*.png against b*.png) cut from ../../data/photos, and expected.json: the distances in float64
and in float32.
"""
import json
import struct

import numpy as np
import torch
from PIL import Image
from torch import nn

torch.manual_seed(1717)
rng = np.random.default_rng(1717)
CH = [8, 16, 24, 16, 16]
SHIFT = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
SCALE = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)


class AlexNetLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, CH[0], 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(CH[0], CH[1], 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(CH[1], CH[2], 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(CH[2], CH[3], 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(CH[3], CH[4], 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2))
        self.classifier = nn.Linear(4, 2)  # unused by LPIPS, as torchvision's


def relus(features, x):
    out = []
    for i, m in enumerate(features[:12]):  # the last max-pool is not used
        x = m(x)
        if i in (1, 4, 7, 9, 11):
            out.append(x)
    return out


def lpips(net, lins, a, b):
    """a, b: uint8 HWC arrays."""
    def prep(img):
        t = torch.from_numpy(img.astype(np.float64)).permute(2, 0, 1)[None].to(lins[0].dtype)
        return (t / 127.5 - 1 - SHIFT.to(t.dtype)) / SCALE.to(t.dtype)
    fa, fb = relus(net.features, prep(a)), relus(net.features, prep(b))
    total = 0
    for k in range(5):
        na = fa[k] / (torch.sqrt(torch.sum(fa[k] ** 2, dim=1, keepdim=True)) + 1e-10)
        nb = fb[k] / (torch.sqrt(torch.sum(fb[k] ** 2, dim=1, keepdim=True)) + 1e-10)
        d = nn.functional.conv2d((na - nb) ** 2, lins[k])
        total = total + d.mean(dim=[2, 3])
    return float(total.squeeze())


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        b = t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    net = AlexNetLike().eval()
    lins = [torch.rand(1, c, 1, 1) * 20 for c in CH]  # distances of the order of real LPIPS values
    feats = net.state_dict()
    torch.save(feats, "features.pth")
    lin_sd = {"lin%d.model.1.weight" % k: w for k, w in enumerate(lins)}
    torch.save(lin_sd, "lin.pth", _use_new_zipfile_serialization=False)
    allw = {k: v for k, v in feats.items() if k.startswith("features.")}
    allw.update(lin_sd)
    write_safetensors("lpips.safetensors", allw)

    photo = np.asarray(Image.open("../../data/photos/astronaut.png").convert("RGB"))
    pairs = []
    # A crop against a blurred, noisy copy of itself; against a crop 3 px away; a non-square one.
    for i, (y, x, h, w, kind) in enumerate([(100, 180, 64, 64, "degraded"), (40, 250, 48, 72, "moved"), (300, 60, 37, 45, "degraded")]):
        a = photo[y:y + h, x:x + w].copy()
        if kind == "moved":
            b = photo[y + 3:y + 3 + h, x + 1:x + 1 + w].copy()
        else:
            f = a.astype(np.float64)
            f = (f + np.roll(f, 1, 0) + np.roll(f, 1, 1) + np.roll(f, -1, 0)) / 4 + rng.normal(0, 6, f.shape)
            b = np.clip(np.round(f), 0, 255).astype(np.uint8)
        Image.fromarray(a).save("a%d.png" % i)
        Image.fromarray(b).save("b%d.png" % i)
        net64 = AlexNetLike().double().eval()
        net64.load_state_dict({k: v.double() for k, v in feats.items()})
        with torch.no_grad():
            d64 = lpips(net64, [l.double() for l in lins], a, b)
            d32 = lpips(net, lins, a, b)
        pairs.append({"a": "a%d.png" % i, "b": "b%d.png" % i, "lpips_float64": d64, "lpips_float32": d32})
    with open("expected.json", "w") as f:
        json.dump({"channels": CH, "pairs": pairs}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
