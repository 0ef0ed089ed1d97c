"""The 68-point facial landmark scheme (iBUG 300-W / dlib) and its named index groups."""

from __future__ import annotations

NUM_LANDMARKS: int = 68

JAW = range(0, 17)
RIGHT_BROW = range(17, 22)  # the subject's right, on the left of the image
LEFT_BROW = range(22, 27)
NOSE_BRIDGE = range(27, 31)
NOSE_BASE = range(31, 36)
RIGHT_EYE = range(36, 42)
LEFT_EYE = range(42, 48)
MOUTH = range(48, 68)
OUTER_LIP = range(48, 60)
INNER_LIP = range(60, 68)
NUM_MOUTH: int = len(MOUTH)

# Points that do not move when a person speaks or blinks: the frame of reference for alignment.
STABLE = (*NOSE_BRIDGE, *NOSE_BASE, 36, 39, 42, 45)
