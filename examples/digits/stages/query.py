"""Query: the model's probabilities on the unlabeled pool and the pool's sample ids, for `alops query select`."""

from __future__ import annotations

import numpy as np

from stages.common import params
from stages.evaluate import load_model, predict


def main() -> None:
    settings = params()
    data = np.load("work/processed.npz")
    pool = data["y"] < 0
    probs = predict(load_model(), data["x"][pool]) if pool.any() else \
        np.zeros((0, len(settings["classes"])), dtype=np.float32)
    np.save("pool_probs.npy", probs.astype(np.float32))
    with open("pool_ids.txt", "w", encoding="utf-8") as handle:  # row i of the pool is this sample
        handle.writelines(f"{sample}\n" for sample in data["id"][pool])


if __name__ == "__main__":
    main()
