"""--keep_linebreaks (MedicalGPT's text loader option) for pretraining on .txt files."""

from medtrain.cli.pretrain import LinebreakTextEncoder
from medtrain.data.sources import WorkUnit, find_files
from medtrain.data.tokenization import TextEncoder

from helpers import write_jsonl, write_text


def texts(encoder, path):
    (f,) = find_files([path])
    return [t for _, t in encoder.read(WorkUnit(f))]


def test_keep_linebreaks_keeps_each_txt_line_break(spec, tmp_path):
    txt = write_text(tmp_path / "a.txt", "first line\nsecond line\n")
    jsonl = write_jsonl(tmp_path / "b.jsonl", ["a json text"])
    plain, keep = TextEncoder(spec), LinebreakTextEncoder(spec)
    assert texts(plain, txt) == ["first line", "second line"]
    assert texts(keep, txt) == ["first line\n", "second line\n"]
    assert texts(keep, jsonl) == texts(plain, jsonl) == ["a json text"]
    assert keep.fingerprint != plain.fingerprint      # another token store
    assert type(keep.with_spec(spec)) is LinebreakTextEncoder and keep.describe()["keep_linebreaks"] is True
    ids_plain = list(plain.encode_batch(["first line"])[0][0])
    ids_keep = list(keep.encode_batch(["first line\n"])[0][0])
    assert ids_keep[:-1] != ids_plain[:-1] and ids_keep[-1] == ids_plain[-1] == spec.eos_id  # "\n" then EOS
