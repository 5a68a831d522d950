#!/usr/bin/env python3
"""Converts the NIQE release's pristine model to the JSON file pdmflow eval --niqe reads.

  scripts/niqe-model.py modelparameters.mat niqe_model.json     # the MATLAB release (needs scipy)
  scripts/niqe-model.py niqe_pris_params.npz niqe_model.json    # the same numbers as a .npz (numpy only)

modelparameters.mat is in Mittal et al.'s NIQE release (mu_prisparam 1x36, cov_prisparam 36x36, fitted with
96x96 blocks); some Python ports ship the same arrays as niqe_pris_params.npz (mu_pris_param, cov_pris_param).
Neither is part of pdmflow: fetch it yourself. `pdmflow niqe-fit --pristine DIR --out FILE` fits a model of your own
instead.
"""
import json
import sys

import numpy as np


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    if src.endswith(".mat"):
        try:
            from scipy.io import loadmat
        except ImportError:
            sys.exit("reading a .mat file needs scipy (pip install scipy, or Debian's python3-scipy)")
        m = loadmat(src)
        mu, cov = m["mu_prisparam"], m["cov_prisparam"]
    else:
        m = np.load(src)
        mu, cov = m["mu_pris_param"], m["cov_pris_param"]
    mu = np.asarray(mu, dtype=np.float64).ravel()
    cov = np.asarray(cov, dtype=np.float64)
    if mu.shape != (36,) or cov.shape != (36, 36):
        sys.exit("%s: mu %s and cov %s, want 36 and 36x36" % (src, mu.shape, cov.shape))
    with open(dst, "w") as f:
        json.dump({"format": "pdmflow-niqe-model/1", "block_size": 96, "mu": mu.tolist(), "cov": cov.tolist(),
                   "source": src}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
