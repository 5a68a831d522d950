#!/usr/bin/python3
"""Makes internal/official's RRDB test checkpoints with /usr/bin/python3 and torch (Debian's python3-torch 1.13).

ESRGAN's RRDBNet written out as BasicSR defines it (basicsr/archs/rrdbnet_arch.py; the basicsr package is not
needed): conv_first; num_block RRDBs (body.N), each three ResidualDenseBlocks (rdb1..rdb3) of five 3x3 convs
(conv1..conv5; conv1-conv4 add num_grow_ch channels, LeakyReLU 0.2; output conv5 * 0.2 + x), RRDB output
rdb3 * 0.2 + x; conv_body with the trunk skip; nearest x2 + conv_up1 + LeakyReLU, nearest x2 + conv_up2 + LeakyReLU;
conv_hr + LeakyReLU; conv_last. At x2 the input is pixel-unshuffled by 2 first (conv_first takes 12 channels).
Random weights (not the 0.1-scaled init, so that every layer matters) at a reduced size: num_feat 4, 2 blocks,
growth 2.

Run from this directory: /usr/bin/python3 make_rrdb.py
Writes rrdb_x4.pth (BasicSR's names, zip format), rrdb_x2.pth (BasicSR's names, a {"params_ema": state_dict} as
Real-ESRGAN ships them), rrdb_x4_esrgan.pth (the x4 network under the original ESRGAN code's names: RRDB_trunk.N.RDBk,
trunk_conv, upconv1, upconv2, HRconv, conv_last; legacy format), and NAME.io.safetensors: an LR image and PyTorch's SR
image (float64) for each.
"""
import json
import struct

import torch
from torch import nn
import torch.nn.functional as F

torch.manual_seed(1703)


class ResidualDenseBlock(nn.Module):
    def __init__(self, nf, gc):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, nf, gc):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(nf, gc)
        self.rdb2 = ResidualDenseBlock(nf, gc)
        self.rdb3 = ResidualDenseBlock(nf, gc)

    def forward(self, x):
        out = self.rdb3(self.rdb2(self.rdb1(x)))
        return out * 0.2 + x


def pixel_unshuffle(x, scale):
    b, c, hh, hw = x.size()
    h, w = hh // scale, hw // scale
    return x.view(b, c, h, scale, w, scale).permute(0, 1, 3, 5, 2, 4).reshape(b, c * scale * scale, h, w)


class RRDBNet(nn.Module):
    def __init__(self, scale, nf, nb, gc):
        super().__init__()
        self.scale = scale
        in_ch = 3 * (4 if scale == 2 else 1)
        self.conv_first = nn.Conv2d(in_ch, nf, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(nf, gc) for _ in range(nb)])
        self.conv_body = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        feat = pixel_unshuffle(x, 2) if self.scale == 2 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


def randomize(net):
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0, 1.0 / (m.in_channels * 9) ** 0.5)
                m.bias.normal_(0, 0.1)


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        b = t.detach().to(torch.float64).contiguous().numpy().astype("<f8").tobytes()
        header[name] = {"dtype": "F64", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def esrgan_names(sd):
    """The original ESRGAN code's names (xinntao/ESRGAN RRDBNet_arch.py) for BasicSR's."""
    out = {}
    for k, v in sd.items():
        k = k.replace("body.", "RRDB_trunk.", 1) if k.startswith("body.") else k
        for i in (1, 2, 3):
            k = k.replace(".rdb%d." % i, ".RDB%d." % i)
        k = {"conv_body": "trunk_conv", "conv_up1": "upconv1", "conv_up2": "upconv2", "conv_hr": "HRconv"}.get(
            k.split(".")[0], k.split(".")[0]) + k[len(k.split(".")[0]):]
        out[k] = v
    return out


def case(name, scale, h, w, wrap=None):
    net = RRDBNet(scale, nf=4, nb=2, gc=2)
    randomize(net)
    sd = net.state_dict()
    torch.save({wrap: sd} if wrap else sd, name + ".pth")
    lr = torch.rand(1, 3, h, w)
    with torch.no_grad():
        sr = net.double()(lr.double())
    write_safetensors(name + ".io.safetensors", {"lr": lr, "sr": sr})
    return sd


def main():
    sd = case("rrdb_x4", 4, 5, 6)
    torch.save(esrgan_names(sd), "rrdb_x4_esrgan.pth", _use_new_zipfile_serialization=False)
    case("rrdb_x2", 2, 6, 8, wrap="params_ema")


if __name__ == "__main__":
    main()
