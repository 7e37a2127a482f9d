"""Atomic writes: whole or not at all, never through a link, and what a killed writer left is cleared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from resnet_course.atomic import remove_stale_temporaries, write_atomically, write_text_atomically


def test_a_link_with_the_targets_name_is_replaced_not_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.json").symlink_to(outside)
    write_text_atomically(run / "history.json", "{}")
    assert outside.read_text() == "keep me"
    assert not (run / "history.json").is_symlink() and (run / "history.json").read_text() == "{}"
    assert [p.name for p in run.iterdir()] == ["history.json"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "last.pt"
    target.write_bytes(b"old")

    def fail(f) -> None:
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, fail)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_temporary_names_cannot_be_predicted_and_files_keep_the_usual_permissions(tmp_path: Path) -> None:
    names = set()
    for _ in range(3):
        write_text_atomically(tmp_path / "a.json", "x")
        names |= {p.name for p in tmp_path.iterdir()}
    assert names == {"a.json"}
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644 & ~umask


def test_stale_temporaries_of_the_named_files_only_are_removed(tmp_path: Path) -> None:
    for name in (".best.pt.123.ab12cd34.tmp", ".history.json.9.ffffffff.tmp", ".other.1.2.tmp", "best.pt"):
        (tmp_path / name).write_bytes(b"x")
    removed = remove_stale_temporaries(tmp_path, ["best.pt", "history.json", "last.pt"])
    assert sorted(p.name for p in removed) == [".best.pt.123.ab12cd34.tmp", ".history.json.9.ffffffff.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.1.2.tmp", "best.pt"]
