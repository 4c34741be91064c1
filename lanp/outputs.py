"""Safe outputs: which paths may be written, atomic writes, and signals as clean interrupts.

Every command writes its files through this module, so one set of rules holds everywhere:

- :func:`check_output` refuses, before any work, an output that is a directory (when a file is
  wanted) or an existing file (when a folder is wanted), a device node, FIFO or socket, a path
  whose folder cannot be written, and an output that is the same file as one of the command's
  inputs (compared by device and inode, so links and ``./`` spellings are caught) or as another of
  its outputs.
- :func:`atomic_file` (a binary file object) and :func:`atomic_path` (a path, for writers that
  open it themselves) write to a temporary file created exclusively in the output's folder
  (``tempfile.mkstemp``: O_EXCL, never following a planted link, an unpredictable name
  ``.<name>.tmp-<host>-<pid>-<random>``), fsync it and rename it onto the output only on success.
  On an error, a signal or a full disk the temporary file is removed and an existing output is
  left as it was. Temporary files of killed runs (SIGKILL, power loss) are recognised by that name
  and removed by the next write of the same output when the process that made them is gone (same
  host, process no longer running, a regular file owned by this user).
- :func:`install_signal_handlers` (the CLI does this) turns SIGINT and SIGTERM into
  :class:`Interrupted`. The signal is also recorded, because an exception raised while h5py or
  llvmlite runs a callback is printed as "Exception ignored" and dropped: a recorded signal makes
  the next :func:`checkpoint` raise and the commit step refuse to rename, so an interrupted command
  never replaces its output and always exits non-zero. A signal that arrives during the rename
  itself (a few bytecodes) counts as arriving after it.
- A failed write (ENOSPC, EDQUOT, EFBIG, EIO) becomes :class:`WriteError`, naming the output.
  HDF5 files are written through :func:`atomic_file`, whose file object stops writing after the
  first failure, so libhdf5 can close the file cleanly (through its own sec2 driver a failed
  close crashes the interpreter at exit).
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import socket
import stat
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

PathLike = Union[str, os.PathLike]
Named = Tuple[str, Optional[PathLike]]          # ("--features", "in.h5")

WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS}
_REASONS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
            errno.EFBIG: "file too large (file system limit or ulimit -f)", errno.EIO: "I/O error",
            errno.EROFS: "read-only file system"}


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; ``signum`` says which, ``exit_code`` is 128 + signum."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(signal.Signals(self.signum).name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class OutputError(ValueError):
    """An output that must not be written (a directory, a device, one of the inputs, ...).

    A ValueError like lanp.kernels.InputError; this module does not import lanp.kernels (numba),
    so the CLI can install its signal handlers before anything heavy is imported."""


class WriteError(OSError):
    """Writing an output failed (disk full, quota, file too large, I/O error); nothing was changed."""


# -- signals ---------------------------------------------------------------------------------------
_received: Optional[int] = None
_defer = 0
_previous: dict = {}
_previous_hook = None
committed: List[Path] = []        # outputs renamed into place since install_signal_handlers()


def _handler(signum, frame):
    global _received
    if _received is None:
        _received = signum
    if not _defer:
        raise Interrupted(signum)


def _unraisable(info):
    """Drop the 'Exception ignored ...' reports once a signal was recorded (a KeyboardInterrupt
    raised inside a C callback, or what the callback's library made of it): the signal is raised
    again at the next checkpoint and the command stops with one line."""
    if _received is not None:             # the command is stopping anyway; the signal is what it says
        return
    (_previous_hook or sys.__unraisablehook__)(info)


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM raise :class:`Interrupted` and are recorded (main thread only; a signal
    the parent set to be ignored stays ignored)."""
    global _received, _previous_hook
    _received = None
    committed.clear()
    if threading.current_thread() is not threading.main_thread():
        return
    for s in (signal.SIGINT, signal.SIGTERM):
        if s not in _previous and signal.getsignal(s) is not signal.SIG_IGN:   # nohup, `cmd &`: stay ignored
            _previous[s] = signal.signal(s, _handler)
    if _previous_hook is None:
        _previous_hook = sys.unraisablehook
        sys.unraisablehook = _unraisable


def restore_signal_handlers() -> None:
    """Put the previous handlers back and forget a recorded signal."""
    global _previous_hook, _received
    _received = None
    for s, old in list(_previous.items()):
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(s, old)
        del _previous[s]
    if _previous_hook is not None:
        sys.unraisablehook = _previous_hook
        _previous_hook = None


def received() -> Optional[int]:
    """The first SIGINT / SIGTERM received since the handlers were installed, else None."""
    return _received


def checkpoint() -> None:
    """Raise :class:`Interrupted` if a signal was received (also one swallowed by a C callback)."""
    if _received is not None:
        raise Interrupted(_received)


@contextlib.contextmanager
def deferred():
    """Signals are recorded but not raised inside this block (commit steps, clean-up). Python runs
    signal handlers in the main thread only, so other threads (in-process Dask workers) need not
    defer and do not touch the counter."""
    global _defer
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _defer += 1
    try:
        yield
    finally:
        _defer -= 1


# -- checks ----------------------------------------------------------------------------------------
def _kind(mode: int) -> str:
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _stat(path: Path, what: str):
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None                     # also a dangling link: the link itself is replaced
    except NotADirectoryError:
        raise OutputError(f"{what} {str(path)!r}: a folder on that path is a file") from None
    except OSError as exc:
        raise OutputError(f"{what} {str(path)!r} cannot be examined: {exc.strerror}") from None


def _writable_folder(path: Path, what: str) -> None:
    """The nearest existing folder above ``path`` must be a folder we may create files in."""
    folder = path.parent if str(path.parent) else Path(".")
    while not folder.exists():
        if folder.is_symlink():
            raise OutputError(f"{what} {str(path)!r}: folder {str(folder)!r} is a dangling link")
        if folder.parent == folder:
            break
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"{what} {str(path)!r}: {str(folder)!r} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {str(path)!r}: folder {str(folder)!r} is not writable "
                          f"(read-only, or no permission)")


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name one file: same device and inode when both exist, else same real path."""
    try:
        sa, sb = os.stat(a), os.stat(b)
        return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output(path: PathLike, what: str = "--out", inputs: Iterable[Named] = (),
                 folder: bool = False) -> Path:
    """``path`` as a Path if it may be written, else an :class:`OutputError` saying why.

    folder=False: a file output (absent, a regular file, or a link to one); folder=True: an output
    folder (absent or a folder). ``inputs`` are ``(label, path)`` pairs the output must not be
    (None paths are skipped)."""
    if path is None or str(path) == "":
        raise OutputError(f"{what}: an empty path is not a valid output")
    p = Path(path)
    st = _stat(p, what)
    if st is not None:
        if folder:
            if not stat.S_ISDIR(st.st_mode):
                raise OutputError(f"{what} {str(p)!r} is an existing file: give a folder (new or existing)")
        elif stat.S_ISDIR(st.st_mode):
            raise OutputError(f"{what} {str(p)!r} is a directory: give a file name, e.g. "
                              f"{str(p / 'out.h5')!r}")
        elif not stat.S_ISREG(st.st_mode):
            raise OutputError(f"{what} {str(p)!r} is {_kind(st.st_mode)}: lanp writes only regular files "
                              f"and never replaces a device, FIFO or socket")
    if folder and st is not None:
        if not os.access(p, os.W_OK | os.X_OK):
            raise OutputError(f"{what} {str(p)!r}: folder is not writable (read-only, or no permission)")
    else:
        _writable_folder(p, what)
    for label, other in inputs:
        if other is None or str(other) == "":
            continue
        if folder:
            if Path(other).exists() and same_file(other, p):
                raise OutputError(f"{what} {str(p)!r} is the same path as {label} {str(other)!r}")
            continue
        if same_file(p, other):
            raise OutputError(f"{what} {str(p)!r} is the same file as {label} {str(other)!r}: writing it "
                              f"would destroy that input; choose another {what}")
    return p


def check_outputs(outputs: Sequence[Named], inputs: Iterable[Named] = ()) -> List[Path]:
    """:func:`check_output` for each ``(label, path)`` output, and no two outputs the same file."""
    inputs = list(inputs)
    paths = [check_output(p, label, inputs) for label, p in outputs]
    for i, (label_a, a) in enumerate(outputs):
        for label_b, b in outputs[i + 1:]:
            if same_file(a, b):
                raise OutputError(f"{label_a} {str(a)!r} and {label_b} {str(b)!r} are the same file: "
                                  f"one output would overwrite the other")
    return paths


# -- temporary files -------------------------------------------------------------------------------
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:32] or "host"


def _temp_prefix(path: Path, host: str, pid: int) -> str:
    return f".{path.name[:150]}.tmp-{host}-{pid}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True                        # exists, owned by someone else
    return True


def stale_temporaries(path: PathLike) -> List[Path]:
    """Temporary files of ``path`` left by lanp processes of this host that no longer run."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    pattern = re.compile(re.escape(f".{path.name[:150]}.tmp-{_host()}-") + r"(\d+)-[A-Za-z0-9_]+$")
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        m = pattern.match(entry.name)
        if not m or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid():
            found.append(Path(entry.path))
    return found


