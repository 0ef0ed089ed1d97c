"""``check_shape``: exact numbers, consistent names, leading ``*``, and a message naming the tensor."""

from __future__ import annotations

import pytest
import torch

from talking_face.shapes import check_shape


def test_it_returns_the_named_sizes_and_checks_them_across_tensors():
    dims = check_shape(torch.zeros(2, 5, 68, 2), "B T 68 2", "landmarks")
    assert dims == {"B": 2, "T": 5}
    assert check_shape(torch.zeros(2, 3, 64, 64), "B 3 S S", "frame", dims) == {"B": 2, "T": 5, "S": 64}
    with pytest.raises(ValueError, match=r"reference must be \[B, 68, 2\] with B=2, T=5, got \[3, 68, 2\]"):
        check_shape(torch.zeros(3, 68, 2), "B 68 2", "reference", dims)


@pytest.mark.parametrize(
    "shape",
    [(2, 5, 67, 2), (5, 68, 2), (2, 5, 68, 2, 1), (2, 3, 64, 32)],
    ids=["number", "fewer", "more", "same name"],
)
def test_it_refuses_what_does_not_fit(shape):
    pattern = "B 3 S S" if shape == (2, 3, 64, 32) else "B T 68 2"
    with pytest.raises(
        ValueError, match=rf"x must be \[{', '.join(pattern.split())}\], got \[{', '.join(map(str, shape))}\]"
    ):
        check_shape(torch.zeros(shape), pattern, "x")


def test_a_star_takes_any_leading_dimensions():
    assert check_shape(torch.zeros(4, 2, 7, 68, 2), "* 68 2", "points") == {}
    assert check_shape(torch.zeros(68, 2), "* 68 2", "points") == {}
    with pytest.raises(ValueError):
        check_shape(torch.zeros(2), "* 68 2", "points")
