"""Import trained weights from other code bases as our checkpoints, to a file and/or into the models folder.

    python -m pipelines.import_weights posefix-tf PATH --dataset coco|posetrack [--input-size 384x288] \\
        [-o OUT.pth] [--name [NAME]] [--force]
    python -m pipelines.import_weights simplebaseline-msra|simplebaseline-mmpose FILE [--layout coco17] \\
        [--input-size 256x192] [-o OUT.pth] [--name [NAME]] [--force]

PATH is the checkpoint prefix (`.../snapshot_140.ckpt`), any of its files, or the unzipped folder. `--name` installs
the model into the models folder ($POSEFIX_HOME/models) so that `--checkpoint NAME` finds it and refine_video picks
it without --checkpoint; `--name` alone uses the suggested name (posefix-coco-r152-384x288, ...). See
docs/importing.md.

Adding an importer: one `add_parser` call with its own arguments, `add_output_args(sub)`, and a function that
returns the library's ImportedModel; `_write` saves it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from posefix_video.cli import check_outputs, run_cli
from posefix_video.errors import PosefixError

AUTO_NAME = ""  # `--name` without a value


def input_size(text: str) -> tuple[int, int]:
    """'384x288' -> (384, 288): height x width, as the paper names its models."""
    h, sep, w = text.lower().partition("x")
    if not (sep and h.isdigit() and w.isdigit() and int(h) > 0 and int(w) > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: expected HEIGHTxWIDTH, e.g. 384x288")
    return int(h), int(w)


def add_output_args(sub: argparse.ArgumentParser) -> None:
    """-o / --name / --force, shared by every importer."""
    sub.add_argument("-o", "--out", default=None, help="output checkpoint file (.pth)")
    sub.add_argument("--name", nargs="?", const=AUTO_NAME, default=None, help="also (or only) install the model "
                     "into the models folder under this name (letters, digits, . _ -); without a value: the "
                     "suggested name, e.g. posefix-coco-r152-384x288")
    sub.add_argument("--force", action="store_true", help="replace an installed model of the same name")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.import_weights",
        description="Convert trained weights of other code bases into our checkpoint format, with the input "
        "contract they need, and optionally install them under a name in the models folder.",
    )
    subs = p.add_subparsers(dest="kind", required=True, metavar="KIND")

    sub = subs.add_parser("posefix-tf", help="the authors' TensorFlow PoseFix checkpoint (mks0601/PoseFix_RELEASE)",
                          description="Import a TF-1 PoseFix checkpoint (V2 format: PREFIX.index + "
                          "PREFIX.data-*), such as the released COCO and PoseTrack ResNet-152 384x288 models. "
                          "Optimizer state in the snapshot is skipped.",
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub.add_argument("path", help="checkpoint prefix (.../snapshot_140.ckpt), any of its files, or a folder "
                     "holding one checkpoint")
    sub.add_argument("--dataset", required=True, choices=["coco", "posetrack"], help="what the model was trained "
                     "on: coco -> coco17 keypoints, posetrack -> posetrack18 keypoints")
    sub.add_argument("--input-size", type=input_size, default="384x288", metavar="HxW", help="input size the "
                     "model was trained at (not stored in the checkpoint): 384x288 for the released models, "
                     "256x192 for the official code's other setting")
    sub.add_argument("--no-crc", action="store_true", help="skip the per-tensor crc32c check")
    add_output_args(sub)
    sub.set_defaults(convert=_posefix_tf, inputs=_tf_files)

    for kind, what, order in (("msra", "Microsoft human-pose-estimation.pytorch pose_resnet state dict", "BGR"),
                              ("mmpose", "mmpose top-down heatmap checkpoint (1.x head. or 0.x keypoint_head.)",
                               "RGB")):
        sub = subs.add_parser(f"simplebaseline-{kind}", help=f"a SimpleBaseline {what} (top-down initializer)",
                              description=f"Import a {what} as a top-down initializer (--initializer): image-only "
                              f"ResNet + deconv head, {order} input, {kind}'s argmax decoder (docs/model.md).",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        sub.add_argument("path", help="the .pth file")
        sub.add_argument("--layout", choices=["coco17", "posetrack18"], default="coco17", help="keypoint layout "
                         "of the model's 17 heatmaps (COCO order either way)")
        sub.add_argument("--input-size", type=input_size, default=None, metavar="HxW", help="input size the "
                         "model was trained at; default: from the mmpose config or the file name (..._256x192), "
                         "else 256x192")
        add_output_args(sub)
        sub.set_defaults(convert=_simplebaseline, inputs=lambda a: [Path(a.path)], simplebaseline=kind)
    return p


def _simplebaseline(args: argparse.Namespace):
    from posefix_video.net.simplebaseline_weights import convert_simplebaseline

    return convert_simplebaseline(args.simplebaseline, args.path, layout=args.layout, input_size=args.input_size)


def _tf_files(args: argparse.Namespace) -> list[Path]:
    """The checkpoint's files (so that -o cannot overwrite one of them); the path alone when it is not one."""
    from posefix_video.errors import CheckpointError
    from posefix_video.net.tf_checkpoint import checkpoint_prefix

    path = Path(args.path)
    try:
        prefix = checkpoint_prefix(path)
    except CheckpointError:  # reported with its reason by the import itself
        return [path]
    return [path, *prefix.parent.glob(prefix.name + ".*")]


def _posefix_tf(args: argparse.Namespace):
    from posefix_video.net.posefix_tf import convert_posefix_tf

    return convert_posefix_tf(args.path, dataset=args.dataset, input_size=args.input_size,
                              check_crc=not args.no_crc)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args, args.convert))


def _run(args: argparse.Namespace, convert: Callable[[argparse.Namespace], object]) -> int:
    from posefix_video.net import model_store

    if args.out is None and args.name is None:
        raise PosefixError("give an output file (-o OUT.pth) and/or --name [NAME] to install the model")
    named = model_store.free_path(args.name, args.force) if args.name else None  # a taken name: refused now
    check_outputs(inputs=args.inputs(args), outputs={"-o": args.out, "--name": named})
    imported = convert(args)
    name = imported.suggested_name if args.name == AUTO_NAME else args.name
    imported.report.outputs = model_store.save_model(imported.model, imported.cfg, imported.contract,
                                                     imported.source, out=args.out, name=name, force=args.force)
    print(imported.report, file=sys.stderr)
    if name is not None and imported.cfg.pose_input:
        print(f"installed as {name!r}: use --checkpoint {name}, or no --checkpoint for {imported.cfg.layout} "
              "tracks when it is the default (python -m pipelines.models)", file=sys.stderr)
    elif name is not None:
        print(f"installed as {name!r} (python -m pipelines.models)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
