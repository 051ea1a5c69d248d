"""List the models installed in the models folder ($POSEFIX_HOME/models), with their input contract and source.

    python -m pipelines.models

Install one with `python -m pipelines.import_weights ... --name NAME` (docs/importing.md).
"""

from __future__ import annotations

import argparse
import sys

from posefix_video.cli import run_cli


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="python -m pipelines.models",
        description="List the installed models (names that --checkpoint accepts) with their keypoint layout, "
        "input size, depth, input contract and source, and which one each layout uses by default.",
    )


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    return run_cli(_run)


def _run() -> int:
    from posefix_video.net import model_store

    folder = model_store.models_dir()
    models = model_store.list_models()
    defaults = {layout: model_store.default_model(layout) for layout in model_store.SUGGESTED}
    print(f"models folder: {folder} (set POSEFIX_HOME to move it)")
    if not models:
        print("no model installed. To install the authors' COCO model:")
        print(model_store.install_hint("coco17"))
    for info in models:
        default = [layout for layout, path in defaults.items() if path == info.path]
        print(info.line() + (f"\n    default for {', '.join(default)} tracks" if default else ""))
    for path in model_store.unreadable_models():
        print(f"{path}: cannot be read as a checkpoint (skipped)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
