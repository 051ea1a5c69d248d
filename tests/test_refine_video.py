"""End-to-end streaming refinement on generated clips whose frames carry their index as a barcode.

A stub refiner cuts every person's crop with the real device-crop path (posefix_video.net.crop) from the frames the
streaming pipeline hands it, and reads the barcode back *from the crop*: any off-by-one between decoded frames,
chunks and track records shows up as a wrong barcode in the output.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from posefix_video import geometry
from posefix_video.errors import PosefixError
from posefix_video.keypoints import POSETRACK18
from posefix_video.records import PersonRecord, PoseSequence
from posefix_video.video.barcode import NUM_BITS, draw_barcode
from posefix_video.video.encode import VideoEncoder
from posefix_video.video.journal import journal_path
from posefix_video.video.refine_video import refine_video

FRAME_HW = (256, 192)
CROP_HW = (256, 192)
SEQ = "000001_mpiinew_test"


def make_frames(n: int) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        f = np.full((*FRAME_HW, 3), 90, np.uint8)
        f[FRAME_HW[0] // 2 :, :, 0] = (37 * i) % 200  # some content below the barcode
        frames.append(draw_barcode(f, i))
    return frames


def write_clip(path: Path, n: int) -> None:
    enc = VideoEncoder(path, Fraction(30), FRAME_HW, crf=12)
    for f in make_frames(n):
        enc.write(f)
    enc.close()


def write_folder(folder: Path, n: int) -> None:
    import cv2

    folder.mkdir(parents=True)
    for i, f in enumerate(make_frames(n)):
        cv2.imwrite(str(folder / f"{i:06d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])


def big_person(frame: int, track: int) -> PersonRecord:
    """A 'person' whose keypoints span the whole frame, so its crop holds the whole barcode band."""
    h, w = FRAME_HW
    kp = np.zeros((17, 2))
    kp[:, 0] = np.linspace(2, w - 3, 17)
    kp[:, 1] = np.linspace(2, h - 3, 17)
    present = np.ones(17, bool)
    present[[3, 4]] = False
    return PersonRecord(frame=frame, track_id=track, keypoints=np.where(present[:, None], kp, 0),
                        scores=np.full(17, .5),
                        present=present, visibility=present.astype(float))


def no_joint_person(frame: int, track: int) -> PersonRecord:
    return PersonRecord(frame=frame, track_id=track, keypoints=np.zeros((17, 2)), scores=np.zeros(17),
                        present=np.zeros(17, bool), visibility=np.zeros(17))


def write_tracks(path: Path, n: int, empty: tuple[int, ...] = (3,), extra_frames: int = 0) -> PoseSequence:
    """PT18 tracks: two persons per frame (one passed through for lack of joints), no person on `empty`."""
    from posefix_video.io import write_posetrack18

    seq = PoseSequence(name=SEQ, layout=POSETRACK18, num_frames=n + extra_frames)
    for f in range(n + extra_frames):
        if f in empty:
            continue
        seq.add(big_person(f, 7))
        if f % 2 == 0:
            seq.add(no_joint_person(f, 11))
    write_posetrack18(seq, path, seq_name=SEQ, image_size=(FRAME_HW[1], FRAME_HW[0]))
    return seq


class BarcodeRefiner:
    """Refiner stand-in: crops like the real refiner, reads the barcode from each crop, moves joints by +1 px."""

    layout = POSETRACK18
    input_size = CROP_HW
    flip_test = False
    device = "cpu"

    def __init__(self):
        self.calls: list[tuple[int, int]] = []  # (frames in the call, persons)

    def refine_records(self, frames, records, frame_offset=0):
        import torch

        from posefix_video.net.crop import crop_boxes, crop_frames

        assert isinstance(frames, torch.Tensor) and frames.dtype == torch.uint8
        self.calls.append((frames.shape[0], len(records)))
        kp = np.stack([r.keypoints for r in records])
        present = np.stack([r.present for r in records])
        boxes = crop_boxes(kp, present, self.layout, self.input_size)
        counts, out = Counter(), []
        ok_idx = np.flatnonzero(boxes.ok)
        if len(ok_idx):
            M = geometry.crop_affine(boxes.centre[ok_idx], boxes.size[ok_idx], self.input_size)
            fidx = np.array([records[i].frame - frame_offset for i in ok_idx])
            crops = crop_frames(frames, fidx, M, self.input_size).numpy()  # (P, 3, H, W)
        codes = {}
        h, w = FRAME_HW
        band_y = (h // 6) / 2
        centres = np.stack([(np.arange(NUM_BITS) + 0.5) * w / NUM_BITS, np.full(NUM_BITS, band_y)], -1)
        for k, i in enumerate(ok_idx):
            uv = geometry.apply_affine(M[k : k + 1], centres[None])[0].round().astype(int)
            grey = crops[k].mean(0)
            bits = grey[uv[:, 1], uv[:, 0]] > 127
            codes[i] = int(sum(int(b) << j for j, b in enumerate(bits)))
        for i, r in enumerate(records):
            if i in codes:
                out.append(r.replace(keypoints=r.keypoints + 1.0,
                                     extra={**r.extra, "barcode": codes[i], "posefix_confidence": [0.5] * 17}))
            else:
                counts[boxes.reason[i]] += 1
                out.append(r.replace())
        return out, counts


def check_output(path: Path, n: int, empty=(3,)) -> dict:
    data = json.loads(path.read_text())
    assert len(data["images"]) == n
    ids = [im["id"] for im in data["images"]]
    assert len(set(ids)) == n
    frame_of = {im_id: k for k, im_id in enumerate(ids)}
    per_frame = Counter()
    for ann in data["annotations"]:
        f = frame_of[ann["image_id"]]
        per_frame[f] += 1
        assert len(ann["scores"]) == 17 and len(ann["keypoints"]) == 51
        if ann["track_id"] == 7:
            assert ann["barcode"] == f, f"crop of frame {f} shows frame {ann['barcode']}"
        else:
            assert "barcode" not in ann
    for f in range(n):
        assert per_frame[f] == (0 if f in empty else 1 + (f % 2 == 0))
    for f in range(n):  # unique track ids per frame
        tids = [a["track_id"] for a in data["annotations"] if frame_of[a["image_id"]] == f]
        assert len(tids) == len(set(tids))
    return data


@pytest.mark.parametrize("decoder", ["decord", "pyav", "opencv"])
def test_barcode_video_every_crop_from_its_frame(tmp_path, decoder):
    n = 23
    write_clip(tmp_path / "clip.mp4", n)
    write_tracks(tmp_path / "tracks.json", n)
    stub = BarcodeRefiner()
    s = refine_video(tmp_path / "clip.mp4", tmp_path / "tracks.json", refiner=stub, decoder=decoder,
                     batch_size=5, chunk_frames_max=4)
    out = tmp_path / "tracks_refined.json"
    assert s.output == out and s.frames == n
    check_output(out, n)
    persons = 2 * (n - 1) - sum(1 for f in range(n) if f % 2 and f != 3) - (0)
    assert s.persons == sum(1 + (f % 2 == 0) for f in range(n) if f != 3) == persons
    assert s.refined == n - 1 and s.passed_through == {"no usable joints": s.persons - (n - 1)}
    # batches span several frames, capped by persons and frames
    assert max(p for _, p in stub.calls) >= 5 and max(f for f, _ in stub.calls) <= 4
    assert sum(p for _, p in stub.calls) == s.persons
    assert not journal_path(out).exists()


def test_barcode_frame_folder(tmp_path):
    n = 9
    write_folder(tmp_path / "frames", n)
    write_tracks(tmp_path / "tracks.json", n)
    s = refine_video(tmp_path / "frames", tmp_path / "tracks.json", out=tmp_path / "o" / "out.json",
                     refiner=BarcodeRefiner(), batch_size=3)
    assert s.frames == n
    check_output(tmp_path / "o" / "out.json", n)


def test_resume_after_interrupt_equals_uninterrupted(tmp_path):
    n = 30
    write_clip(tmp_path / "clip.mp4", n)
    write_tracks(tmp_path / "tracks.json", n)
    full = tmp_path / "full.json"
    refine_video(tmp_path / "clip.mp4", tmp_path / "tracks.json", out=full, refiner=BarcodeRefiner(), batch_size=4)

    out = tmp_path / "resumed.json"

    class Stop(Exception):
        pass

    def stop_after_3(k):
        if k == 3:
            raise Stop

    with pytest.raises(Stop):
        refine_video(tmp_path / "clip.mp4", tmp_path / "tracks.json", out=out, refiner=BarcodeRefiner(), batch_size=4,
                     on_chunk=stop_after_3)
    assert not out.exists()
    lines = journal_path(out).read_text().splitlines()
    assert len(lines) == 1 + 3
    # a kill mid-write leaves half a line: it must be dropped
    with open(journal_path(out), "a") as f:
        f.write('{"start": 99, "persons": [')
    stub = BarcodeRefiner()
    s = refine_video(tmp_path / "clip.mp4", tmp_path / "tracks.json", out=out, refiner=stub, batch_size=4,
                     resume=True, render=tmp_path / "r.mp4")
    done = json.loads(lines[-1])["stop"]
    assert s.resumed_frames == done > 0
    assert sum(p for _, p in stub.calls) == sum(1 + (f % 2 == 0) for f in range(done, n) if f != 3)
    assert json.loads(out.read_text()) == json.loads(full.read_text())
    assert not journal_path(out).exists()
    import av

    with av.open(str(tmp_path / "r.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == n


def test_resume_refuses_journal_of_other_inputs(tmp_path):
    n = 8
    write_clip(tmp_path / "clip.mp4", n)
    write_tracks(tmp_path / "tracks.json", n)
    out = tmp_path / "out.json"

    def stop(k):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        refine_video(tmp_path / "clip.mp4", tmp_path / "tracks.json", out=out, refiner=BarcodeRefiner(), batch_size=2,
                     on_chunk=stop)
    with pytest.raises(PosefixError, match="other inputs or options"):
        refine_video(tmp_path / "clip.mp4", tmp_path / "tracks.json", out=out, refiner=BarcodeRefiner(), batch_size=2,
                     resume=True, decoder="opencv")
    assert not out.exists()


def test_tracks_beyond_last_frame(tmp_path):
    write_clip(tmp_path / "clip.mp4", 6)
    write_tracks(tmp_path / "tracks.json", 6, extra_frames=3)
    out = tmp_path / "out.json"
    with pytest.raises(PosefixError) as err:
        refine_video(tmp_path / "clip.mp4", tmp_path / "tracks.json", out=out, refiner=BarcodeRefiner())
    msg = str(err.value)
    assert "tracks.json" in msg and "last decoded frame is 5" in msg and "frame 6" in msg
    assert not out.exists() and not journal_path(out).exists()


def test_layout_mismatch(tmp_path):
    from posefix_video.keypoints import COCO17

    write_clip(tmp_path / "clip.mp4", 3)
    write_tracks(tmp_path / "tracks.json", 3)
    stub = BarcodeRefiner()
    stub.layout = COCO17
    with pytest.raises(PosefixError, match="coco17 poses but .*posetrack18"):
        refine_video(tmp_path / "clip.mp4", tmp_path / "tracks.json", out=tmp_path / "o.json", refiner=stub)
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("problem", ["missing", "corrupt", "truncated", "empty_tracks", "same_as_tracks"])
def test_bad_inputs_clear_error_no_output(tmp_path, problem):
    n = 40
    video, tracks, out = tmp_path / "clip.mp4", tmp_path / "tracks.json", tmp_path / "out.json"
    write_clip(video, n)
    write_tracks(tracks, n)
    expect = str(video)
    if problem == "missing":
        video.unlink()
    elif problem == "corrupt":
        video.write_bytes(os.urandom(5000))
    elif problem == "truncated":
        data = video.read_bytes()
        video.write_bytes(data[: len(data) // 2])
    elif problem == "empty_tracks":
        tracks.write_text("")
        expect = "empty"
    elif problem == "same_as_tracks":
        out = tracks
        expect = "overwrite"
    before = tracks.read_bytes()
    with pytest.raises(PosefixError) as err:
        refine_video(video, tracks, out=out, refiner=BarcodeRefiner())
    assert expect in str(err.value)
    assert tracks.read_bytes() == before
    if out != tracks:
        assert not out.exists()
    assert not journal_path(out).exists() or problem == "same_as_tracks"
