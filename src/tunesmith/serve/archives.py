"""Image archives: a .zip or .tar (optionally gzipped) of subject images with optional same-name .txt captions,
the training data of a diffusion job.

An archive is unpacked into a folder in storage under names the server chooses (image-00001.png and its
image-00001.txt caption, in the order of the archive's names), so no name from the archive ever becomes a path.
Members are still held to the upload rules, and an archive that breaks them is refused as a whole: no `..`, no
absolute names or drive letters, no backslashes or NUL, no links or device files. The number of members and the
bytes they unpack to are limited, counted as the bytes arrive (a header may lie about sizes). Every image is
decoded once (the image checks), so a broken one is named at upload instead of at step 300; sizes are checked
later, against the job's own data.min_size.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import stat
import tarfile
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from tunesmith.data.images.folder import IMAGE_SUFFIXES, image_size
from tunesmith.errors import DataError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip", ".tar")  # longest first: .tar.gz before .tar
CAPTION_SUFFIX = ".txt"
MEMBERS_FILE = ".members.json"  # server name -> the archive's name, so messages can name what the person sent
MAX_CAPTION_BYTES = 64 * 1024
COPY_CHUNK = 1024 * 1024
# Written by archivers beside the real files: macOS resource forks and Finder's folder settings.
_SKIPPED = re.compile(r"(^|/)(__MACOSX/|\._|\.DS_Store$)")
_DRIVE = re.compile(r"^[A-Za-z]:")
# What a corrupt archive raises while it is read (its members are read lazily, so anywhere in unpacking).
_BROKEN = (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError)


@dataclass(frozen=True)
class ArchiveLimits:
    max_files: int
    max_bytes: int


@dataclass(frozen=True)
class UnpackedImages:
    images: int
    captioned: int

    def summary(self, filename: str) -> str:
        return f"{filename}: {self.images} images ({self.captioned} with captions), no problems"


def archive_suffix(filename: str) -> str | None:
    lowered = filename.lower()
    return next((suffix for suffix in ARCHIVE_SUFFIXES if lowered.endswith(suffix)), None)


@dataclass(frozen=True)
class _Member:
    name: str  # as the archive spells it
    size: int  # as its header says
    read: Callable[[], BinaryIO]


def unpack_images(archive: Path, target: Path, limits: ArchiveLimits) -> UnpackedImages:
    """Unpack `archive` into the new folder `target`; DataError naming the member and the rule otherwise (the
    folder is then not left behind). The caller puts the archive's name before the message."""
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    temp.mkdir(parents=True)
    try:
        with _members(archive) as members:
            unpacked = _unpack(members, temp, _Budget(limits))
        temp.rename(target)  # whole or not at all
    except _BROKEN as error:
        raise DataError(f"a broken archive ({error})") from None
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return unpacked


def count_images(folder: Path) -> UnpackedImages:
    """What an unpacked folder holds (for a file's page)."""
    images = [p for p in folder.iterdir() if p.suffix in IMAGE_SUFFIXES]
    return UnpackedImages(len(images), sum(p.with_suffix(CAPTION_SUFFIX).is_file() for p in images))


class _Budget:
    """The members and bytes an archive may still unpack to."""

    def __init__(self, limits: ArchiveLimits):
        self.limits, self.bytes = limits, limits.max_bytes

    def spend(self, size: int) -> None:
        self.bytes -= size
        if self.bytes < 0:
            raise DataError(f"unpacks to more than {self.limits.max_bytes:,} bytes; this server takes less per "
                            "archive")

    def check_count(self, count: int) -> None:
        if count > self.limits.max_files:
            raise DataError(f"more than {self.limits.max_files:,} images and captions; split the archive")


def _unpack(members: Iterator[_Member], folder: Path, budget: _Budget) -> UnpackedImages:
    images: dict[str, _Member] = {}  # by name without suffix: an image and its caption share it
    captions: dict[str, _Member] = {}
    declared = _Budget(budget.limits)  # what the headers say, before anything is written
    for member in members:
        suffix = PurePosixPath(member.name).suffix.lower()
        stem = member.name[: -len(suffix)] if suffix else member.name
        if suffix == CAPTION_SUFFIX:
            kind, what = captions, "a caption"
        elif suffix in IMAGE_SUFFIXES:
            kind, what = images, "an image"
        else:
            raise DataError(f"{member.name}: not an image ({', '.join(IMAGE_SUFFIXES)}) or a {CAPTION_SUFFIX} "
                            "caption; an archive holds only those")
        if stem in kind:
            raise DataError(f"{member.name}: {what} named {stem!r} is in the archive twice ({kind[stem].name})")
        kind[stem] = member
        declared.check_count(len(images) + len(captions))
        declared.spend(member.size)
    for stem, caption in captions.items():
        if stem not in images:
            raise DataError(f"{caption.name}: a caption without an image of the same name")
    if not images:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in the archive")
    names = {}
    for number, stem in enumerate(sorted(images), start=1):
        image = images[stem]
        path = folder / f"image-{number:05d}{PurePosixPath(image.name).suffix.lower()}"
        _copy(image, path, budget)
        _check_image(image, path)
        names[path.name] = image.name
        if stem in captions:
            caption = path.with_suffix(CAPTION_SUFFIX)
            _copy(captions[stem], caption, budget, cap=MAX_CAPTION_BYTES)
            _check_caption(captions[stem], caption)
            names[caption.name] = captions[stem].name
    (folder / MEMBERS_FILE).write_text(json.dumps(names), encoding="utf-8")
    return UnpackedImages(len(images), len(captions))


