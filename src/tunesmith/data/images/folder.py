"""Read an image folder: images, their captions (same-name .txt or metadata.jsonl) and their checked sizes.

Every image is opened and fully decoded once here, so an unreadable, truncated or tiny file is named before
training starts instead of failing at step 300. `on_bad_image: skip` leaves it out and reports it; `error` stops.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from tunesmith.data.images.settings import ImageSettings
from tunesmith.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
METADATA_FILE = "metadata.jsonl"
CAPTION_KEYS = ("text", "caption", "prompt")  # what Hugging Face imagefolder datasets and other tools call it


@dataclass(frozen=True)
class ImageRecord:
    path: Path
    caption: str
    width: int  # after EXIF orientation
    height: int


@dataclass(frozen=True)
class BadImage:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def read_image_folder(folder: str | Path, settings: ImageSettings, default_caption: str | None = None,
                      key: str = "data.images") -> tuple[list[ImageRecord], list[BadImage]]:
    """The usable images of `folder` (sorted by name) and the bad ones that `skip` left out; `key` names the
    folder's config key in errors."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{key}: {folder} is not a folder (expected a folder of images)")
    captions = _metadata_captions(folder)
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    for name in captions:
        if not (folder / name).is_file():
            raise DataError(f"{folder / METADATA_FILE}: file_name '{name}' is not an image in {folder}")
    return read_images(paths, settings, lambda path: _caption(path, captions, default_caption), f"{key}: {folder}")


def read_images(paths: list[Path], settings: ImageSettings, caption_of, where: str,
                ) -> tuple[list[ImageRecord], list[BadImage]]:
    """Records of `paths` captioned by `caption_of(path)`, bad images skipped or refused per the settings;
    `where` names them in the error when none is usable (e.g. "data.class_images: DIR")."""
    records, bad = [], []
    for path in paths:
        size_or_reason = image_size(path, settings.min_size)
        if isinstance(size_or_reason, str):
            problem = BadImage(path, size_or_reason)
            if settings.on_bad_image == "error":
                raise DataError(f"{problem} (set data.on_bad_image: skip to leave such images out)")
            bad.append(problem)
            continue
        records.append(ImageRecord(path, caption_of(path), *size_or_reason))
    if bad:
        warnings.warn(f"skipped {len(bad)} bad image(s): " + "; ".join(map(str, bad)), stacklevel=3)
    if not records:
        raise DataError(f"{where} has no usable images (looked for {', '.join(IMAGE_SUFFIXES)})"
                        + (f"; {len(bad)} were bad, e.g. {bad[0]}" if bad else ""))
    return records, bad


def image_size(path: Path, min_size: int) -> tuple[int, int] | str:
    """(width, height) after EXIF orientation, or why the image cannot be used."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()  # decodes every byte: a truncated file fails here, not in training
            width, height = ImageOps.exif_transpose(image).size
    except UnidentifiedImageError:
        return "not an image PIL can read"
    except (OSError, ValueError, SyntaxError) as error:  # PIL's truncated-file and broken-chunk errors
        return f"unreadable or truncated image ({error})"
    if min(width, height) < min_size:
        return f"{width}x{height} is smaller than data.min_size ({min_size} px on the shorter side)"
    return width, height


def _metadata_captions(folder: Path) -> dict[str, str]:
    path = folder / METADATA_FILE
    if not path.is_file():
        return {}
    captions = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}, line {number}: not valid JSON ({error.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("file_name"), str):
            raise DataError(f"{path}, line {number}: expected an object with \"file_name\" and \"text\"")
        text = next((row[key] for key in CAPTION_KEYS if isinstance(row.get(key), str)), None)
        if text is None:
            raise DataError(f"{path}, line {number}: no caption; expected one of the keys {', '.join(CAPTION_KEYS)}")
        captions[row["file_name"]] = text.strip()
    return captions


def _caption(path: Path, captions: dict[str, str], default: str | None) -> str:
    text_file = path.with_suffix(".txt")
    if text_file.is_file():
        return text_file.read_text(encoding="utf-8").strip()
    if path.name in captions:
        return captions[path.name]
    if default is None:
        raise DataError(f"{path}: no caption; add {text_file.name}, a line in {METADATA_FILE}, "
                        "or set data.instance_prompt")
    return default
