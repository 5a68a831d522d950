#!/usr/bin/python3
"""Makes internal/official's test checkpoints with /usr/bin/python3 and torch (Debian's python3-torch 1.13).

Small networks built with the module names of the official PDM code (greatlog/UnpairedSR, as pdm-spec section C
describes them: DegModel's deg_kernel.deg_kernel / deg_noise.deg_noise Sequentials of conv, BatchNorm, ReLU and
ResBlocks whose body is conv, BN, ReLU, conv; the PatchGAN discriminator's model Sequential; and EDSR with the names
of the EDSR-PyTorch code whose pretrained checkpoints the official code starts from: sub_mean, head, body.N.body,
tail.0 (the upsampler), tail.1, add_mean). Random weights, random BatchNorm running statistics, and mean shifts
that are not the identity (the official code trains them by mistake), so that the conversion has to fold them.

Run from this directory: /usr/bin/python3 make_checkpoints.py
Writes, for each case NAME, NAME.pth (torch.save of the state dict; pdm_zonly in the legacy format) and
NAME.io.safetensors: the inputs and PyTorch's outputs (computed in float64, eval mode) the Go test compares with.
"""
import json
import struct

import torch
from torch import nn
import torch.nn.functional as F

torch.manual_seed(2022)
MEAN = (0.4488, 0.4371, 0.4040)


