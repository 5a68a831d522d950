#!/usr/bin/python3
"""Makes pth's test checkpoints with torch.save (Debian's python3-torch 1.13).

Run from this directory: /usr/bin/python3 make_fixtures.py
Writes:
  zip.pth        a dict in the zip format (torch.save since 1.6), pickle protocol 2
  proto4.pth     the same with pickle protocol 4 (FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL)
  legacy.pth     the same in the legacy format (_use_new_zipfile_serialization=False)
  evil.pth       a zip checkpoint whose data.pkl calls os.system (must be refused, never run)
  expected.json  every tensor of the dict: name, dtype, shape, values (flattened, row-major)
The values are deterministic (seeded); the files are rewritten identically except for zip timestamps.
"""
import collections
import io
import json
import pickle
import zipfile

import torch
from torch import nn

torch.manual_seed(17)


def build():
    net = nn.Sequential(nn.Conv2d(3, 2, 3), nn.BatchNorm2d(2))
    with torch.no_grad():
        net[1].running_mean.copy_(torch.randn(2))
        net[1].running_var.copy_(torch.rand(2) + 0.5)
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    d = collections.OrderedDict()
    d["net"] = net.state_dict()  # an OrderedDict with _metadata, and an int64 num_batches_tracked
    d["base"] = base
    d["transposed"] = base.t()  # a strided view of base's storage
    d["slice"] = base[1:, 1:3]  # a view with a storage offset
    d["f64"] = torch.randn(4, dtype=torch.float64)
    d["f16"] = torch.tensor([1.5, -2.0, 6.1e-5, 5.96e-8, 65504.0, -0.0], dtype=torch.float16)
    d["bf16"] = torch.tensor([1.0, -3.140625, 1e-20], dtype=torch.bfloat16)
    d["scalar"] = torch.tensor(2.5)
    d["empty"] = torch.zeros(0, 3)
    d["bool"] = torch.tensor([True, False, True])
    d["i8"] = torch.tensor([-128, 0, 127], dtype=torch.int8)
    d["param"] = nn.Parameter(torch.randn(2, 2))
    d["epoch"] = 7
    d["lr"] = 2e-4
    d["name"] = "fixture"
    d["nothing"] = None
    d["flag"] = True
    return d


def expected(d):
    out = []

    def walk(prefix, v):
        if isinstance(v, dict):
            for k, x in v.items():
                walk(prefix + str(k) + ".", x)
        elif isinstance(v, torch.Tensor):
            names = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
                     torch.int64: "I64", torch.int8: "I8", torch.bool: "BOOL"}
            out.append({"name": prefix[:-1], "dtype": names[v.dtype], "shape": list(v.shape),
                        "values": [float(x) if v.is_floating_point() else int(x) for x in v.detach().flatten().double().tolist()]})

    walk("", d)
    return out


class Evil:
    def __reduce__(self):
        import os
        return (os.system, ("echo pth fixture must never run this",))


def main():
    d = build()
    torch.save(d, "zip.pth")
    torch.save(d, "proto4.pth", pickle_protocol=4)
    torch.save(d, "legacy.pth", _use_new_zipfile_serialization=False)
    with zipfile.ZipFile("evil.pth", "w", zipfile.ZIP_STORED) as z:
        z.writestr("evil/data.pkl", pickle.dumps({"w": Evil()}, protocol=2))
        z.writestr("evil/version", "3\n")
    with open("expected.json", "w") as f:
        json.dump({"tensors": expected(d), "values": {"epoch": 7, "lr": 2e-4, "name": "fixture", "nothing": None, "flag": True}}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
