"""The stages as functions, on a few generated images (no DVC, no data download)."""

import numpy as np
from PIL import Image

from stages.evaluate import predict
from stages.process import process
from stages.query import main as query_main  # noqa: F401  (the module imports cleanly)
from stages.train import save, train


def write_images(folder, rows):
    (folder / "images").mkdir(parents=True)
    lines = ["id,path,label,split"]
    for index, (label, split) in enumerate(rows):
        pixels = np.full((8, 8), 40 * (index % 5), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "images" / f"{index}.png")
        lines.append(f"{index},images/{index}.png,{label},{split}")
    lines.append("99,images/missing.png,1,train")  # a corrupt sample: kept in order, never trained on
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")


def test_process_keeps_manifest_order_and_marks_unlabeled_and_unreadable(tmp_path):
    write_images(tmp_path, [("0", "train"), ("", "train"), ("1", "val")])
    arrays = process(str(tmp_path), 8, ["0", "1"])
    assert arrays["x"].shape == (4, 1, 8, 8)
    assert arrays["y"].tolist() == [0, -1, 1, 1]
    assert arrays["readable"].tolist() == [True, True, True, False]


def test_train_then_predict_gives_probabilities(tmp_path):
    write_images(tmp_path, [(str(i % 2), "train") for i in range(20)])
    arrays = process(str(tmp_path), 8, ["0", "1"])
    chosen = arrays["readable"]
    net, history = train(arrays["x"][chosen], arrays["y"][chosen], 2, 4, 2, 0.01, 8, seed=0)
    assert len(history) == 2
    probs = predict(net, arrays["x"][:3])
    assert probs.shape == (3, 2)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_the_saved_model_is_an_mlflow_model_that_gives_the_same_outputs(tmp_path):
    import mlflow.pyfunc

    write_images(tmp_path, [(str(i % 2), "train") for i in range(20)])
    arrays = process(str(tmp_path), 8, ["0", "1"])
    net, _ = train(arrays["x"][:20], arrays["y"][:20], 2, 4, 1, 0.01, 8, seed=0)
    save(net, arrays["x"][:2], str(tmp_path / "model"))
    served = mlflow.pyfunc.load_model(str(tmp_path / "model")).predict(arrays["x"][:3])
    assert np.allclose(np.exp(served) / np.exp(served).sum(1, keepdims=True), predict(net, arrays["x"][:3]), atol=1e-5)
