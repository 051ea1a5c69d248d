"""What every command line shares: one place that turns errors into messages and checks output paths.

    def main(argv=None) -> int:
        args = build_parser().parse_args(argv)
        return run_cli(lambda: _main(args), interrupted_hint="run the same command with --resume to continue")

    def _main(args) -> int:
        check_outputs(inputs=[args.video, args.tracks], outputs={"-o": args.out, "--render": args.render})
        ...

`run_cli` maps a `PosefixError` to its message and exit 2, an `OSError` (full disk, read-only folder, a folder
where a file is expected) to one line naming the path and the OS reason and exit 2, and Ctrl-C to exit 130 with
the hint the command registered (for example how to resume). Bugs still raise: a traceback then means a bug.

`check_outputs` is the one rule for output paths, run before any work: an output is never the same file as an
input (after resolving symlinks and `..`, and hard links: same inode), never inside an input folder (a frame or
label folder read by the run), never an existing folder, never another output of the same run, and its folder
must be creatable and writable.
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


def _resolved(p: Path) -> Path:
    try:
        return p.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare the path as given
        return Path(os.path.abspath(p))


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when `a` and `b` name the same file: the same path after resolving symlinks and `..`, or the same
    inode (hard links, bind mounts)."""
    a, b = Path(a), Path(b)
    if _resolved(a) == _resolved(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist: not the same file
        return False


def _inside(path: Path, folder: Path) -> bool:
    """`path` lies somewhere under `folder` (both resolved)."""
    try:
        _resolved(path).relative_to(_resolved(folder))
        return True
    except ValueError:
        return False


def _writable_parent(option: str, out: Path) -> None:
    """Refuses an output whose folder cannot be made or written (checked on the nearest existing ancestor)."""
    probe = out.parent if str(out.parent) else Path(".")
    while not probe.exists() and probe != probe.parent:
        if probe.is_symlink():  # a dangling symlink in the path: mkdir would fail
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutputError(f"{option} {os.fspath(out)}: {os.fspath(probe)} is a file, not a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        reason = "is on a read-only file system" if _read_only_fs(probe) else "is not writable"
        raise OutputError(f"{option} {os.fspath(out)}: the folder {os.fspath(probe)} {reason}")


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def check_outputs(*, inputs: Iterable[str | os.PathLike | None],
                  outputs: Mapping[str, str | os.PathLike | None],
                  folders: Mapping[str, str | os.PathLike | None] | None = None) -> None:
    """Refuses, before any work, an output that would destroy an input or cannot be written.

    Args:
        inputs: every file or folder the run reads (None entries skipped).
        outputs: option name -> output file path (None skipped). Refused when it is the same file as an input
            (symlinks, `..` and hard links resolved), lies inside an input folder, is an existing folder, equals
            another output, or its folder cannot be created or written.
        folders: option name -> output folder (None skipped). Refused when it is an existing file, is an input
            folder itself, or cannot be created or written.

    Raises:
        OutputError: naming the option, the output and the input it collides with.
    """
    ins = [Path(p) for p in inputs if p is not None]
    seen: dict[str, Path] = {}
    for option, out in outputs.items():
        if out is None:
            continue
        out = Path(out)
        for src in ins:
            if same_file(out, src):
                raise OutputError(f"{option} {os.fspath(out)} is the same file as the input {os.fspath(src)}: "
                                  "writing it would overwrite the input; choose another output path")
            if src.is_dir() and _inside(out, src):
                raise OutputError(f"{option} {os.fspath(out)} lies inside the input folder {os.fspath(src)}, "
                                  "which the run reads; write it somewhere else")
        for other, path in seen.items():
            if same_file(out, path):
                raise OutputError(f"{option} {os.fspath(out)} and {other} {os.fspath(path)} are the same file; "
                                  "give each output its own path")
        seen[option] = out
        if out.is_dir():
            raise OutputError(f"{option} {os.fspath(out)} is a folder; give a file path")
        _writable_parent(option, out)
    for option, folder in (folders or {}).items():
        if folder is None:
            continue
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"{option} {os.fspath(folder)} is a file; give a folder (created if missing)")
        for src in ins:
            if src.is_dir() and same_file(folder, src):
                raise OutputError(f"{option} {os.fspath(folder)} is the input folder {os.fspath(src)}: writing "
                                  "there would overwrite inputs; choose another output folder")
        if folder.is_dir():
            if not os.access(folder, os.W_OK | os.X_OK):
                reason = "is on a read-only file system" if _read_only_fs(folder) else "is not writable"
                raise OutputError(f"{option} {os.fspath(folder)} {reason}")
        else:
            _writable_parent(option, folder / "x")


def check_device(device: str, option: str = "--device") -> None:
    """Refuses a CUDA device this torch cannot use (a CPU-only build, no GPU visible, an index past the count)
    before any work starts. "auto" and "cpu" always pass."""
    if not str(device).startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        why = ("this torch build has no CUDA support" if torch.version.cuda is None
               else "no CUDA device is visible")
        raise PosefixError(f"{option} {device}: {why}; use {option} cpu (or auto)")
    index = str(device).partition(":")[2]
    if index:
        if not index.isdigit():
            raise PosefixError(f"{option} {device}: expected cuda or cuda:N")
        if int(index) >= torch.cuda.device_count():
            raise PosefixError(f"{option} {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")


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
