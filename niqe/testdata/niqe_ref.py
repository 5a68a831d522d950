#!/usr/bin/python3
"""An independent NIQE in numpy (no scipy), written from the NIQE release's MATLAB code as published by Mittal et
al. (computequality.m, estimatemodelparam.m, computefeature.m, estimateaggdparam.m) and MATLAB's documented
rgb2gray, imfilter(..., 'replicate'), imresize(..., 0.5) (bicubic, antialiasing), nanmean, nancov and pinv, with one
departure that pdmflow's niqe makes too: MSCN coefficients below 1e-9 in magnitude (rounding noise where a 7x7
window is flat) are set to 0. It makes
the expected values of niqe's tests from photos in ../../data/photos (cut at fixed places) and writes:

  expected.json     the model fitted on the pristine crops (sharpness threshold 0.75, 96x96 blocks), the features
                    of every patch of one image, and the NIQE of the test crops against that model
  camera_blur.png   a crop of camera.png blurred (Gaussian, sigma 2, 'replicate') and rounded: a test image

Run from this directory: /usr/bin/python3 niqe_ref.py
"""
import json
import math

import numpy as np
from PIL import Image

PRISTINE = [  # (file, top, left, height, width); PNGs only: JPEG decoders differ in the last bits
    ("astronaut.png", 0, 0, 480, 480),
    ("coffee.png", 0, 0, 384, 576),
    ("brick.png", 16, 16, 480, 480),
    ("gravel.png", 0, 0, 480, 480),
    ("grass.png", 32, 0, 480, 480),
]
TESTS = [("chelsea.png", 6, 30, 288, 384), ("camera.png", 100, 120, 288, 288)]
BLOCK = 96
SHARPNESS = 0.75


def rgb2gray(rgb):
    """MATLAB's rgb2gray of a uint8 image: coefficients of inv(NTSC), rounded half away from zero."""
    t = np.linalg.inv(np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]]))
    c = t[0]
    v = c[0] * rgb[..., 0].astype(np.float64) + c[1] * rgb[..., 1] + c[2] * rgb[..., 2]
    return np.minimum(255, np.floor(v + 0.5))


def load_gray(name, top, left, h, w):
    im = np.asarray(Image.open("../../data/photos/" + name).convert("RGB"))[top:top + h, left:left + w]
    return rgb2gray(im)


def fspecial_gaussian(n, sigma):
    r = (n - 1) / 2
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    g = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    return g / g.sum()


def imfilter_replicate(im, win):
    """2-D correlation with edge replication, summed directly over the window."""
    r = win.shape[0] // 2
    p = np.pad(im, r, mode="edge")
    out = np.zeros_like(im)
    for u in range(win.shape[0]):
        for v in range(win.shape[1]):
            out += win[u, v] * p[u:u + im.shape[0], v:v + im.shape[1]]
    return out