class ResBlock(nn.Module):
    def __init__(self, nf, k):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(nf, nf, k, 1, k // 2), nn.BatchNorm2d(nf), nn.ReLU(), nn.Conv2d(nf, nf, k, 1, k // 2))

    def forward(self, x):
        return x + self.body(x)


def trunk(in_nc, nf, nb, out, head_k, body_k):
    return nn.Sequential(nn.Conv2d(in_nc, nf, head_k, 1, head_k // 2), nn.BatchNorm2d(nf), nn.ReLU(True),
                         *[ResBlock(nf, body_k) for _ in range(nb)], nn.Conv2d(nf, out, 1, 1, 0))


class KernelModel(nn.Module):
    def __init__(self, nc, nf, nb, ksize):
        super().__init__()
        self.deg_kernel = nn.Sequential(*trunk(nc, nf, nb, ksize * ksize, 1, 1), nn.Softmax(1))


class NoiseModel(nn.Module):
    def __init__(self, in_nc, nf, nb, dim, k):
        super().__init__()
        self.deg_noise = trunk(in_nc, nf, nb, dim, k, k)


class DegModel(nn.Module):
    def __init__(self, kernel, noise):
        super().__init__()
        self.deg_kernel = kernel
        self.deg_noise = noise


def randomize(module, scale=1.0):
    """Random weights everywhere (so that no layer is the identity) and random BatchNorm statistics."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0, scale / (m.in_channels * m.kernel_size[0] * m.kernel_size[1]) ** 0.5)
                m.bias.normal_(0, 0.1)
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(1234)


def blur_down(hr, kernel, ksize, scale):
    """The official blur: reflect padding, unfold with stride scale, kernel weights, one kernel for R, G, B."""
    b, c, h, w = hr.shape
    x = F.pad(hr.view(b * c, 1, h, w), [ksize // 2] * 4, mode="reflect")
    x = F.unfold(x, kernel_size=ksize, stride=scale).view(b, c, ksize * ksize, h // scale, w // scale)
    return (x * kernel.view(b, 1, ksize * ksize, 1, 1)).sum(2)


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


def pdm_case(name, k_nc, noise_mix, noise_nc, noise_dim, noise_k, legacy=False):
    scale, ksize, nf, nb = 4, 7, 8, 2
    noise_in = noise_nc + (3 if noise_mix else 0)
    net = DegModel(KernelModel(k_nc, nf, nb, ksize), NoiseModel(noise_in, nf, nb, noise_dim, noise_k))
    randomize(net)
    net.eval()
    torch.save(net.state_dict(), name + ".pth", _use_new_zipfile_serialization=not legacy)
    n, hs = 2, 24
    hr = torch.rand(n, 3, hs, hs)
    zk = torch.randn(n, k_nc, 1, 1)
    zn = torch.randn(n, noise_nc, hs // scale, hs // scale)
    d = net.double()
    with torch.no_grad():
        kern = d.deg_kernel.deg_kernel(zk.double()).view(n, ksize * ksize)
        clean = blur_down(hr.double(), kern, ksize, scale)
        inp = torch.cat([clean, zn.double()], 1) if noise_mix else zn.double()
        noise = d.deg_noise.deg_noise(inp)
        y = clean + noise  # dim 1 broadcasts to R, G and B
    write_safetensors(name + ".io.safetensors", {"hr": hr, "zk": zk, "zn": zn, "kernel": kern, "y": y})


class PatchGAN(nn.Module):
    def __init__(self, in_c, nf, stride):
        super().__init__()
        seq = [nn.Conv2d(in_c, nf, 3, 1, 1), nn.LeakyReLU(0.2, True)]
        for n_in, n_out, s in [(nf, 2 * nf, stride), (2 * nf, 4 * nf, stride), (4 * nf, 8 * nf, 1)]:
            seq += [nn.Conv2d(n_in, n_out, 3, s, 1, bias=True), nn.InstanceNorm2d(n_out), nn.LeakyReLU(0.2, True)]
        seq += [nn.Conv2d(8 * nf, nf, 3, 1, 1)]
        self.model = nn.Sequential(*seq)


def disc_case(name, stride):
    net = PatchGAN(3, 4, stride)
    randomize(net)
    torch.save(net.state_dict(), name + ".pth")
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        out = net.double().model(x.double())
    write_safetensors(name + ".io.safetensors", {"x": x, "out": out})


class MeanShift(nn.Conv2d):
    def __init__(self, sign):
        super().__init__(3, 3, 1)
        with torch.no_grad():
            self.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.bias.copy_(sign * 255 * torch.tensor(MEAN))


class EDSRBlock(nn.Module):
    def __init__(self, nf, res_scale):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(nf, nf, 3, 1, 1), nn.ReLU(True), nn.Conv2d(nf, nf, 3, 1, 1))
        self.res_scale = res_scale

    def forward(self, x):
        return x + self.body(x) * self.res_scale


class EDSR(nn.Module):
    def __init__(self, nf, nb, scale, res_scale):
        super().__init__()
        self.sub_mean = MeanShift(-1)
        self.add_mean = MeanShift(1)
        self.head = nn.Sequential(nn.Conv2d(3, nf, 3, 1, 1))
        self.body = nn.Sequential(*[EDSRBlock(nf, res_scale) for _ in range(nb)], nn.Conv2d(nf, nf, 3, 1, 1))
        up = []
        for f in ([2, 2] if scale == 4 else [scale]):
            up += [nn.Conv2d(nf, f * f * nf, 3, 1, 1), nn.PixelShuffle(f)]
        self.tail = nn.Sequential(nn.Sequential(*up), nn.Conv2d(nf, 3, 3, 1, 1))

    def forward(self, x):
        x = self.head(self.sub_mean(x * 255))
        x = x + self.body(x)
        return self.add_mean(self.tail(x)) / 255


def edsr_case(name, scale, res_scale):
    net = EDSR(8, 2, scale, res_scale)
    randomize(net, scale=0.5)
    with torch.no_grad():
        # Mean shifts as the official code leaves them after training: add_mean anything, sub_mean a general 3x3
        # colour matrix whose bias still maps the DIV2K mean to 0 (then the conversion is exact at the borders too).
        net.add_mean.weight.copy_((torch.eye(3) + 0.05 * torch.randn(3, 3)).view(3, 3, 1, 1))
        net.add_mean.bias.add_(torch.randn(3))
        ms = torch.eye(3) + 0.05 * torch.randn(3, 3)
        net.sub_mean.weight.copy_(ms.view(3, 3, 1, 1))
        net.sub_mean.bias.copy_(-255 * ms @ torch.tensor(MEAN))
    torch.save(net.state_dict(), name + ".pth")
    lr = torch.rand(1, 3, 6, 7)
    with torch.no_grad():
        sr = net.double()(lr.double())
    write_safetensors(name + ".io.safetensors", {"lr": lr, "sr": sr})


def main():
    # 2020Track1-like: per-pixel z_n mixed with the clean LR, 3x3 noise convolutions, 3 noise channels.
    pdm_case("pdm_mixed", k_nc=4, noise_mix=True, noise_nc=3, noise_dim=3, noise_k=3)
    # 2020 deg-like: noise from z alone, 1x1 convolutions, one noise channel for R, G and B; legacy format.
    pdm_case("pdm_zonly", k_nc=3, noise_mix=False, noise_nc=3, noise_dim=1, noise_k=1, legacy=True)
    disc_case("disc", stride=2)
    edsr_case("edsr_x4", scale=4, res_scale=1.0)
    edsr_case("edsr_x3", scale=3, res_scale=0.1)


if __name__ == "__main__":
    main()
