"""Streaming refinement of one video: decode -> batch crops across frames -> refine -> journal -> PoseTrack18 JSON.

    summary = refine_video("clip.mp4", "tracks.json", "posefix.pt", out="refined.json", render="overlay.mp4")

Stages overlap: a decode thread fills a bounded frame queue, the calling thread groups consecutive frames until a
chunk holds `batch_size` persons (or `chunk_frames` frames) and refines the chunk in one refiner call, and a writer
thread appends each chunk's results to the journal (`OUT.partial.jsonl`, fsynced) and draws the `--render` video.
Memory is bounded by the queues, not by the video's length: results live on disk until the end, when the final
file is assembled from the journal and written atomically. `resume=True` re-decodes from frame 0 but refines only
the frames the journal lacks. Gap fills (`fill_gaps`, video/gaps.py) join the input persons before the stream and
leave the output after it when their confidence is too low.

Longer than 450 lines: one function wires the options (input formats, orientation, initializer, post-network
options, gap fills, resume) into the one streaming loop, and its docstring documents every one.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from posefix_video.cli import check_device, check_outputs
from posefix_video.errors import CheckpointError, InputError, PosefixError
from posefix_video.io.ultralytics_txt import labels_source
from posefix_video.net.safeguard import DEFAULT_FILL_JOINTS, DEFAULT_SAFEGUARD, DEFAULT_SCORES, SCORE_MODES
from posefix_video.records import PersonRecord, PoseSequence
from posefix_video.video.decoders import open_frames, truncation_warning
from posefix_video.video.gaps import drop_weak_fills, gap_records, with_records
from posefix_video.video.initial_poses import PoseStage, adopt_layout, load_initializer
from posefix_video.video.journal import Journal, file_fingerprint, journal_path, read_journal, run_hash
from posefix_video.video.orientation import orientation_warnings, results_to_coded, tracks_to_displayed
from posefix_video.video.reader import FrameReader
from posefix_video.video.stream import FrameStream, check_chunking, chunk_frames
from posefix_video.video.writer import ChunkWriter, assemble_output, previous_chunks, round_refined

log = logging.getLogger(__name__)

TRACKS_ORIENTATIONS = ("displayed", "coded")
# gap fills whose mean network confidence is under this are not written (docs/benchmarks.md, issue 18)
FILL_MIN_CONFIDENCE = 0.3
POST_DEFAULTS = {"safeguard": DEFAULT_SAFEGUARD, "fill_joints": DEFAULT_FILL_JOINTS, "scores": DEFAULT_SCORES}


@dataclass
class Summary:
    """What a run did.

    Attributes:
        output: the refined PoseTrack18 file.
        frames: frames decoded (= frames listed in the output).
        persons: persons in the output (= persons in the input).
        refined: persons the network refined (gap fills included).
        passed_through: reason -> persons passed through unchanged.
        resumed_frames: frames taken from an earlier run's journal.
        seconds: wall time of the run.
        render: the overlay video, if one was written.
        warnings: things the user should know (orientation, frame-count notes).
        frames_promised: the container's frame count when fewer frames decoded (a truncated video), else None.
        filled: gap fills written (persons the tracker lost, `fill_gaps`; extra "posefix_filled": true).
        fill_rejected: gap fills not written (network confidence under the threshold).
    """

    output: Path
    frames: int
    persons: int
    refined: int
    passed_through: dict[str, int]
    resumed_frames: int
    seconds: float
    render: Path | None = None
    warnings: list[str] = field(default_factory=list)
    filled: int = 0
    fill_rejected: int = 0
    frames_promised: int | None = None

    def __str__(self) -> str:
        passed = sum(self.passed_through.values())
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.passed_through.items())) or "none"
        lines = [
            f"output: {self.output}",
            f"frames: {self.frames}" + (f" ({self.resumed_frames} from the journal of an earlier run)"
                                        if self.resumed_frames else "")
            + (f" of {self.frames_promised} promised: the video is truncated" if self.frames_promised else ""),
            f"persons: {self.persons} (refined {self.refined}, passed through {passed}; reasons: {reasons})",
            f"time: {self.seconds:.1f} s ({self.frames / max(self.seconds, 1e-9):.1f} frames/s)",
        ]
        if self.filled or self.fill_rejected:
            lines.append(f"gap fills: {self.filled} written ({self.fill_rejected} under the confidence threshold)")
        if self.render:
            lines.append(f"render: {self.render}")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def default_output(tracks: str | os.PathLike) -> Path:
    """`<tracks_stem>_refined.json` beside the tracks file."""
    tracks = Path(tracks)
    return tracks.with_name(f"{tracks.stem}_refined.json")


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when a GPU is visible, else "cpu"; a CUDA device this torch cannot use is refused."""
    if device != "auto":
        check_device(device)
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_refiner(checkpoint: str | os.PathLike, device: str = "auto", flip_test: bool = True,
                 precision: str = "auto", batch_size: int = 64, backend: str = "auto",
                 official_test: bool = False) -> Any:
    """A `Refiner` from a checkpoint file or the name of an installed model (net/model_store.py; resolved first,
    so the message names it). Its forward batch holds `batch_size` persons (twice the crops with the flip test),
    so one chunk is one forward pass. backend: "torch", "onnxruntime" or "auto" (ONNX Runtime on the CPU when
    installed, torch on CUDA; net/onnx_backend.py); an exported .onnx file runs with ONNX Runtime."""
    from posefix_video.net.model_store import resolve_checkpoint
    from posefix_video.net.refiner import Refiner

    checkpoint = resolve_checkpoint(checkpoint)

    forward_batch = max(2, batch_size * (2 if flip_test else 1))
    if Path(checkpoint).suffix.lower() == ".onnx":
        if backend == "torch":
            raise PosefixError(f"{os.fspath(checkpoint)}: an ONNX export runs with --backend onnxruntime (or auto)")
        if official_test:
            raise PosefixError(f"{os.fspath(checkpoint)}: the official test rules need the checkpoint (.pth), "
                               "not an ONNX export")
        return Refiner.from_onnx(checkpoint, device=resolve_device(device), flip_test=flip_test,
                                 batch_size=forward_batch)
    return Refiner.from_checkpoint(checkpoint, device=resolve_device(device), flip_test=flip_test,
                                   precision=precision, batch_size=forward_batch, backend=backend,
                                   official_test=official_test)