def cubic(x):
    ax = np.abs(x)
    return ((1.5 * ax ** 3 - 2.5 * ax ** 2 + 1) * (ax <= 1) +
            (-0.5 * ax ** 3 + 2.5 * ax ** 2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def contributions(in_len, out_len, scale):
    kw = 4.0
    h = cubic
    if scale < 1:
        h = lambda x: scale * cubic(scale * x)
        kw = kw / scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kw / 2)
    p = int(math.ceil(kw)) + 2
    ind = left[:, None] + np.arange(p)[None, :]
    wts = h(u[:, None] - ind)
    wts = wts / wts.sum(axis=1, keepdims=True)
    aux = np.concatenate([np.arange(1, in_len + 1), np.arange(in_len, 0, -1)])
    ind = aux[(ind.astype(np.int64) - 1) % len(aux)]
    keep = np.any(wts != 0, axis=0)
    return wts[:, keep], ind[:, keep] - 1


def imresize_half(im):
    out = im
    for axis in (0, 1):  # equal scales: MATLAB resizes dimension 1 first
        n = out.shape[axis]
        wts, ind = contributions(n, int(math.ceil(n * 0.5)), 0.5)
        if axis == 0:
            out = np.einsum("ok,okw->ow", wts, out[ind, :])
        else:
            out = np.einsum("ok,hok->ho", wts, out[:, ind])
    return out


GAM = np.array([0.2 + k * 0.001 for k in range(9801)])
GFN = np.vectorize(math.gamma)
R_GAM = GFN(2 / GAM) ** 2 / (GFN(1 / GAM) * GFN(3 / GAM))


def estimate_aggd(vec):
    with np.errstate(invalid="ignore", divide="ignore"):
        left = math.sqrt(np.mean(vec[vec < 0] ** 2)) if np.any(vec < 0) else float("nan")
        right = math.sqrt(np.mean(vec[vec > 0] ** 2)) if np.any(vec > 0) else float("nan")
        gh = left / right
        rhat = np.mean(np.abs(vec)) ** 2 / np.mean(vec ** 2)
        rn = rhat * (gh ** 3 + 1) * (gh + 1) / ((gh ** 2 + 1) ** 2)
        d = (R_GAM - rn) ** 2
    alpha = GAM[0] if np.all(np.isnan(d)) else GAM[int(np.nanargmin(d))]
    s = math.sqrt(math.gamma(1 / alpha) / math.gamma(3 / alpha))
    return alpha, left * s, right * s


def compute_feature(block):
    a, bl, br = estimate_aggd(block.ravel())
    feat = [a, (bl + br) / 2]
    for s in [(0, 1), (1, 0), (1, 1), (1, -1)]:
        shifted = np.roll(block, s, axis=(0, 1))  # circshift
        a, bl, br = estimate_aggd((block * shifted).ravel())
        feat += [a, (br - bl) * (math.gamma(2 / a) / math.gamma(1 / a)), bl, br]
    return feat


def features(im):
    rows, cols = im.shape[0] // BLOCK, im.shape[1] // BLOCK
    im = im[:rows * BLOCK, :cols * BLOCK]
    win = fspecial_gaussian(7, 7 / 6)
    feats, sharp = [], None
    for scale in (1, 2):
        mu = imfilter_replicate(im, win)
        sigma = np.sqrt(np.abs(imfilter_replicate(im * im, win) - mu * mu))
        st = (im - mu) / (sigma + 1)
        st[np.abs(st) < 1e-9] = 0  # rounding noise in flat areas counts as 0 (niqe's noiseFloor)
        b = BLOCK // scale
        fs = []
        for c in range(cols):  # blkproc's blocks, reshaped column-major
            for r in range(rows):
                fs.append(compute_feature(st[r * b:(r + 1) * b, c * b:(c + 1) * b]))
        feats.append(np.array(fs))
        if scale == 1:
            sharp = np.array([sigma[r * b:(r + 1) * b, c * b:(c + 1) * b].mean() for c in range(cols) for r in range(rows)])
        im = imresize_half(im)
    return np.concatenate(feats, axis=1), sharp


def mvg(feat):
    mu = np.nanmean(feat, axis=0)
    complete = feat[~np.isnan(feat).any(axis=1)]
    return mu, np.cov(complete, rowvar=False)


def niqe(im, mu_p, cov_p):
    feat, _ = features(im)
    mu, cov = mvg(feat)
    inv = np.linalg.pinv((cov_p + cov) / 2)
    d = mu_p - mu
    return float(math.sqrt(d @ inv @ d))


def main():
    pris = []
    for name, top, left, h, w in PRISTINE:
        feat, sharp = features(load_gray(name, top, left, h, w))
        pris.append(feat[sharp > SHARPNESS * sharp.max()])
    pris = np.concatenate(pris)
    mu_p, cov_p = mvg(pris)

    cam = load_gray("camera.png", 100, 120, 288, 288)
    blur = np.floor(imfilter_replicate(cam, fspecial_gaussian(13, 2.0)) + 0.5)
    Image.fromarray(blur.astype(np.uint8), mode="L").save("camera_blur.png")

    scores = []
    for name, top, left, h, w in TESTS:
        scores.append({"image": name, "crop": [top, left, h, w], "niqe": niqe(load_gray(name, top, left, h, w), mu_p, cov_p)})
    scores.append({"image": "camera_blur.png", "niqe": niqe(blur, mu_p, cov_p)})
    feat, sharp = features(load_gray(*TESTS[0]))
    with open("expected.json", "w") as f:
        json.dump({
            "block": BLOCK, "sharpness_threshold": SHARPNESS,
            "pristine": [{"image": n, "crop": [t, l, h, w]} for n, t, l, h, w in PRISTINE],
            "model": {"patches": int(pris.shape[0]), "mu": mu_p.tolist(), "cov": cov_p.tolist()},
            "patches_of_first_test": {"features": feat.tolist(), "sharpness": sharp.tolist()},
            "scores": scores,
        }, f)
        f.write("\n")


if __name__ == "__main__":
    main()