def member_names(folder: Path) -> dict[str, str]:
    """{server path of an unpacked file: its name in the archive}."""
    listed = folder / MEMBERS_FILE
    names = json.loads(listed.read_text(encoding="utf-8")) if listed.is_file() else {}
    return {str(folder / server): name for server, name in names.items()}


def in_archive_terms(text: str, folder: Path, file_id: str) -> str:
    """`text` with the unpacked files' paths as the archive named them, and the folder as the file's id."""
    for path, name in sorted(member_names(folder).items(), key=lambda item: -len(item[0])):
        text = text.replace(path, name)
    return text.replace(str(folder), file_id)


def _copy(member: _Member, path: Path, budget: _Budget, cap: int | None = None) -> None:
    """Copy the member's bytes, counting them as they come (a header may understate the size)."""
    written = 0
    with member.read() as source, open(path, "wb") as out:
        while chunk := source.read(COPY_CHUNK):
            written += len(chunk)
            if cap is not None and written > cap:
                raise DataError(f"{member.name}: a caption longer than {cap:,} bytes")
            budget.spend(len(chunk))
            out.write(chunk)


def _check_image(member: _Member, path: Path) -> None:
    from PIL import Image

    try:
        found = image_size(path, min_size=1)  # sizes are the job's to judge (data.min_size)
    except Image.DecompressionBombError as error:
        found = f"too many pixels to decode safely ({error})"
    if isinstance(found, str):
        raise DataError(f"{member.name}: {found.replace(str(path), member.name)}")


def _check_caption(member: _Member, path: Path) -> None:
    try:
        path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{member.name}: a caption must be UTF-8 text") from None


def _checked_name(name: str) -> str:
    """The member's name if it keeps to the upload rules; DataError naming the rule it breaks."""
    shown = name.replace("\0", "\\0")
    if "\0" in name:
        raise DataError(f"{shown!r}: a member name with a NUL character")
    if "\\" in name:
        raise DataError(f"{shown!r}: a member name with a backslash (write the archive with '/' between folders)")
    if name.startswith("/") or _DRIVE.match(name):
        raise DataError(f"{shown!r}: an absolute member name; names in an archive are relative")
    if ".." in PurePosixPath(name).parts:
        raise DataError(f"{shown!r}: a member name with '..', which points outside the archive")
    return name


@contextmanager
def _members(archive: Path) -> Iterator[Iterator[_Member]]:
    """The archive's files (folders and the archivers' own files left out), zip or tar by their content."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as opened:
            yield _zip_members(opened)
    elif _is_tar(archive):
        with tarfile.open(archive) as opened:
            yield _tar_members(opened)
    else:
        raise DataError("not a .zip or .tar archive (its bytes are neither)")


def _is_tar(archive: Path) -> bool:
    try:
        return tarfile.is_tarfile(archive)
    except (OSError, tarfile.TarError, EOFError):
        return False


def _zip_members(opened: zipfile.ZipFile) -> Iterator[_Member]:
    for info in opened.infolist():
        name = _checked_name(info.filename)
        if _SKIPPED.search(name) or info.is_dir():
            continue
        kind = stat.S_IFMT(info.external_attr >> 16)  # the Unix file type, when a Unix archiver wrote one
        if kind and kind != stat.S_IFREG:
            raise DataError(f"{name!r}: a link or special file; an archive holds only plain files")
        if info.flag_bits & 0x1:
            raise DataError(f"{name!r}: an encrypted member; upload an archive without a password")
        yield _Member(name, info.file_size, lambda info=info: opened.open(info))


def _tar_members(opened: tarfile.TarFile) -> Iterator[_Member]:
    for info in opened:
        name = _checked_name(info.name)
        if info.isdir() or _SKIPPED.search(name):
            continue
        if not info.isfile():
            raise DataError(f"{name!r}: a link or special file; an archive holds only plain files")
        yield _Member(name, info.size, lambda info=info: opened.extractfile(info))
