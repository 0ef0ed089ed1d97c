import pytest

from talking_face.datamodules.corpora import CorpusError, read_corpus, read_folder, read_grid
from talking_face.datamodules.corpora.utterance import read_grid_align, write_grid_align
from talking_face.datamodules.segments import Segment

ALIGN = "0 23750 sil\n23750 29500 bin\n29500 34000 blue\n34000 35500 at\n35500 41000 f\n41000 47250 two\n47250 53000 now\n53000 74500 sil\n"  # noqa: E501


def _touch(path, text=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_grid_align_is_parsed_in_seconds(tmp_path):
    words = read_grid_align(_touch(tmp_path / "bbaf2n.align", ALIGN))
    assert words[0] == Segment("sil", 0.0, 0.95)
    assert [w.label for w in words[1:-1]] == ["bin", "blue", "at", "f", "two", "now"]
    assert words[-1].end == pytest.approx(2.98)
    write_grid_align(tmp_path / "again.align", words)
    assert read_grid_align(tmp_path / "again.align") == words


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "empty"),
        ("0 100\n", "malformed"),
        ("a b sil\n", "malformed"),
        ("100 200 bin\n0 50 sil\n", "backwards"),
    ],
)
def test_malformed_align_names_the_file(tmp_path, text, problem):
    with pytest.raises(CorpusError, match=rf"bad.align.*{problem}"):
        read_grid_align(_touch(tmp_path / "bad.align", text))


def test_grid_layouts_in_the_wild_are_matched_by_id(tmp_path):
    # layout 1: sN/*.mpg with alignments/sN/*.align and audio_25k/sN/*.wav
    _touch(tmp_path / "a" / "s1" / "bbaf2n.mpg")
    _touch(tmp_path / "a" / "alignments" / "s1" / "bbaf2n.align", ALIGN)
    _touch(tmp_path / "a" / "audio_25k" / "s1" / "bbaf2n.wav")
    # layout 2: sN/video/mpg_6000/*.mpg with sN/align/*.align, audio inside the video
    _touch(tmp_path / "b" / "s12" / "video" / "mpg_6000" / "lgaz8p.mpg")
    _touch(tmp_path / "b" / "s12" / "align" / "lgaz8p.align", ALIGN)
    (first,) = read_grid(tmp_path / "a")
    assert (first.speaker, first.utterance) == ("s1", "bbaf2n")
    assert first.alignment.name == "bbaf2n.align" and first.audio.name == "bbaf2n.wav"
    (second,) = read_grid(tmp_path / "b")
    assert (second.speaker, second.audio, second.read_text()) == ("s12", None, "bin blue at f two now")


def test_grid_reader_refuses_a_folder_without_grid_videos(tmp_path):
    with pytest.raises(CorpusError, match="no GRID videos"):
        read_grid(tmp_path)
    with pytest.raises(CorpusError, match="does not exist"):
        read_grid(tmp_path / "nowhere")


def test_folder_reader_pairs_videos_with_transcripts(tmp_path):
    _touch(tmp_path / "alice" / "hello.mp4")
    _touch(tmp_path / "alice" / "hello.txt", "  Hello,\n world!  ")
    _touch(tmp_path / "bob" / "untranscribed.mov")
    utterances = read_folder(tmp_path)
    assert [(u.speaker, u.utterance) for u in utterances] == [("alice", "hello"), ("bob", "untranscribed")]
    assert utterances[0].read_text() == "Hello, world!"
    with pytest.raises(CorpusError, match="untranscribed.txt: transcript file is missing"):
        utterances[1].read_text()
    assert read_corpus(tmp_path)[0].speaker == "alice"  # auto: no sN folders -> folder layout


def test_empty_transcript_names_the_file(tmp_path):
    _touch(tmp_path / "clip.mp4")
    _touch(tmp_path / "clip.txt", "   \n")
    with pytest.raises(CorpusError, match="clip.txt: transcript is empty"):
        read_folder(tmp_path)[0].read_text()