def read_input_tracks(tracks: Path, reader: FrameReader, format: str, frame_base: int | str,
                      layout: str | None, tracks_orientation: str = "displayed") -> PoseSequence:
    """Reads the tracks file. The frame count is passed to the reader only where it is exact (frame folders);
    a container's header count can be wrong, so for video files the range check happens after decoding.
    Normalised coordinates are scaled by the size of the frames the tracks refer to (coded or displayed)."""
    from posefix_video.io import read_tracks

    if not tracks.is_file() and not tracks.is_dir():  # a folder: ultralytics labels
        raise InputError(tracks, "no such tracks file")
    if tracks.is_file() and not tracks.read_bytes().strip():
        raise InputError(tracks, "the tracks file is empty")
    exact = reader.info.header_frames if reader.info.backend == "folder" else None
    frame_hw = reader.info.coded_size if tracks_orientation == "coded" else reader.info.size
    # labels named after a frame folder's images pair with them by name (ultralytics): no frame base guess
    names = [p.stem for p in reader.files] if reader.info.backend == "folder" and hasattr(reader, "files") else None
    seq = read_tracks(tracks, format=format, frame_base=frame_base, layout=layout, num_frames=exact,
                      image_size=(frame_hw[1], frame_hw[0]), frame_names=names)  # (W, H) for normalised coordinates
    if seq.num_persons == 0:
        raise InputError(tracks, "the tracks file holds no person; there is nothing to refine")
    return seq


