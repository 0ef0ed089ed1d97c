"""The wheel: one import root, every package mapped under it, configs and checkpoints inside."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_the_wheel_holds_only_talking_face_with_its_configs_and_checkpoints(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path),
         str(ROOT)], check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("talking_face-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"talking_face"}
    for folder in ("datamodules", "lightning_modules", "callbacks", "configs"):  # the design card's folders
        sources = {p.relative_to(ROOT / folder).as_posix() for p in (ROOT / folder).rglob("*.py")}
        packed = {
            n.removeprefix(f"talking_face/{folder}/")
            for n in names
            if n.startswith(f"talking_face/{folder}/")
        }
        assert sources <= packed, sorted(sources - packed)
    assert {f"talking_face/configs/{p.name}" for p in (ROOT / "configs").glob("*.yaml")} <= set(names)
    for stage in ("landmarks", "face2vid"):
        assert f"talking_face/generation/shipped/{stage}.ckpt" in names
