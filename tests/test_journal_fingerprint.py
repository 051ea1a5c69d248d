"""Journal fingerprints of inputs: a changed tracks file or labels folder must change the run hash."""

from __future__ import annotations

import os

from posefix_video.video.journal import file_fingerprint


def test_folder_fingerprint_sees_contents_sizes_and_names(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "clip_1.txt").write_text("0 0.5 0.5 0.1 0.2\n")
    (labels / "clip_2.txt").write_text("0 0.4 0.5 0.1 0.2\n")
    base_full, base_quick = file_fingerprint(labels, full=True), file_fingerprint(labels)
    assert base_full["files"] == 2
    assert file_fingerprint(labels, full=True) == base_full  # stable
    # same size and mtime, other content: only the full fingerprint sees it
    st = (labels / "clip_2.txt").stat()
    (labels / "clip_2.txt").write_text("0 0.3 0.5 0.1 0.2\n")
    os.utime(labels / "clip_2.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert file_fingerprint(labels, full=True) != base_full
    assert file_fingerprint(labels) == base_quick
    # a new mtime or a renamed file changes both
    os.utime(labels / "clip_2.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert file_fingerprint(labels) != base_quick
    os.rename(labels / "clip_1.txt", labels / "clip_3.txt")
    assert file_fingerprint(labels)["sha256"] != base_quick["sha256"]


def test_file_fingerprint_full_and_head(tmp_path):
    f = tmp_path / "tracks.json"
    f.write_bytes(b"a" * 100)
    full, head = file_fingerprint(f, full=True), file_fingerprint(f, head_bytes=50)
    st = f.stat()
    f.write_bytes(b"a" * 99 + b"b")  # same size, same mtime, a change past the head
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert file_fingerprint(f, full=True) != full  # tracks files are hashed whole
    assert file_fingerprint(f, head_bytes=50) == head  # videos: size + mtime + head only, by design
