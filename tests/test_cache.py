import numpy as np
import pytest

from talking_face.datamodules.atomic import atomic_path
from talking_face.datamodules.cache import (
    ARRAY_NAMES,
    StreamedArray,
    is_done,
    load_manifest,
    record_dir,
    scan_records,
    write_manifest,
    write_record,
)


def _arrays(frames: int = 3) -> dict:
    return {name: np.zeros((frames, 2), np.float32) for name in ARRAY_NAMES}


def test_record_is_written_whole_and_memory_mapped(tmp_path):
    folder = record_dir(tmp_path, "s1", "u1")
    arrays = _arrays() | {
        "frames": StreamedArray((3, 4, 4, 3), np.uint8, (np.full((4, 4, 3), i) for i in range(3)))
    }
    write_record(folder, arrays, {"speaker": "s1", "utterance": "u1", "num_frames": 3, "text": "hi"})
    assert is_done(tmp_path, "s1", "u1")
    (record,) = scan_records(tmp_path)
    frames = record.array("frames")
    assert isinstance(frames, np.memmap) and frames[2].max() == 2
    write_manifest(tmp_path)
    assert [r.utterance for r in load_manifest(tmp_path)] == ["u1"]


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    def rows():
        yield np.zeros((4, 4, 3))
        raise RuntimeError("killed mid-write")

    arrays = _arrays() | {"frames": StreamedArray((3, 4, 4, 3), np.uint8, rows())}
    with pytest.raises(RuntimeError, match="killed"):
        write_record(record_dir(tmp_path, "s1", "u1"), arrays, {})
    assert not is_done(tmp_path, "s1", "u1")
    assert not any(p.is_dir() for p in (tmp_path / "records" / "s1").iterdir())


def test_streamed_arrays_must_match_their_announced_length(tmp_path):
    arrays = _arrays() | {"frames": StreamedArray((3, 4, 4, 3), np.uint8, iter([np.zeros((4, 4, 3))]))}
    with pytest.raises(ValueError, match="1 rows written, 3 announced"):
        write_record(record_dir(tmp_path, "s1", "u1"), arrays, {})


def test_missing_arrays_and_missing_manifest_are_clear(tmp_path):
    with pytest.raises(ValueError, match="lacks arrays"):
        write_record(tmp_path / "r", {"frames": np.zeros(1)}, {})
    with pytest.raises(FileNotFoundError, match="talking-face preprocess"):
        load_manifest(tmp_path)


def test_atomic_file_keeps_the_old_version_on_failure(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old" and len(list(tmp_path.iterdir())) == 1
