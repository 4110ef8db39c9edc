"""Output folders that never touch a user's files.

Every command that writes into ``--out`` goes through this module:

* :func:`check_out` refuses, in one line and before any work, an ``--out`` that
  is a file, lies under a file, is not writable, is, contains or lies inside an
  input, or is a non-empty folder that spikeforge did not make.
* :func:`staged_output` writes into a hidden staging folder inside ``--out`` and
  moves each output into place only when the whole command succeeded
  (each file by an atomic rename, with signals held off while it moves). Only
  names that the new run wrote, or that an earlier spikeforge run recorded in
  the marker, are replaced or removed; anything else in the folder stays.
* :func:`claim_out` prepares a folder for commands that write as they go
  (``train``, ``dse``): it is refused or claimed exactly like ``staged_output``.

A folder is "made by spikeforge" when it holds the marker file :data:`MARKER`,
which lists the names spikeforge wrote there. Symbolic links are resolved first,
so an ``--out`` link is judged by, and writes into, the folder it points at.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from spikeforge.errors import SpikeforgeError
from spikeforge.signals import held

__all__ = ["MARKER", "check_out", "claim_out", "file_mode", "staged_output", "write_marker"]

MARKER = ".spikeforge-output.json"
_STAGE_PREFIX = ".spikeforge-stage-"
_LOCK = ".spikeforge.lock"


def file_mode() -> int:
    """The mode the umask gives a new regular file (0644 under the usual umask 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _dir_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def _inside(a: Path, b: Path) -> bool:
    """Whether resolved path ``a`` is ``b`` or lies below it."""
    return a == b or b in a.parents


def _recorded(out: Path) -> list[str] | None:
    """Names the marker of ``out`` lists, or None when ``out`` has no valid marker."""
    try:
        doc = json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    names = doc.get("outputs") if isinstance(doc, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    return [n for n in names if n and "/" not in n and n not in (".", "..")]


def check_out(out: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None] = (),
              option: str = "--out") -> Path:
    """Check that ``out`` may be written; return it resolved. One-line error when not.

    ``inputs`` are the files and folders the command reads; ``out`` may not be,
    contain or lie inside any of them.
    """
    try:
        return _check_out(out, inputs, option)
    except OSError as e:  # a name too long, a loop, a folder that cannot be listed
        name = str(out)
        name = name if len(name) <= 60 else name[:59] + "…"
        raise SpikeforgeError(f"{option} {name}: {e.strerror or e.__class__.__name__}"
                              ) from None


def _check_out(out, inputs, option: str) -> Path:
    raw = Path(out)
    try:
        path = raw.resolve()
    except (OSError, RuntimeError) as e:  # a symlink loop
        raise SpikeforgeError(f"{option} {raw}: cannot be resolved ({e.__class__.__name__})"
                              ) from None
    for inp in inputs:
        if inp is None:
            continue
        try:
            ip = Path(inp).resolve()
        except (OSError, RuntimeError):
            continue
        if _inside(ip, path):
            raise SpikeforgeError(f"{option} {raw}: holds the input {inp}; "
                                  "choose a folder of its own for the output")
        if _inside(path, ip):
            raise SpikeforgeError(f"{option} {raw}: lies inside the input {inp}")
    if path.exists():
        if not path.is_dir():
            raise SpikeforgeError(f"{option} {raw}: exists and is not a folder")
        entries = [e for e in os.listdir(path) if not e.startswith(_STAGE_PREFIX)
                   and e != _LOCK]
        if entries and _recorded(path) is None:
            raise SpikeforgeError(f"{option} {raw}: folder is not empty and was not made by "
                                  "spikeforge; give a new or empty folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise SpikeforgeError(f"{option} {raw}: folder is not writable")
        return path
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise SpikeforgeError(f"{option} {raw}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SpikeforgeError(f"{option} {raw}: {parent} is not writable")
    return path


def _make_dirs(path: Path) -> list[Path]:
    """mkdir -p ``path``; return the folders it created, deepest last."""
    made = []
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=_dir_mode())
        except FileExistsError:
            continue
        except OSError as e:
            raise SpikeforgeError(f"--out {path}: cannot create {d} "
                                  f"({e.strerror or e.__class__.__name__})") from None
        made.append(d)
    return made


def _remove_made(made: list[Path]) -> None:
    for d in reversed(made):
        with contextlib.suppress(OSError):
            d.rmdir()  # only when empty: never takes anything else with it


def write_marker(out: Path, names: Iterable[str]) -> None:
    """Record ``names`` (merged with what the marker lists) as spikeforge's outputs in ``out``."""
    known = set(_recorded(out) or [])
    known.update(names)
    tmp = out / f"{MARKER}.tmp"
    tmp.write_text(json.dumps({"tool": "spikeforge", "outputs": sorted(known)}, indent=1))
    os.chmod(tmp, file_mode())
    os.replace(tmp, out / MARKER)


def _remove(p: Path) -> None:
    if p.is_symlink() or not p.is_dir():
        p.unlink(missing_ok=True)
    else:
        shutil.rmtree(p)


def _fix_modes(root: Path) -> None:
    """Staged files get the umask's modes (mkstemp/mkdtemp make them private)."""
    fmode, dmode = file_mode(), _dir_mode()
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(dirpath, d), dmode)
        for f in filenames:
            fp = os.path.join(dirpath, f)
            with contextlib.suppress(OSError):
                st = os.lstat(fp)
                if stat.S_ISREG(st.st_mode):
                    exe = st.st_mode & 0o111
                    os.chmod(fp, fmode | (exe & ~(0o777 & ~dmode)))


def _commit(stage: Path, out: Path) -> list[str]:
    names = sorted(os.listdir(stage))
    _fix_modes(stage)
    with open(out / _LOCK, "a") as lock, held():
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = set(_recorded(out) or [])
        for name in names:  # check all before moving any
            dst = out / name
            if (dst.exists() or dst.is_symlink()) and name not in old:
                raise SpikeforgeError(f"--out {out}: {name} there was not written by "
                                      "spikeforge; nothing was replaced")
        for name in names:
            dst = out / name
            if dst.is_dir() and not dst.is_symlink():
                _remove(dst)
            os.replace(stage / name, dst)
        for name in sorted(old - set(names)):  # outputs of an earlier run this run did not make
            if name not in (MARKER, _LOCK):
                with contextlib.suppress(OSError):
                    _remove(out / name)
        known = set(names)
        tmp = out / f"{MARKER}.tmp"
        tmp.write_text(json.dumps({"tool": "spikeforge", "outputs": sorted(known)}, indent=1))
        os.chmod(tmp, file_mode())
        os.replace(tmp, out / MARKER)
    with contextlib.suppress(OSError):
        os.unlink(out / _LOCK)
    return names


@contextlib.contextmanager
def staged_output(out: str | os.PathLike[str],
                  inputs: Iterable[str | os.PathLike[str] | None] = ()) -> Iterator[Path]:
    """Yield a staging folder whose contents replace spikeforge's outputs in ``out`` on success.

    ``out`` is checked with :func:`check_out` first. On any exception (Ctrl-C,
    SIGTERM, an error) the staging folder is removed, folders created for
    ``out`` are removed again, and ``out`` is left exactly as it was.
    """
    path = check_out(out, inputs)
    made = _make_dirs(path)
    stage: Path | None = None
    try:
        stage = Path(tempfile.mkdtemp(prefix=_STAGE_PREFIX, dir=path))
        yield stage
        _commit(stage, path)
    except BaseException:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
        with contextlib.suppress(OSError):
            (path / _LOCK).unlink()
        _remove_made(made)
        raise
    finally:
        if stage is not None and stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def claim_out(out: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None] = (),
              names: Iterable[str] = ()) -> tuple[Path, list[Path]]:
    """Check ``out`` and create it for a command that writes as it goes (train, dse).

    Returns the resolved folder and the folders created for it (pass them to
    :func:`release_out` when the command fails before writing anything). The
    marker is written at once, listing ``names``; the command records later
    outputs with :func:`write_marker`. Each file such a command writes should
    be replaced atomically (write a temporary file beside it, then rename).
    """
    path = check_out(out, inputs)
    made = _make_dirs(path)
    try:
        write_marker(path, names)
    except OSError as e:
        _remove_made(made)
        raise SpikeforgeError(f"--out {out}: cannot be written ({e.strerror})") from None
    return path, made


def release_out(path: Path, made: list[Path]) -> None:
    """Undo :func:`claim_out` when nothing else was written: remove the marker and new folders."""
    if path in made:
        entries = set(os.listdir(path)) - {MARKER}
        if not entries:
            with contextlib.suppress(OSError):
                (path / MARKER).unlink()
            _remove_made(made)