def refine_video(
    video: str | os.PathLike,
    tracks: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    *,
    format: str = "auto",
    frame_base: int | str = "auto",
    layout: str | None = None,
    batch_size: int = 64,
    chunk_frames_max: int = 32,
    device: str = "auto",
    flip_test: bool = True,
    precision: str = "auto",
    decoder: str = "pyav",
    fps: float | Fraction | None = None,
    render: str | os.PathLike | None = None,
    smooth: str = "none",
    smooth_params: Any = None,
    resume: bool = False,
    tracks_orientation: str = "displayed",
    seq_name: str | None = None,
    queue_frames: int = 8,
    progress: bool = False,
    refiner: Any = None,
    on_chunk: Callable[[int], None] | None = None,
    backend: str = "auto",
    safeguard: bool | None = None,
    fill_joints: bool = DEFAULT_FILL_JOINTS,
    scores: str = DEFAULT_SCORES,
    fill_gaps: int = 0,
    fill_min_confidence: float = FILL_MIN_CONFIDENCE,
    initializer: Any = None,
    refine: bool = True,
) -> Summary:
    """Refines every person of `tracks` on the frames of `video` and writes PoseTrack 2018 JSON to `out`.

    Args:
        video: a video file, or a folder of numbered frames (000000.jpg, ...).
        tracks: the tracker's output (any format `posefix_video.io.read_tracks` reads), in the displayed
            orientation of the video (or the coded one, see `tracks_orientation`).
        checkpoint: a posefix checkpoint file or installed model name; None: the installed model that fits the
            tracks' layout (net/model_store.py default_model). Not needed when `refiner` is given.
        out: output file; default `<tracks_stem>_refined.json` beside the tracks. Never the tracks file itself.
        format, frame_base, layout: passed to `read_tracks` (frame_base "auto", 0 or 1).
        batch_size: persons per refiner call to aim for; crops of consecutive frames fill one batch.
        chunk_frames_max: frames per chunk at most (bounds memory when frames hold few persons).
        device: "auto", "cpu", "cuda", "cuda:1", ...
        flip_test: average with the mirrored crop (the reference's test-time flip).
        precision: refiner precision ("auto", "fp32", "bf16").
        decoder: "decord", "pyav" or "opencv" for video files.
        fps: frame rate of a frame folder (for `render`; default 25). Video files use their container's rate.
        render: also write an H.264 video with input (grey) and refined (coloured) skeletons.
        smooth: per-track temporal filter after refinement: "none", "oneeuro" or "savgol".
        smooth_params: `smoothing.OneEuroParams` / `SavgolParams`, or None for the defaults.
        resume: continue from the journal of an interrupted run with the same inputs and options.
        tracks_orientation: "displayed" (tracks in the frames a player shows, as decoded) or "coded" (tracks made
            on the raw frames of a video with a display rotation: mapped to displayed pixels for refining, results
            and image sizes mapped back to the coded frame). Identical for videos without rotation.
        seq_name: poseval-parsable sequence name for image entries of non-PoseTrack inputs.
        queue_frames: decoded frames buffered ahead of the refiner.
        progress: show a tqdm progress bar on stderr.
        refiner: an already built refiner (reused across videos by `refine_posetrack`).
        on_chunk: called with the number of chunks journaled so far, after each one (progress hooks, tests).
        backend: network backend when a checkpoint is loaded: "torch", "onnxruntime" or "auto" (ONNX Runtime on
            the CPU when installed, torch on CUDA).
        safeguard: keep the input joint where the network is unsure (net/safeguard.py DEFAULT_SAFEGUARD); None:
            the refiner's `recommended_safeguard` (on for our recipe's networks, off for the authors' models).
        fill_joints: write the network's answer for joints the input lacked, its confidence as score.
        scores: per-joint scores written: "input" (the tracker's), "refined" (network confidence), "product".
        fill_gaps: persons missing from their track for up to this many frames get an interpolated input pose
            refined on the frame (video/gaps.py); written when their mean confidence reaches
            `fill_min_confidence`, marked `"posefix_filled": true`.
        initializer, refine: a top-down checkpoint (file or installed name) or `TopDownEstimator` that poses the
            persons with a box and no pose before refinement; refine=False stops after it (video/initial_poses.py).

    Returns:
        A `Summary`.

    Raises:
        PosefixError: bad input (missing/corrupt video, unreadable or empty tracks, tracks past the last frame,
            layout mismatch, a journal of another run); no output file is written then.
    """
    t0 = time.perf_counter()
    if tracks_orientation not in TRACKS_ORIENTATIONS:
        raise PosefixError(f"tracks orientation must be one of {', '.join(TRACKS_ORIENTATIONS)}, "
                           f"got {tracks_orientation!r}")
    video, tracks = Path(video), Path(tracks)
    out = Path(out) if out is not None else default_output(tracks)
    check_chunking(batch_size, chunk_frames_max)
    check_outputs(inputs=[video, tracks, checkpoint], outputs={"-o": out, "--render": render})
    if refiner is None:
        resolve_device(device)  # a CUDA device this torch cannot use: refused before any work
    if not video.exists():
        raise InputError(video, "no such video file or frame folder")
    reader = open_frames(video, decoder=decoder, fps=fps)
    if initializer is not None and not hasattr(initializer, "estimate_records"):  # a file or an installed name
        initializer = load_initializer(initializer, device=device, flip_test=flip_test, batch_size=batch_size)
    init_source = getattr(initializer, "source", None)  # the checkpoint file, for the journal's run id
    if refine and refiner is None and checkpoint is not None:
        from posefix_video.net.model_store import resolve_checkpoint

        checkpoint = resolve_checkpoint(checkpoint)  # a file, or the name of an installed model
        refiner = load_refiner(checkpoint, device=device, flip_test=flip_test, precision=precision,
                               batch_size=batch_size, backend=backend)
    seq = read_input_tracks(tracks, reader, format, frame_base, layout, tracks_orientation)
    if initializer is not None:
        seq = adopt_layout(seq, initializer.layout)  # box-only input: the networks' layout
    if refine and refiner is None:  # no checkpoint given: the installed model for the tracks' layout (known only now)
        from posefix_video.net.model_store import resolve_model

        checkpoint = resolve_model(None, seq.layout.name)
        log.info("no checkpoint given: using the installed %s model %s", seq.layout.name, checkpoint)
        refiner = load_refiner(checkpoint, device=device, flip_test=flip_test, precision=precision,
                               batch_size=batch_size, backend=backend)
    # the safeguard by default follows the model: tuned for our recipe's networks, off for the authors' models
    guard = getattr(refiner, "recommended_safeguard", DEFAULT_SAFEGUARD) if safeguard is None else \
        (DEFAULT_SAFEGUARD if safeguard else None)
    # box-only persons: initial poses from the initializer first, then PoseFix (or the initializer alone)
    refiner = PoseStage(refiner=refiner if refine else None, initializer=initializer)
    if seq.layout.name != refiner.layout.name:
        raise CheckpointError(f"{checkpoint or 'refiner'}: the checkpoint refines {refiner.layout.name} poses but "
                              f"{tracks} holds {seq.layout.name} poses; use a {seq.layout.name} checkpoint, or "
                              f"--layout if the tracks file's layout was guessed wrong")
    warnings = orientation_warnings(seq, reader.info.size, tracks, tracks_orientation, reader.info.coded_size)
    # tracks in the coded frame are refined in displayed pixels (the decoders' frames) and mapped back at the end
    rotation = reader.info.rotation if tracks_orientation == "coded" else 0
    out_hw = reader.info.coded_size if tracks_orientation == "coded" else reader.info.size
    if scores not in SCORE_MODES:
        raise PosefixError(f"scores must be one of {', '.join(SCORE_MODES)}, got {scores!r}")
    if isinstance(fill_gaps, bool) or not isinstance(fill_gaps, int) or fill_gaps < 0:
        raise PosefixError(f"--fill-gaps {fill_gaps}: must be a whole number >= 0")
    inputs = seq
    seq = with_records(seq, gap_records(seq, fill_gaps))  # the inputs plus gap fills (none when fill_gaps is 0)
    shown = tracks_to_displayed(seq, rotation, reader.info.coded_size) if rotation else seq
    # refine_records options, only where they differ from its defaults (the same measured defaults as here)
    post = {k: v for k, v in (("safeguard", guard), ("fill_joints", fill_joints),
                              ("scores", scores)) if v != POST_DEFAULTS[k]}

    run_id = run_hash({
        "video": file_fingerprint(video),
        "tracks": file_fingerprint(labels_source(tracks), full=True),  # a run folder: its labels/ files
        "checkpoint": file_fingerprint(checkpoint) if checkpoint is not None else type(refiner).__name__,
        "format": format, "frame_base": frame_base, "layout": layout, "decoder": decoder,
        "flip_test": getattr(refiner, "flip_test", flip_test), "precision": precision,
        "tracks_orientation": tracks_orientation,
        # the network's numbers depend on how persons are batched (up to 0.015 px on CPU, docs/refine_video.md)
        "batch_size": batch_size, "chunk_frames": chunk_frames_max,
        "safeguard": repr(guard), "fill_joints": fill_joints, "scores": scores,
        "fill_gaps": fill_gaps, "fill_min_confidence": fill_min_confidence,
        "initializer": file_fingerprint(init_source) if init_source is not None else type(initializer).__name__,
        "refine": refine,
    })
    jpath = journal_path(out)
    if resume and jpath.exists():
        journal = Journal.resume(jpath, run_id)
    else:
        if jpath.exists():
            log.warning("%s: an earlier run's journal exists; starting again (pass resume=True / --resume to "
                        "continue it)", jpath)
        journal = Journal.create(jpath, run_id)
    done_until = journal.done_until

    encoder = None
    if render is not None:
        from posefix_video.video.encode import VideoEncoder

        encoder = VideoEncoder(render, reader.info.fps or Fraction(25), reader.info.size)
    previous = previous_chunks(jpath, run_id) if (render is not None and done_until) else None

    try:
        decoded, passed, refined_count = _run(
            reader, shown, refiner, journal, encoder, previous, done_until, batch_size, chunk_frames_max,
            queue_frames, progress, on_chunk, post,
        )  # the journal stays open (and locked) until the output is written
        _check_frame_count(seq, decoded, tracks, video)
        promised = truncation_warning(reader, decoded, warnings)
        result = assemble_output(seq, jpath, run_id, decoded)
        if rotation:
            result = results_to_coded(result, seq, shown, rotation, reader.info.coded_size)
        if result.num_persons != seq.num_persons:
            raise RuntimeError(f"{result.num_persons} persons in the output, {seq.num_persons} refined")
        result, filled, fill_rejected = drop_weak_fills(result, fill_min_confidence)
        if smooth != "none":
            from posefix_video.video.smoothing import smooth_sequence

            n = smooth_sequence(result, smooth, smooth_params)
            log.info("smoothed %d records with %s", n, smooth)
        if result.num_persons != inputs.num_persons + filled:
            raise RuntimeError(f"{result.num_persons} persons in the output, {inputs.num_persons} in the input")
        from posefix_video.io import write_posetrack18

        round_refined(result, seq)
        if promised is not None:  # a truncated video: said in the output's "posefix" notes too
            result.meta = dict(result.meta, notes={"frames_decoded": decoded, "frames_promised": promised})
        write_posetrack18(result, out, seq_name=seq_name, convert_coco=True,
                          image_size=(out_hw[1], out_hw[0]))
    except PosefixError:
        # bad input found late (tracks past the end, frame-count mismatch): the journal is of no use
        if encoder is not None:
            encoder.abort()
        journal.remove()
        raise
    except BaseException:
        if encoder is not None:
            encoder.abort()
        journal.close()
        raise
    if encoder is not None:
        encoder.close()
    journal.remove()
    return Summary(
        output=out,
        frames=decoded,
        persons=inputs.num_persons,
        refined=refined_count,
        passed_through=dict(passed),
        resumed_frames=min(done_until, decoded),
        seconds=time.perf_counter() - t0,
        render=Path(render) if render is not None else None,
        warnings=warnings,
        frames_promised=promised,
        filled=filled,
        fill_rejected=fill_rejected,
    )


