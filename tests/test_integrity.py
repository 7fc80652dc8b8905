"""alops.data.integrity: damaged sample files found from their size, first and last bytes, or by a full decode."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from alops.data.integrity import decode_problem, file_problem


@pytest.mark.parametrize("extension", ["png", "jpg", "jpeg", "webp"])
def test_whole_images_pass_and_cut_ones_are_truncated(tmp_path, extension):
    path = tmp_path / f"sample.{extension}"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(path)
    whole = path.read_bytes()
    assert file_problem(str(path)) is None and decode_problem(str(path)) is None
    path.write_bytes(whole + b"\x00" * 16)  # bytes after the end marker, as some writers leave them
    assert file_problem(str(path)) is None
    path.write_bytes(whole[: len(whole) * 2 // 3])
    assert file_problem(str(path)).startswith("truncated")
    assert decode_problem(str(path)).startswith("does not decode")


def test_missing_empty_and_mislabelled_files(tmp_path):
    assert file_problem(str(tmp_path / "gone.png")) == "missing"
    (tmp_path / "empty.png").write_bytes(b"")
    assert file_problem(str(tmp_path / "empty.png")) == "empty"
    (tmp_path / "text.png").write_text("not an image at all")
    assert file_problem(str(tmp_path / "text.png")) == "not a PNG file"
    (tmp_path / "features.bin").write_bytes(b"\x01\x02")
    assert file_problem(str(tmp_path / "features.bin")) is None and decode_problem(str(tmp_path / "features.bin")) is None
