"""Writing a result (one file or a folder) so that a full disk or a crash never leaves part of it under its name.

The result is written under a staging name beside the final one (`.tmp-<name>`, the checkpoint writer's prefix),
after checking that the disk has room for it, and renamed into place only once it is complete (an older result of
the same name is swapped out). Whatever stops the write removes the staging copy, and a disk that runs out of
space anyway (other writers, file-system overhead) ends in one TunesmithError naming the result and the space, as a
checkpoint's does.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tunesmith.errors import TunesmithError
from tunesmith.train.checkpoint import OUT_OF_SPACE, SPACE_MARGIN, SPACE_SLACK, STAGING, errno_of, size_text

EXPORT_ADVICE = "free some space, or choose an --out on a larger disk"


@contextmanager
def staged(final: Path, nbytes: int, action: str, advice: str) -> Iterator[Path]:
    """Yield the staging path to write `final` into (nothing exists there yet; a folder is for the caller to make).

    `nbytes`: about what will be written; `action` and `advice` word the out-of-space message ("not enough disk space
    to {action} {final}: it needs about X and Y is free; {advice}")."""
    final = Path(final)
    tmp = final.with_name(f"{STAGING}{final.name}")
    _remove(tmp)  # left by a crash while an earlier try wrote it
    final.parent.mkdir(parents=True, exist_ok=True)
    needed = int(nbytes * SPACE_MARGIN) + SPACE_SLACK
    if shutil.disk_usage(final.parent).free < needed:
        raise _out_of_space(final, needed, action, advice)
    try:
        yield tmp
    except BaseException as exc:
        _remove(tmp)  # however the write failed, no partial copy stays behind
        if errno_of(exc) in OUT_OF_SPACE:
            raise _out_of_space(final, needed, action, advice) from None
        raise
    _publish(tmp, final)


def tensor_bytes(tensors: Iterable) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def pipeline_bytes(pipeline) -> int:
    """What a diffusers pipeline's networks hold (weights and buffers): about what one saved copy of it takes."""
    import torch

    return sum(tensor_bytes(part.state_dict().values()) for part in pipeline.components.values()
               if isinstance(part, torch.nn.Module))


def file_bytes(path: Path) -> int:
    """The size of a file, or of every file under a folder."""
    path = Path(path)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def _out_of_space(final: Path, needed: int, action: str, advice: str) -> TunesmithError:
    free = shutil.disk_usage(final.parent).free
    return TunesmithError(f"not enough disk space to {action} {final}: it needs about {size_text(needed)} and "
                          f"{size_text(free)} is free; {advice}")


def _publish(tmp: Path, final: Path) -> None:
    """Rename the complete staging copy to `final`; a folder already there is swapped out first, then deleted."""
    if final.is_dir():
        replaced = final.with_name(f"{STAGING}replaced-{final.name}")
        _remove(replaced)
        final.rename(replaced)
        tmp.rename(final)
        _remove(replaced)
    else:
        tmp.replace(final)  # one atomic rename, over an older file of the same name


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
