"""Sample files checked for damage: cheaply on every row (missing, empty, an image whose signature or end does
not match its format: a truncated PNG, JPEG or WebP), fully on the few rows a dev dataset takes (a decode with
Pillow, when it is installed: the `torch` extra brings it)."""

from __future__ import annotations

import os

# format -> (first bytes, what the last bytes hold); a JPEG's end-of-image marker appears nowhere else (its data
# stuffs 0xFF bytes), nor does a PNG's IEND chunk, so a file cut short lacks them
_PNG = (b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82")
_JPEG = (b"\xff\xd8\xff", b"\xff\xd9")
SIGNATURES = {".png": _PNG, ".jpg": _JPEG, ".jpeg": _JPEG}
TAIL_BYTES = 64  # some writers append a few bytes after the end marker
DECODED = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")


def file_problem(path: str) -> str | None:
    """What is wrong with the file, read from its size, first and last bytes; None when nothing is."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return "missing"
    if size == 0:
        return "empty"
    extension = os.path.splitext(path)[1].lower()
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
            if extension == ".webp":  # RIFF <size of the rest> WEBP
                whole = head[:4] == b"RIFF" and head[8:12] == b"WEBP"
                return None if whole and int.from_bytes(head[4:8], "little") + 8 <= size else "truncated or not WebP"
            if extension not in SIGNATURES:
                return None
            first, last = SIGNATURES[extension]
            if not head.startswith(first):
                return f"not a {extension[1:].upper()} file"
            handle.seek(max(size - TAIL_BYTES, 0))
            return None if last in handle.read() else "truncated (no end marker)"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"


def decode_problem(path: str) -> str | None:
    """A full decode of an image file; None when it decodes, is no image format, or Pillow is not installed."""
    if os.path.splitext(path)[1].lower() not in DECODED:
        return None
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with Image.open(path) as image:
            image.load()
    except Exception as exc:
        return f"does not decode ({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})"
    return None
