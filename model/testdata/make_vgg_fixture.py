#!/usr/bin/python3
"""Makes model's VGG19 test fixture with /usr/bin/python3 and torch only (Debian's python3-torch 1.13; not
torchvision, which builds the same layout).

A reduced VGG19: torchvision's vgg19().features layout and module indices (convs at 0, 2, 5, 7, 10, 12, 14, 16, 19,
21, 23, 25, 28, 30, 32, 34, ReLU after each, 2x2 max-pools at 4, 9, 18, 27, 36) with 4/4, 6/6, 8 x 4, 8 x 4, 8 x 4
channels instead of 64/64, 128/128, 256 x 4, 512 x 4, 512 x 4, random weights, and a small classifier (which the
perceptual loss ignores, as torchvision's state dict has one). The perceptual features are BasicSR's
VGGFeatureExtractor(layer_name_list=['conv5_4'], vgg_type='vgg19', use_input_norm=True, range_norm=False): the
input in [0,1] normalised with the ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225), then
features[:35], the output of conv5_4 before its ReLU. The perceptual loss is the L1 (mean absolute difference) of
two images' features.

Run from this directory: /usr/bin/python3 make_vgg_fixture.py
Writes vgg19_small.pth (the state dict with features.* and classifier.*, zip format), vgg19_small.safetensors (the
same tensors) and vgg19_small.io.safetensors: two 32x32 images cut from ../../data/photos (x and y, [0,1] RGB), the
features of x (float64) and the perceptual loss between x and y (float64).
"""
import json
import struct

import numpy as np
import torch
from PIL import Image
from torch import nn

torch.manual_seed(1919)
CFG = [4, 4, "M", 6, 6, "M", 8, 8, 8, 8, "M", 8, 8, 8, 8, "M", 8, 8, 8, 8, "M"]
MEAN = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)


class VGG(nn.Module):
    def __init__(self):
        super().__init__()
        layers, c = [], 3
        for v in CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(c, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(8, 4), nn.ReLU(True), nn.Linear(4, 2))


def write_safetensors(path, tensors, dtype):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        if dtype == "F64":
            b = t.detach().to(torch.float64).contiguous().numpy().astype("<f8").tobytes()
        else:
            b = t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def crop(name, x, y):
    img = np.asarray(Image.open("../../data/photos/" + name).convert("RGB"))[y:y + 32, x:x + 32]
    return torch.from_numpy(img.astype(np.float64) / 255).permute(2, 0, 1)[None]


def main():
    net = VGG()
    with torch.no_grad():
        for m in net.features:
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0, (2.0 / (m.in_channels * 9)) ** 0.5)
                m.bias.normal_(0, 0.1)
    sd = net.state_dict()
    torch.save(sd, "vgg19_small.pth")
    write_safetensors("vgg19_small.safetensors", sd, "F32")
    photos = sorted(p for p in __import__("os").listdir("../../data/photos") if p.endswith((".png", ".jpg")))
    x, y = crop(photos[0], 100, 80), crop(photos[1], 60, 120)
    feats = net.double().features[:35]
    with torch.no_grad():
        fx = feats((x - MEAN) / STD)
        fy = feats((y - MEAN) / STD)
        loss = torch.mean(torch.abs(fx - fy))
    write_safetensors("vgg19_small.io.safetensors", {"x": x, "y": y, "fx": fx, "loss": loss.view(1)}, "F64")
    print("features", tuple(fx.shape), "loss", float(loss), "images", photos[0], photos[1])


if __name__ == "__main__":
    main()
