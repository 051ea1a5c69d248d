"""posefix_video: refine human poses in video with PoseFix, from any tracker's output."""

__version__ = "0.1.0"
