"""Opening images the same way everywhere (scoring, recaptioning, encoding, training data): decoded in full,
turned upright by their EXIF orientation, transparent pixels composited on white, then converted to the asked
mode. Decoding errors (and PIL's decompression-bomb guard) propagate for the caller to name or count."""

from __future__ import annotations

from PIL import Image, ImageOps

ORIENTATION = 0x0112
"""the EXIF orientation tag"""


def open_image(source, mode: str = "RGB") -> Image.Image:
    """A path or file-like object of image bytes -> a loaded PIL image in `mode` (RGB or L)."""
    with Image.open(source) as im:
        im.load()
        if im.getexif().get(ORIENTATION, 1) != 1:  # only then: exif_transpose copies the image
            im = ImageOps.exif_transpose(im)
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    if im.mode in ("I;16", "I;16B", "I;16L", "I") and mode in ("RGB", "L"):
        im = im.point(lambda v: v / 256).convert("L")  # 16-bit grey: keep the top 8 bits, not a clipped copy
    return im.convert(mode)
