"""Export a PoseFix checkpoint's network to ONNX (for ONNX Runtime, TensorRT, or any ONNX consumer).

    python -m pipelines.export_onnx CKPT_OR_NAME -o model.onnx [--opset 18]

The network only: input (batch, 3+J, H, W) normalised float32, output (batch, J, H/4, W/4) heatmap logits, dynamic
batch. The model config, keypoint layout and input contract are in the file's metadata; `refine_video
--checkpoint model.onnx` uses it directly. See docs/model.md#onnx-runtime.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from posefix_video.cli import check_outputs, run_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipelines.export_onnx", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="CKPT_OR_NAME", help="posefix checkpoint file or installed model name")
    p.add_argument("-o", "--out", default=None, help="output .onnx file (default: the checkpoint's name with .onnx "
                   "in the current folder)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    p.add_argument("--no-verify", action="store_true", help="skip running the export with ONNX Runtime against "
                   "torch on two random crops")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from posefix_video.net import onnx_backend
    from posefix_video.net.model_store import resolve_checkpoint

    checkpoint = resolve_checkpoint(args.checkpoint)
    out = Path(args.out) if args.out else Path(checkpoint.stem + ".onnx")
    check_outputs(inputs=[checkpoint], outputs={"-o": out})
    opset = args.opset if args.opset is not None else onnx_backend.DEFAULT_OPSET
    onnx_backend.export_checkpoint(checkpoint, out, opset=opset)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, opset {opset}); onnx checker passed", file=sys.stderr)
    if not args.no_verify and onnx_backend.onnxruntime_available():
        diff = onnx_backend.verify_export(checkpoint, out)
        print(f"ONNX Runtime vs torch on 2 random crops: max |logit difference| {diff:.2e}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
