"""What every command line shares: one place that turns errors into messages and checks output paths.

    def main(argv=None) -> int:
        args = build_parser().parse_args(argv)
        return run_cli(lambda: _main(args))

    def _main(args) -> int:
        check_outputs(inputs=[args.video, args.tracks], outputs={"-o": args.out, "--render": args.render})
        ...

`run_cli` maps a `PosefixError` to its message and exit 2, an `OSError` (full disk, read-only folder, a folder
where a file is expected) to one line naming the path and the OS reason and exit 2, and Ctrl-C to exit 130 with
the hint the command registered (for example how to resume). Bugs still raise: a traceback then means a bug.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from posefix_video.errors import PosefixError

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class OutputError(PosefixError):
    """An output path that cannot be used (it is an input of the run, a folder, or not writable)."""


def _same_file(a: Path, b: Path) -> bool:
    """True when `a` and `b` name the same file: same path after resolving symlinks and `..`, or the same inode
    (hard links)."""
    try:
        if a.resolve() == b.resolve():
            return True
    except OSError:
        pass
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist: not the same file
        return False


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except (ValueError, OSError):
        return False


def check_outputs(*, inputs: Iterable[str | os.PathLike | None],
                  outputs: Mapping[str, str | os.PathLike | None]) -> None:
    """Refuses, before any work, an output that would destroy an input or cannot be written.

    Args:
        inputs: every file or folder the run reads (None entries skipped). An output equal to one of them, or
            lying inside an input folder's tree as one of its files, is refused naming both.
        outputs: option name -> output file path (None skipped).

    Raises:
        OutputError: the output is an input, is an existing folder, or its folder cannot be created/written.
    """
    ins = [Path(p) for p in inputs if p is not None]
    for option, out in outputs.items():
        if out is None:
            continue
        out = Path(out)
        for src in ins:
            if _same_file(out, src) or (src.is_dir() and out.exists() and _inside(out, src) and
                                        any(_same_file(out, f) for f in src.rglob(out.name))):
                raise OutputError(f"{option} {os.fspath(out)} is the same file as the input {os.fspath(src)}; "
                                  "choose another output path (inputs are never overwritten)")
        if out.is_dir():
            raise OutputError(f"{option} {os.fspath(out)} is a folder; give a file path")
        parent = out.parent if str(out.parent) else Path(".")
        probe = parent
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if probe.exists() and not probe.is_dir():
            raise OutputError(f"{option} {os.fspath(out)}: {os.fspath(probe)} is a file, not a folder")
        if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
            raise OutputError(f"{option} {os.fspath(out)}: the folder {os.fspath(probe)} is not writable")


def os_error_message(err: OSError) -> str:
    """One line: the path(s) and the OS reason ('No space left on device', 'Read-only file system', ...)."""
    reason = err.strerror or errno.errorcode.get(err.errno or 0, "") or str(err)
    paths = [p for p in (err.filename, err.filename2) if p is not None]
    where = " -> ".join(os.fspath(p) for p in paths)
    return f"{where}: {reason}" if where else reason


def run_cli(body: Callable[[], int | None], *, interrupted_hint: str | Callable[[], str] = "") -> int:
    """Runs a command's body and returns its exit code, printing user errors as one line on stderr.

    Args:
        body: the command; its return value (None = 0) is the exit code.
        interrupted_hint: what to tell the user on Ctrl-C (for example how to resume); a callable is asked then.
    """
    try:
        code = body()
    except PosefixError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        hint = interrupted_hint() if callable(interrupted_hint) else interrupted_hint
        print("interrupted" + (f": {hint}" if hint else ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as err:
        print(f"error: {os_error_message(err)}", file=sys.stderr)
        return EXIT_ERROR
    return 0 if code is None else int(code)
