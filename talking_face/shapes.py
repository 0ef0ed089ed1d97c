"""One-line shape checks in kornia's style: ``check_shape(landmarks, "B T 68 2", "landmarks")``.

A pattern names each dimension: a number must match exactly, a name (B, T, S, ...) takes any size but the
same size everywhere it appears in the check (and in ``dims``, the sizes an earlier check returned), and a
leading ``*`` takes any number of leading dimensions.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["check_shape"]


class _Shaped(Protocol):
    @property
    def shape(self) -> tuple[int, ...]: ...


def check_shape(x: _Shaped, pattern: str, name: str, dims: dict[str, int] | None = None) -> dict[str, int]:
    """Raise ``ValueError`` unless ``x.shape`` fits ``pattern``; return the named sizes (with ``dims``).

    >>> check_shape(torch.zeros(2, 5, 68, 2), "B T 68 2", "landmarks")
    {'B': 2, 'T': 5}
    """
    shape = tuple(x.shape)
    wanted = pattern.split()
    sizes = dict(dims or {})
    if wanted and wanted[0] == "*":
        wanted = wanted[1:]
        shape = shape[len(shape) - len(wanted) :] if len(shape) >= len(wanted) else (None,) * len(wanted)
    fits = len(shape) == len(wanted)
    for want, size in zip(wanted, shape, strict=False):
        fits = fits and (size == int(want) if want.isdigit() else sizes.setdefault(want, size) == size)
    if not fits:
        known = ", ".join(f"{k}={v}" for k, v in (dims or {}).items())
        raise ValueError(
            f"{name} must be [{', '.join(pattern.split())}]{f' with {known}' if known else ''}, "
            f"got {list(x.shape)}"
        )
    return sizes
