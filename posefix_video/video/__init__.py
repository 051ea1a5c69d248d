"""Video input and output: decoders (decord, PyAV, OpenCV), numbered-frame folders, background streaming,
the index barcode used by tests and benchmarks, and the H.264 encoder of rendered videos.

May import: the shared root modules, net/ (the refiner), io/ (readers, writers) and eval/. Nothing from
train/ or synthetic/.
"""

from posefix_video.video.decoders import DECODERS, open_frames
from posefix_video.video.reader import FrameReader, VideoInfo
from posefix_video.video.stream import FrameChunk, FrameStream, chunk_frames

__all__ = ["DECODERS", "FrameChunk", "FrameReader", "FrameStream", "VideoInfo", "chunk_frames", "open_frames"]