def _run(reader, seq, refiner, journal, encoder, previous, done_until, batch_size, chunk_frames_max,
         queue_frames, progress, on_chunk, post) -> tuple[int, Counter, int]:
    """The streaming loop. Returns (frames decoded, pass-through counts, persons refined) of the whole run,
    including journaled chunks of an earlier run."""
    import torch
    from tqdm import tqdm

    writer = ChunkWriter(journal, encoder, seq.layout, seq, on_chunk)
    writer.start()
    stream = FrameStream(reader, max_queue=queue_frames)
    passed: Counter = Counter()
    refined_count = 0
    device = str(getattr(refiner, "device", "cpu"))
    pin = device.startswith("cuda")
    bar = tqdm(total=reader.info.header_frames, unit="frame", disable=not progress, dynamic_ncols=True,
               desc=reader.info.path[-40:])
    t_start = time.perf_counter()
    persons_done = 0
    try:
        for chunk in chunk_frames(stream, lambda f: len(seq.persons_in(f)), batch_size, chunk_frames_max,
                                  done_until):
            if writer.error is not None:
                raise writer.error
            if chunk.done:
                if encoder is not None:
                    records = previous.take(chunk.start, chunk.stop)
                    writer.queue.put((chunk, records, None, True))
            else:
                records = [p for f in range(chunk.start, chunk.stop) for p in seq.persons_in(f)]
                counts: Counter = Counter()
                out_records: list[PersonRecord] = []
                if records:
                    # one host->device transfer per chunk; frames stay uint8 until the device
                    frames = torch.from_numpy(np.stack(chunk.frames))
                    if pin:
                        frames = frames.pin_memory()
                    out_records, counts = refiner.refine_records(frames, records, frame_offset=chunk.start, **post)
                    out_records = list(out_records)
                    if len(out_records) != len(records):
                        raise RuntimeError(f"the refiner returned {len(out_records)} records for {len(records)}")
                passed.update(counts)
                refined_count += len(records) - sum(counts.values())
                persons_done += len(records)
                if encoder is None:
                    chunk.frames = []  # the writer does not need the pixels
                writer.queue.put((chunk, out_records, counts, False))
            bar.update(chunk.stop - chunk.start)
            dt = max(time.perf_counter() - t_start, 1e-9)
            bar.set_postfix(persons_s=f"{persons_done / dt:.1f}", refresh=False)
    finally:
        writer.queue.put(None)
        writer.join()
        bar.close()
        stream.close()
    if writer.error is not None:
        raise writer.error
    if done_until:
        for chunk in read_journal(journal.path, journal.run_id):
            if chunk.stop > done_until:
                break
            passed.update(chunk.passed)
            refined_count += len(chunk.records) - sum(chunk.passed.values())
    return stream.count, passed, refined_count


def _check_frame_count(seq: PoseSequence, decoded: int, tracks: Path, video: Path) -> None:
    if decoded == 0:
        raise InputError(video, "no frame could be decoded")
    if seq.last_frame >= decoded:
        first_beyond = min(f for f, p in seq.frames.items() if p and f >= decoded)
        raise InputError(tracks, f"tracks go beyond the end of the video: the last decoded frame is {decoded - 1} "
                         f"({decoded} frames in {video}), but the tracks have persons on frame {first_beyond} "
                         f"(and up to {seq.last_frame}); check --frame-base, or the video is truncated")
    if seq.images is not None and len(seq.images) != decoded:
        raise InputError(tracks, f"the file lists {len(seq.images)} images but {video} has {decoded} frames; "
                         "poseval needs one entry per frame")
    if seq.num_frames is not None and seq.num_frames != decoded:
        log.warning("%s: the tracks file speaks of %d frames, %d were decoded from %s; the output lists %d",
                    tracks, seq.num_frames, decoded, video, decoded)
