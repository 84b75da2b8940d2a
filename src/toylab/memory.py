"""Refusing work that cannot fit in memory, before allocating it.

A size typed by mistake (``--n-features 1000000000``, ``--seeds 100000000``, ``--d 200000``)
should cost a one-line error, not minutes of swapping followed by a MemoryError traceback or
the kernel's out-of-memory killer. Whoever is about to allocate estimates the bytes from
shapes alone and calls :func:`require_memory`; the task factories check what they build on
the host (targets, per-feature arrays), the trainer what one training call holds
(:func:`toylab.train.trainer.memory_needed`), the weight-file reader the array a file's header
claims (:mod:`toylab.arrays`). Stdlib only, at the bottom of the layers beside
:mod:`toylab.errors`, so that every layer can check before it allocates.

Example:
    >>> require_memory(10, what="a tiny array", fix="never needed")
    >>> describe_bytes(3 * 2**30)
    '3.0 GiB'
"""

from __future__ import annotations

import os
from pathlib import Path

from toylab.errors import ConfigError

__all__ = ["available_bytes", "describe_bytes", "require_memory"]


def available_bytes() -> int:
    """Host memory a new allocation can still get: Linux's ``MemAvailable`` (free memory plus
    caches the kernel can drop), else the machine's physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # the file counts kB
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def describe_bytes(count: float) -> str:
    """``count`` bytes in the largest binary unit that keeps it ≥ 1: ``'48 GiB'``, ``'7.6 GiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if unit == "B" and count < 1024:
            return f"{int(count)} B"
        if count < 1024 or unit == "PiB":
            return f"{count:.1f} {unit}" if count < 10 else f"{count:.0f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def require_memory(needed: int, *, what: str, fix: str, available: int | None = None,
                   where: str = "this machine") -> None:
    """Raise a one-line :class:`ConfigError` when ``needed`` bytes exceed what is available.

    Args:
      needed: the estimate, in bytes.
      what: the subject of the message, e.g. ``"100000000 instances"``.
      fix: what to do instead, e.g. ``"use fewer seeds or a sweep"``.
      available: bytes available; default :func:`available_bytes` (host memory).
      where: names the memory in the message, e.g. ``"the GPU"``.

    The message reads ``{what} need(s) about {needed}; {where} has {available} available: {fix}``
    (``needs`` when ``what`` starts with "1 ").
    """
    available = available_bytes() if available is None else available
    if needed > available:
        verb = "needs" if what.startswith("1 ") else "need"
        raise ConfigError(f"{what} {verb} about {describe_bytes(needed)}; {where} has "
                          f"{describe_bytes(available)} available: {fix}")