def remove_stale_temporaries(path: PathLike) -> List[Path]:
    """Remove :func:`stale_temporaries` of ``path``; returns those removed."""
    removed = []
    for p in stale_temporaries(path):
        with contextlib.suppress(OSError):
            p.unlink()
            removed.append(p)
    return removed


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _new_temporary(path: Path) -> Tuple[int, Path]:
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, name = tempfile.mkstemp(prefix=_temp_prefix(path, _host(), os.getpid()), dir=folder)
    return fd, Path(name)


def _discard(tmp: Path) -> None:
    with deferred(), contextlib.suppress(OSError):
        tmp.unlink()


_transactions: List[List[Tuple[Path, Path]]] = []


def _commit(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` onto ``path`` unless a signal was recorded (inside :func:`transaction`: at
    its end, with the block's other outputs)."""
    if _transactions:
        _transactions[-1].append((tmp, path))
        return
    _rename_all([(tmp, path)])


def _rename_all(pending: Sequence[Tuple[Path, Path]]) -> None:
    with deferred():
        checkpoint()
        for tmp, _ in pending:
            os.chmod(tmp, 0o666 & ~_umask())
        checkpoint()
        for tmp, path in pending:
            os.replace(tmp, path)
            committed.append(path)
    checkpoint()


@contextlib.contextmanager
def transaction():
    """Outputs written by :func:`atomic_file` / :func:`atomic_path` inside this block are renamed
    into place together when the block succeeds, and none of them when it fails (a command that
    writes several files: synth's features and ground truth, evaluate's exports, plot --all).
    Outputs written in the block cannot be read back in it."""
    pending: List[Tuple[Path, Path]] = []
    try:                     # one try from before the first temporary to the renames: no signal gap
        _transactions.append(pending)
        yield
        with deferred():     # a signal between ending the transaction and renaming: raised after
            _end_transaction(pending)
            _rename_all(pending)
    except BaseException:
        _end_transaction(pending)
        for tmp, _ in pending:
            _discard(tmp)
        raise


def _end_transaction(pending) -> None:
    """Take ``pending`` off the transaction stack if it is there (by identity: empty lists are equal)."""
    for i in range(len(_transactions) - 1, -1, -1):
        if _transactions[i] is pending:
            del _transactions[i]
            return


def write_error(exc: OSError, path: PathLike, existed: bool) -> WriteError:
    reason = _REASONS.get(exc.errno, exc.strerror or str(exc))
    kept = f"; the existing {str(path)!r} is unchanged" if existed else ""
    err = WriteError(exc.errno, f"{reason} writing {str(path)!r}: nothing was written (the temporary "
                                f"file was removed{kept})")
    return err


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: PathLike, what: str = "output", inputs: Iterable[Named] = ()) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path`` (an empty file, created exclusively); rename it
    onto ``path`` only on success. Checks ``path`` first (:func:`check_output`)."""
    path = check_output(path, what, inputs)
    existed = path.exists()
    tmp = None
    try:
        # created inside the try: a signal recorded while deferred is raised as soon as the
        # deferred block ends, and must find the clean-up below already in force
        with deferred():
            fd, tmp = _new_temporary(path)
            os.close(fd)
        checkpoint()
        yield tmp
        checkpoint()
        _fsync(tmp)
        _commit(tmp, path)
    except BaseException as exc:
        if tmp is None:                               # nothing was created
            raise
        _discard(tmp)
        if received() is not None:
            raise Interrupted(received()) from None
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS and not isinstance(exc, WriteError):
            raise write_error(exc, path, existed) from None
        raise


def _write_bytes(raw, data) -> int:
    """The one place output bytes go to disk (tests replace it to inject faults)."""
    return raw.write(data)


class GuardedFile:
    """A binary, seekable file object over a temporary file. A failed write is recorded, not
    raised: a library in the middle of writing (libhdf5 above all, whose half-closed objects crash
    the interpreter at exit after a failed flush; torch's zip writer) finishes and closes normally,
    and :func:`atomic_file` raises the recorded error afterwards. From the failure on, writes go to
    an in-memory overlay that reads see (libhdf5 reads back metadata it wrote; garbage there
    crashes it), so the library's view of the file stays consistent until it is discarded. Long
    writers call :meth:`check` between blocks to stop early, which bounds the overlay."""

    def __init__(self, raw, target: Path):
        self._raw = raw
        self.target = target
        self.error: Optional[OSError] = None
        self.name = str(target)
        self._overlay: List[Tuple[int, bytes]] = []       # (offset, bytes) written after the failure
        self._end = 0                                    # the file's logical size

    def check(self) -> None:
        """Raise the recorded write error, if any (and a recorded signal first)."""
        checkpoint()
        if self.error is not None:
            raise self.error

    def _keep(self, position: int, data) -> None:
        data = bytes(data)
        self._overlay.append((position, data))
        self._end = max(self._end, position + len(data))

    def write(self, data) -> int:
        with deferred():
            view = memoryview(data).cast("B")
            total = len(view)
            position = self._raw.tell()
            if self.error is not None:
                self._keep(position, view)
                self._raw.seek(position + total)
                return total
            n = 0
            try:
                while n < total:                         # raw writes may be short
                    n += _write_bytes(self._raw, view[n:]) or 0
            except OSError as exc:
                self.error = exc
                self._keep(position + n, view[n:])
                self._raw.seek(position + total)
            self._end = max(self._end, position + total)
            return total

    # every method runs with signals deferred: a handler raising inside libhdf5's file-driver
    # callbacks would surface as a failed flush of a half-closed object
    def truncate(self, size=None):
        with deferred():
            size = self._raw.tell() if size is None else size
            if self.error is None:
                try:
                    self._raw.truncate(size)
                except OSError as exc:
                    self.error = exc
            if self.error is not None:                   # cut the overlay too
                self._overlay = [(o, d[:max(0, size - o)]) for o, d in self._overlay if o < size]
            self._end = size
            return size

    def flush(self):
        with deferred():
            if self.error is None:
                try:
                    self._raw.flush()
                except OSError as exc:
                    self.error = exc

    def read(self, size=-1):
        with deferred():
            if self.error is None:
                return self._raw.read(size)
            position = self._raw.tell()
            stop = self._end if size is None or size < 0 else min(self._end, position + size)
            out = bytearray(max(0, stop - position))
            disk = self._raw.read(len(out))
            out[:len(disk)] = disk
            for offset, data in self._overlay:           # later writes win
                lo, hi = max(offset, position), min(offset + len(data), stop)
                if lo < hi:
                    out[lo - position:hi - position] = data[lo - offset:hi - offset]
            self._raw.seek(position + len(out))
            return bytes(out)

    def readinto(self, buffer):
        with deferred():
            view = memoryview(buffer).cast("B")
            data = self.read(len(view))
            view[:len(data)] = data
            return len(data)

    def seek(self, offset, whence=0):
        with deferred():
            if whence == os.SEEK_END and self.error is not None:
                return self._raw.seek(self._end + offset)
            return self._raw.seek(offset, whence)

    def tell(self):
        with deferred():
            return self._raw.tell()

    def readable(self):
        return True

    def writable(self):
        return True

    def seekable(self):
        return True

    @property
    def closed(self):
        return self._raw.closed


@contextlib.contextmanager
def atomic_file(path: PathLike, what: str = "output", inputs: Iterable[Named] = ()) -> Iterator[GuardedFile]:
    """Yield a :class:`GuardedFile` writing a temporary file beside ``path``; fsync and rename it
    onto ``path`` only on success (:func:`check_output` first). A failed write raises
    :class:`WriteError`; a signal :class:`Interrupted`; either way ``path`` is unchanged."""
    path = check_output(path, what, inputs)
    existed = path.exists()
    tmp = raw = guarded = None
    try:
        try:
            # created inside both tries (see atomic_path); no signal between creating and owning it
            with deferred():
                fd, tmp = _new_temporary(path)
                raw = os.fdopen(fd, "w+b", buffering=0)
                guarded = GuardedFile(raw, path)
            checkpoint()
            yield guarded
            checkpoint()
            if guarded.error is None:
                os.fsync(raw.fileno())
        except OSError as exc:
            if guarded is not None and guarded.error is None and exc.errno in WRITE_ERRNOS:
                guarded.error = exc                      # fsync or a writer's own failure
            raise
        finally:
            if raw is not None:
                with deferred():
                    raw.close()
        if guarded.error is not None:
            raise guarded.error
        _commit(tmp, path)
    except BaseException as exc:
        if tmp is None:                               # nothing was created
            raise
        _discard(tmp)
        if received() is not None:
            raise Interrupted(received()) from None
        if guarded is not None and guarded.error is not None:
            raise write_error(guarded.error, path, existed) from None
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS and not isinstance(exc, WriteError):
            raise write_error(exc, path, existed) from None
        raise


@contextlib.contextmanager
def h5_file(guarded: GuardedFile):
    """An h5py.File writing into a :class:`GuardedFile` (h5py's file-object driver), closed even
    after a failed write: h5py's close stops at the first object that fails to flush and leaves
    the rest open, which crashes libhdf5 when the interpreter exits; once the file object drops
    writes, a second close succeeds. Signals are recorded but not raised inside the block: writers
    call :meth:`GuardedFile.check` between blocks."""
    import h5py

    with deferred():             # signals are raised by guarded.check() / checkpoint(), never inside libhdf5
        f = h5py.File(guarded, "w")
        try:
            yield f
        finally:
            _close_h5(f, guarded)


def _close_h5(f, guarded: GuardedFile) -> None:
    with deferred():
        for _ in range(3):
            try:
                f.close()
                return
            except Exception:
                if guarded.error is None:
                    guarded.error = OSError(errno.EIO, "HDF5 could not close the file")
