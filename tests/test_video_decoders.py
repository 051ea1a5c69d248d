"""Decoders: sequential decode of the shared fixtures (B-frames in AVI, VFR, display-matrix rotation) checked frame by
frame through the burned-in barcode, frame folders, the background stream, chunking, and the encoder."""

from __future__ import annotations

import threading
from fractions import Fraction

import numpy as np
import pytest

from posefix_video.errors import InputError
from posefix_video.video import FrameStream, chunk_frames, open_frames
from posefix_video.video.barcode import draw_barcode, read_barcode
from posefix_video.video.encode import VideoEncoder

DECODERS = ["decord", "pyav", "opencv"]


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("name", ["h264_bframes_in_avi_640x360_300f.avi", "vfr_h264_640x360_300f.mp4"])
def test_fixture_every_barcode_in_order(shared_data, decoder, name):
    reader = open_frames(shared_data / "video" / "synthetic" / name, decoder=decoder)
    got = [read_barcode(frame) for _, frame in FrameStream(reader, max_queue=4)]
    assert got == list(range(300))
    assert reader.info.size == (360, 640)


@pytest.mark.parametrize("decoder", DECODERS)
def test_rotated_video_is_returned_as_displayed(shared_data, decoder):
    path = shared_data / "video" / "synthetic" / "rot90_displaymatrix_320x180_30f.mp4"
    reader = open_frames(path, decoder=decoder)
    assert reader.info.rotation == 90 and reader.info.coded_size == (180, 320) and reader.info.size == (320, 180)
    frames = [f for _, f in FrameStream(reader)]
    assert len(frames) == 30 and all(f.shape == (320, 180, 3) for f in frames)
    # the displayed frame is the coded frame turned 90 degrees counter-clockwise: the barcode (top band of the
    # coded frame) now runs down the left edge, bit 0 at the bottom
    coded = np.rot90(frames[17], k=-1)
    assert read_barcode(coded) == 17


def test_rotated_pixels_agree_across_decoders(shared_data):
    path = shared_data / "video" / "synthetic" / "rot90_displaymatrix_320x180_30f.mp4"
    first = {d: next(iter(open_frames(path, decoder=d).frames())) for d in DECODERS}
    assert np.abs(first["pyav"].astype(int) - first["opencv"]).mean() < 1.0
    assert np.abs(first["pyav"].astype(int) - first["decord"]).mean() < 1.0


@pytest.mark.parametrize("name", ["synthetic/h264_bframes_in_avi_640x360_300f.avi",
                                  "synthetic/vfr_h264_640x360_300f.mp4",
                                  "synthetic/rot90_displaymatrix_320x180_30f.mp4",
                                  "mmpose_demo_street_960x540_5f.mp4"])
def test_every_frame_pixel_identical_across_decoders(shared_data, name):
    # the backends are interchangeable (the default can be any of them): same frame count, same pixels on every
    # frame, B-frames in AVI, VFR and display-matrix rotation included
    path = shared_data / "video" / name
    readers = [open_frames(path, decoder=d).frames() for d in DECODERS]
    count = 0
    for frames in zip(*readers, strict=True):
        for decoder, frame in zip(DECODERS[1:], frames[1:], strict=True):
            assert frame.shape == frames[0].shape and np.array_equal(frame, frames[0]), (decoder, count)
        count += 1
    assert count == {"mmpose_demo_street_960x540_5f.mp4": 5, "synthetic/rot90_displaymatrix_320x180_30f.mp4": 30}.get(
        name, 300)


def test_info_of_real_clip(shared_data):
    reader = open_frames(shared_data / "video" / "mmpose_demo_street_960x540_5f.mp4")
    assert reader.info.fps == Fraction(5) and reader.info.size == (540, 960) and reader.info.header_frames == 5
    assert sum(1 for _ in reader.frames()) == 5


def test_frame_folder_order_and_errors(tmp_path):
    import cv2

    folder = tmp_path / "f"
    folder.mkdir()
    for i in [1, 2, 10]:  # numeric, not lexical, order; 1-based names still give frame 0 first
        img = draw_barcode(np.zeros((96, 160, 3), np.uint8), i)
        cv2.imwrite(str(folder / f"{i}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    (folder / "notes.jpg").write_bytes(b"x")
    reader = open_frames(folder, fps=29.97)
    assert reader.info.backend == "folder" and reader.info.header_frames == 3
    assert reader.info.fps == Fraction(2997, 100)
    assert [read_barcode(f) for f in reader.frames()] == [1, 2, 10]
    (folder / "11.jpg").write_bytes(b"not an image")
    with pytest.raises(InputError, match="11.jpg.*cannot decode"):
        list(open_frames(folder).frames())
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty.*no numbered frames"):
        open_frames(tmp_path / "empty", decoder="pyav")


def test_missing_and_corrupt_video(tmp_path):
    with pytest.raises(InputError, match="nope.mp4.*no such"):
        open_frames(tmp_path / "nope.mp4")
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 1000)
    with pytest.raises(InputError, match="bad.mp4.*cannot open"):
        open_frames(tmp_path / "bad.mp4")


def test_stream_is_bounded_and_forwards_errors():
    made = []

    class Source:
        info = None

        def frames(self):
            for i in range(100):
                made.append(i)
                yield np.full((2, 2, 3), i, np.uint8)
            raise InputError("x.mp4", "broken", "frame 100")

        def close(self):
            pass

    stream = FrameStream(Source(), max_queue=3)
    it = iter(stream)
    next(it)
    threading.Event().wait(0.2)
    assert len(made) <= 1 + 3 + 1  # consumed + queued + one blocked in put()
    with pytest.raises(InputError, match="broken"):
        for _ in it:
            pass
    assert stream.count == 100


def test_chunking_fills_batches_across_frames():
    frames = ((i, np.zeros((1, 1, 3), np.uint8)) for i in range(10))
    persons = {0: 3, 1: 0, 2: 1, 3: 5, 4: 1, 5: 1, 6: 1, 7: 0, 8: 0, 9: 2}
    chunks = list(chunk_frames(frames, persons.__getitem__, batch_size=4, max_frames=3, done_until=5))
    got = [(c.start, c.stop, c.num_persons, c.done) for c in chunks]
    assert got == [(0, 3, 4, True), (3, 4, 5, True), (4, 5, 1, True), (5, 8, 2, False), (8, 10, 2, False)]
    assert all(len(c.frames) == c.stop - c.start for c in chunks)


def test_encoder_exact_rate_odd_size(tmp_path):
    import av

    enc = VideoEncoder(tmp_path / "o.mp4", Fraction(30000, 1001), (101, 161))
    for i in range(12):
        enc.write(draw_barcode(np.zeros((101, 161, 3), np.uint8), i))
    assert not (tmp_path / "o.mp4").exists()  # appears only when complete
    enc.close()
    with av.open(str(tmp_path / "o.mp4")) as c:
        st = c.streams.video[0]
        assert st.average_rate == Fraction(30000, 1001) and st.codec_context.name == "h264"
        codes = [read_barcode(f.to_ndarray(format="rgb24")[:101, :161]) for f in c.decode(st)]
    assert codes == list(range(12))
