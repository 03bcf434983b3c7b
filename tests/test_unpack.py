"""The LMS's zips unpacked safely (grading/unpack.py, issue 35): names decoded as written, nothing outside the out
folder, a bomb refused in seconds, every odd zip its own note."""

import stat
import time
import zipfile

import pytest

from grading import unpack
from grading.unpack import unpack_zip
from lms_class import encrypted_flag, raw_zip

NAME = "이경민"


@pytest.mark.parametrize("utf8_flag", [True, False], ids=["utf-8 flag", "cp949"])
def test_korean_names_are_decoded_as_their_writer_meant(tmp_path, utf8_flag):
    path = raw_zip(tmp_path / f"PA1_202412345_{NAME}.zip", [(f"{NAME}/모델.py", b"x = 1\n"),
                                                             ("report.pdf", b"%PDF-1.4")], utf8_flag)
    with zipfile.ZipFile(path) as archive:
        assert all(bool(i.flag_bits & 0x800) == utf8_flag for i in archive.infolist() if not i.filename.isascii())
    result = unpack_zip(path, tmp_path / "out")
    assert result.status == "unpacked" and result.name == f"PA1_202412345_{NAME}"
    assert (result.folder / NAME / "모델.py").read_bytes() == b"x = 1\n"
    assert result.files == 2


def test_entries_that_climb_out_or_are_links_or_devices_are_left_out_and_nothing_lands_outside(tmp_path):
    link = zipfile.ZipInfo("evil_link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    fifo = zipfile.ZipInfo("pipe")
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    path = raw_zip(tmp_path / "PA1_1_a.zip", [("../../escaped.py", b"bad"), ("/abs/escaped.py", b"bad"),
                                              ("ok/..\\..\\win.py", b"bad"), (link, b"/etc/passwd"), (fifo, b""),
                                              ("model.py", b"good")])
    out = tmp_path / "deep" / "out"
    result = unpack_zip(path, out)
    assert result.status == "unpacked"
    assert sorted(p.name for p in result.folder.rglob("*")) == ["model.py"]
    assert not list(tmp_path.glob("*.py")) and not (tmp_path / "deep" / "escaped.py").exists()
    notes = " ".join(result.notes)
    assert notes.count("leaves the submission's folder") == 3 and "symbolic link" in notes and "FIFO" in notes


def test_a_zip_bomb_is_refused_in_seconds_and_leaves_nothing(tmp_path):
    path = raw_zip(tmp_path / "PA1_2_bomb.zip", [("model.py", b"x = 1\n"), ("data.bin", bytes(400 << 20))])
    started = time.monotonic()
    result = unpack_zip(path, tmp_path / "out")
    assert result.status == "refused" and "zip bomb" in result.notes[0]
    assert time.monotonic() - started < 10 and not (tmp_path / "out" / "PA1_2_bomb").exists()


def test_too_many_entries_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(unpack, "MAX_ENTRIES", 10)
    path = raw_zip(tmp_path / "PA1_3_many.zip", [(f"f{i}.py", b"") for i in range(11)])
    result = unpack_zip(path, tmp_path / "out")
    assert result.status == "refused" and "11 entries" in result.notes[0]


def test_a_nested_zip_is_unpacked_one_level_and_a_deeper_one_stays_packed(tmp_path):
    deepest = raw_zip(tmp_path / "deepest.zip", [("x.py", b"")]).read_bytes()
    inner = raw_zip(tmp_path / "inner.zip", [("code/model.py", b"inner"), ("deeper.zip", deepest)]).read_bytes()
    result = unpack_zip(raw_zip(tmp_path / "PA1_4_n.zip", [("src.zip", inner), ("report.pdf", b"%PDF")]),
                        tmp_path / "out")
    assert (result.folder / "src" / "code" / "model.py").read_bytes() == b"inner"
    assert (result.folder / "src" / "deeper.zip").is_file() and not (result.folder / "src" / "deeper").exists()
    assert any("one level deep" in n for n in result.notes)


@pytest.mark.parametrize("content, status", [(b"this is a report, not a zip", "not a zip"), (None, "empty"),
                                             ("encrypted", "encrypted")])
def test_a_non_zip_an_empty_zip_and_an_encrypted_one_each_get_their_own_status(tmp_path, content, status):
    path = tmp_path / "PA1_5_x.zip"
    if content is None:
        zipfile.ZipFile(path, "w").close()
    elif content == "encrypted":
        encrypted_flag(raw_zip(path, [("model.py", b"scrambled")]))
    else:
        path.write_bytes(content)
    result = unpack_zip(path, tmp_path / "out")
    assert result.status == status and result.folder is None and len(result.notes) == 1
