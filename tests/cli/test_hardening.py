"""Output safety (issue 18): signals, special files, temporary files, outputs equal to inputs, full
disks and ordinary file-system conditions. Every command must answer with one ``error:`` line and
exit code 2 (130 / 143 for SIGINT / SIGTERM) and leave an existing output byte for byte as it was,
with no temporary file left behind.

Faults that CI cannot produce for real are injected: ``lanp.outputs._write_bytes`` (the one place
output bytes go to disk) raising OSError(ENOSPC), a C callback swallowing a KeyboardInterrupt. Real
faults where CI can make them: signals sent to subprocesses, RLIMIT_FSIZE (a real EFBIG from the
kernel in the middle of libhdf5's writes), FIFOs, /dev/null, planted links.
"""
import errno
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lanp import outputs
from lanp.cli import main
from shared import labelled_files  # noqa: E402
from lanp.data.io import write_h5

ROOT = Path(__file__).resolve().parents[2]
ORIGINAL = b"the existing output, which no failure may change\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Features, ground truth, labels, a model and scores for every command."""
    d = tmp_path_factory.mktemp("hardening")
    labelled_files(d, num_videos=16, max_length=30, seed=3)
    npy = d / "npy"
    npy.mkdir()
    rng = np.random.default_rng(18)
    for v in range(4):
        np.save(npy / f"clip{v}.npy", rng.normal(size=(20, 8)).astype(np.float32))
    return d


def existing(path: Path) -> Path:
    path.write_bytes(ORIGINAL)
    return path


def temporaries(folder: Path):
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def commands(d: Path, out: Path):
    """(name, argv) of every command that writes one file to ``out``."""
    return [
        ("propagate", ["propagate", "--features", str(d / "f.h5"), "--out", str(out), "--quiet"]),
        ("convert", ["convert", str(d / "npy"), "--out", str(out), "--quiet"]),
        ("train", ["train", "--features", str(d / "f.h5"), "--labels", str(d / "f.labels.h5"), "--out", str(out),
                   "--epochs", "1", "--quiet"]),
        ("score", ["score", "--model", str(d / "m.pt"), "--features", str(d / "f.h5"), "--out", str(out),
                   "--quiet"]),
        ("plot", ["plot", "--scores", str(d / "s.h5"), "--gt", str(d / "f.gt.h5"), "--roc", "--out", str(out)]),
        ("synth", ["synth", "--out", str(out), "--gt", str(out.with_name("other.gt.h5")), "--videos", "4"]),
    ]


def run_cli(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


# -- 1, 2: signals ---------------------------------------------------------------------------------
def _interrupt_subprocess(argv, out: Path, sig, tries: int = 6):
    """Start ``lanp argv``, wait until its temporary output exists, send ``sig``; returns
    (returncode, stderr) of the first try where the signal reached a run still writing, else None."""
    for _ in range(tries):
        existing(out)
        p = subprocess.Popen([sys.executable, "-m", "lanp.cli", *argv], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, cwd=ROOT)
        while p.poll() is None and not temporaries(out.parent):
            time.sleep(0.002)                            # poll the file system; nothing is timed
        if p.poll() is not None:                          # finished before we saw its temporary file
            p.communicate()
            continue
        p.send_signal(sig)
        _, err = p.communicate()
        return p.returncode, err.decode()
    return None


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_writing_keeps_the_output_and_exits_non_zero(tmp_path, sig, code):
    rng = np.random.default_rng(1)
    src = tmp_path / "src"
    src.mkdir()
    for v in range(60):                      # enough rows that the write takes a while
        np.save(src / f"v{v:02d}.npy", rng.normal(size=(400, 512)).astype(np.float32))
    out = tmp_path / "out" / "big.h5"
    out.parent.mkdir()
    result = _interrupt_subprocess(["convert", str(src), "--out", str(out), "--quiet"], out, sig)
    if result is None:
        pytest.skip("every run finished before its temporary file was seen")
    rc, err = result
    assert rc == code, err
    assert "Traceback" not in err and "no output was written" in err
    assert out.read_bytes() == ORIGINAL
    assert temporaries(out.parent) == []


def _signal_at_instruction(n: int):
    """A tracer that runs the real handler (record, raise unless deferred) at the ``n``-th bytecode
    executed in lanp/outputs.py and contextlib, as a SIGINT arriving there would; ``fired`` says
    whether the run lasted that long."""
    import contextlib

    files = {outputs.__file__, contextlib.__file__}
    state = {"count": 0, "fired": False}

    def local(frame, event, arg):
        if event == "opcode" and not state["fired"]:
            state["count"] += 1
            if state["count"] == n:
                state["fired"] = True
                outputs._handler(signal.SIGINT, frame)
        return local

    def tracer(frame, event, arg):
        if frame.f_code.co_filename not in files:
            return None
        frame.f_trace_opcodes = True
        return local

    return tracer, state


@pytest.mark.parametrize("writer", ["atomic_file", "atomic_path", "transaction"])
def test_a_signal_at_any_instruction_leaves_no_temporary_file(tmp_path, monkeypatch, writer):
    """The subprocess test above hits the moment a temporary file appears only by chance (it left one
    behind under load: the file was made in a deferred block before the try that removes it, and a
    signal recorded there was raised in between). Here the signal arrives at every bytecode of the
    write in turn, so every gap shows: the output is the original or the new one, never a temporary."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)          # thousands of runs; fsync is not the point
    out, second = tmp_path / "out.h5", tmp_path / "second.h5"

    def write():
        if writer == "atomic_file":
            with outputs.atomic_file(out) as f:
                f.write(b"new")
        elif writer == "atomic_path":
            with outputs.atomic_path(out) as p:
                p.write_bytes(b"new")
        else:
            with outputs.transaction():
                with outputs.atomic_file(out) as f:
                    f.write(b"new")
                with outputs.atomic_path(second) as p:
                    p.write_bytes(b"new")
            assert out.read_bytes() == second.read_bytes() == b"new"

    n, replaced = 0, 0
    while True:
        n += 1
        existing(out)
        second.unlink(missing_ok=True)
        tracer, state = _signal_at_instruction(n)
        outputs.install_signal_handlers()
        sys.settrace(tracer)
        try:
            write()
        except outputs.Interrupted:
            pass
        finally:
            sys.settrace(None)
            outputs.restore_signal_handlers()
        assert temporaries(tmp_path) == [], f"signal at instruction {n}"
        assert out.read_bytes() in (ORIGINAL, b"new"), n
        replaced += out.read_bytes() == b"new"
        if not state["fired"]:
            break
    assert n > 200 and 0 < replaced < n                    # the write was probed, and both outcomes happened
    assert outputs._transactions == []


def test_a_signal_swallowed_by_a_c_callback_still_stops_the_command(data, tmp_path, monkeypatch, capsys):
    """h5py and llvmlite print 'Exception ignored ... KeyboardInterrupt' and carry on when a signal
    handler raises inside their callbacks; the recorded signal must still stop the command before
    its output is replaced, and make it exit 130."""
    import lanp.data.convert as C

    real = C.load_npy

    def load_and_swallow(path):
        try:
            os.kill(os.getpid(), signal.SIGINT)          # a real signal to this process...
            for _ in range(1000):
                pass                                     # ...delivered here
        except KeyboardInterrupt:
            pass                                         # ...and dropped, as a C callback would
        return real(path)

    monkeypatch.setattr(C, "load_npy", load_and_swallow)
    out = existing(tmp_path / "out.h5")
    code, err = run_cli(["convert", str(data / "npy"), "--out", str(out), "--quiet"], capsys)
    assert code == 130, err
    assert out.read_bytes() == ORIGINAL and temporaries(tmp_path) == []


def test_the_commit_refuses_to_rename_once_a_signal_was_recorded(tmp_path):
    out = existing(tmp_path / "out.h5")
    outputs.install_signal_handlers()
    try:
        with pytest.raises(outputs.Interrupted) as info:
            with outputs.atomic_file(out) as f:
                f.write(b"new")
                with outputs.deferred():                 # recorded, not raised (as inside a callback)
                    os.kill(os.getpid(), signal.SIGTERM)
                    for _ in range(1000):
                        pass
        assert info.value.exit_code == 143
    finally:
        outputs.restore_signal_handlers()
    assert out.read_bytes() == ORIGINAL and temporaries(tmp_path) == []


def test_stale_temporaries_of_dead_processes_are_removed_and_nothing_else(tmp_path):
    out = existing(tmp_path / "out.h5")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    host = outputs._host()
    stale = tmp_path / f".out.h5.tmp-{host}-{dead_pid}-abc123"
    stale.write_bytes(b"partial")
    alive = tmp_path / f".out.h5.tmp-{host}-{os.getppid()}-abc123"     # a live process: kept
    alive.write_bytes(b"in progress")
    other_host = tmp_path / f".out.h5.tmp-elsewhere-{dead_pid}-abc123"  # another machine's: kept
    other_host.write_bytes(b"in progress")
    victim = existing(tmp_path / "victim")
    link = tmp_path / f".out.h5.tmp-{host}-{dead_pid}-link99"           # a link: neither removed nor followed
    link.symlink_to(victim)
    assert outputs.stale_temporaries(out) == [stale]
    write_h5(out, {"x": np.arange(3)})
    assert not stale.exists() and alive.exists() and other_host.exists() and link.is_symlink()
    assert victim.read_bytes() == ORIGINAL


# -- 3, 4: special files, planted links ------------------------------------------------------------
def test_out_on_a_device_or_fifo_is_refused_by_every_command(data, tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target in (Path(os.devnull), fifo):
        for name, argv in commands(data, target):
            code, err = run_cli(argv, capsys)
            assert code == 2, (name, target, err)
            assert err.startswith("error: ") and "regular files" in err, (name, err)
    assert Path(os.devnull).is_char_device() and fifo.is_fifo()


def test_temporary_names_are_unpredictable_and_a_planted_link_is_not_followed(tmp_path):
    victim = existing(tmp_path / "victim")
    out = tmp_path / "out.h5"
    for name in (f".out.h5.tmp-{os.getpid()}", f".out.h5.tmp-{outputs._host()}-{os.getpid()}-"):
        (tmp_path / name).symlink_to(victim)            # the old predictable name, and the prefix
    seen = set()
    for _ in range(3):
        with outputs.atomic_path(out) as tmp:
            assert not tmp.is_symlink() and tmp.stat().st_size == 0
            seen.add(tmp.name)
            tmp.write_bytes(b"new")
    assert len(seen) == 3
    assert victim.read_bytes() == ORIGINAL and out.read_bytes() == b"new"


# -- 5: an output equal to an input ----------------------------------------------------------------
def test_an_output_equal_to_an_input_is_refused(data, tmp_path, capsys):
    f = tmp_path / "f.h5"
    f.write_bytes((data / "f.h5").read_bytes())
    os.link(f, tmp_path / "hard.h5")
    before = f.read_bytes()
    cases = [
        ["propagate", "--features", str(f), "--out", str(f)],
        ["propagate", "--features", str(f), "--out", str(tmp_path / "hard.h5")],
        ["propagate", "--features", str(f), "--out", str(tmp_path / "." / "f.h5")],
        ["train", "--features", str(f), "--labels", str(data / "f.labels.h5"), "--out", str(f)],
        ["score", "--model", str(data / "m.pt"), "--features", str(f), "--out", str(f)],
        ["convert", str(f), "--format", "c2fpl", "--ranges", str(f), "--out", str(f)],
        ["synth", "--out", str(tmp_path / "x.h5"), "--gt", str(tmp_path / "x.h5")],
    ]
    for argv in cases:
        code, err = run_cli(argv, capsys)
        assert code == 2 and err.startswith("error: ") and "same file" in err, (argv, err)
    assert f.read_bytes() == before and not (tmp_path / "x.h5").exists()
    lst = tmp_path / "clips.list"
    lst.write_text("".join(f"{p}\n" for p in sorted((data / "npy").glob("*.npy"))))
    code, err = run_cli(["convert", str(lst), "--out", str(lst)], capsys)
    assert code == 2 and "same file as SOURCE" in err
    code, err = run_cli(["convert", str(data / "npy"), "--out", str(data / "npy" / "clip0.npy")], capsys)
    assert code == 2 and "same file as source file" in err


# -- 9: full disks ---------------------------------------------------------------------------------
def _disk_fills_after(limit: int):
    written = [0]

    def write(raw, data):
        n = len(memoryview(data))
        if written[0] + n > limit:
            raise OSError(errno.ENOSPC, "No space left on device")
        written[0] += n
        return raw.write(data)

    return write


@pytest.mark.parametrize("limit", [0, 4096])
def test_a_full_disk_is_one_error_line_and_keeps_the_existing_output(data, tmp_path, monkeypatch, capsys, limit):
    monkeypatch.setattr(outputs, "_write_bytes", _disk_fills_after(limit))
    for name, argv in commands(data, tmp_path / "out.png"):
        out = existing(tmp_path / "out.png")
        code, err = run_cli(argv, capsys)
        assert code == 2, (name, err)
        assert err.startswith("error: no space left on device writing") and err.count("\n") == 1, (name, err)
        assert out.read_bytes() == ORIGINAL, name
        assert temporaries(tmp_path) == [], name


def test_a_real_write_failure_inside_libhdf5_does_not_crash(data, tmp_path):
    """RLIMIT_FSIZE makes the kernel fail libhdf5's writes with EFBIG (the path of a full disk):
    without care h5py leaves half-closed objects and the interpreter dies at exit (exit 139)."""
    out = existing(tmp_path / "out.h5")
    big = tmp_path / "big"
    big.mkdir()
    rng = np.random.default_rng(2)
    for v in range(4):
        np.save(big / f"v{v}.npy", rng.normal(size=(200, 256)).astype(np.float32))

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    p = subprocess.run([sys.executable, "-m", "lanp.cli", "convert", str(big), "--out", str(out), "--quiet"],
                       capture_output=True, text=True, preexec_fn=limit, cwd=ROOT)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("error: file too large") and "Traceback" not in p.stderr
    assert out.read_bytes() == ORIGINAL and temporaries(tmp_path) == []


# -- 10: ordinary file-system conditions -----------------------------------------------------------
def test_out_an_existing_directory_is_refused(data, tmp_path, capsys):
    folder = tmp_path / "folder"
    folder.mkdir()
    for name, argv in commands(data, folder)[1:]:          # propagate --out DIR writes DIR/<stem>.labels.h5
        code, err = run_cli(argv, capsys)
        assert code == 2 and "is a directory" in err, (name, err)
    assert list(folder.iterdir()) == []


def test_an_output_folder_that_is_a_file_is_refused_before_any_work(data, tmp_path, capsys):
    f = existing(tmp_path / "file")
    for argv in (["demo", "--workdir", str(f)],
                 ["compare", "--train", str(data / "f.h5"), "--test", str(data / "f.h5"), "--gt",
                  str(data / "f.gt.h5"), "--out", str(f)]):
        code, err = run_cli(argv, capsys)
        assert code == 2 and "is an existing file" in err, (argv, err)
    assert f.read_bytes() == ORIGINAL


def test_bad_options_write_nothing(data, tmp_path, capsys):
    code, err = run_cli(["demo", "--workdir", str(tmp_path / "demo"), "--epochs", "0"], capsys)
    assert code == 2 and "epochs=0" in err and not (tmp_path / "demo").exists()
    code, err = run_cli(["compare", "--train", str(data / "f.h5"), "--test", str(data / "f.h5"), "--gt",
                         str(data / "f.gt.h5"), "--out", str(tmp_path / "cmp"), "--lr", "nan"], capsys)
    assert code == 2 and "lr=nan" in err and not (tmp_path / "cmp").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_in_a_read_only_folder(data, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        for name, argv in commands(data, ro / "out.png"):
            code, err = run_cli(argv, capsys)
            assert code == 2 and "not writable" in err, (name, err)
    finally:
        ro.chmod(0o755)


def test_a_permission_error_while_writing_is_an_error_line(data, tmp_path, monkeypatch, capsys):
    """Stands in for a read-only folder where the tests run as root: creating the temporary file fails."""
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / ".out.bin.tmp"))

    monkeypatch.setattr(outputs.tempfile, "mkstemp", refuse)
    for name, argv in commands(data, tmp_path / "out.png"):
        code, err = run_cli(argv, capsys)
        assert code == 2 and err.startswith("error: permission denied"), (name, err)


def test_stdout_closed_early_is_quiet(data, tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "lanp.cli", "propagate", "--features", str(data / "f.h5"),
                          "--out", str(tmp_path / "l.h5"), "--quiet"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=ROOT)
    p.stdout.readline()
    p.stdout.close()                                      # as `| head -1` does
    err = p.stderr.read().decode()
    p.wait()
    assert p.returncode in (0, 141) and "Traceback" not in err and "Exception ignored" not in err, err


def test_an_unexpected_error_is_one_line_and_a_saved_traceback(data, tmp_path, monkeypatch, capsys):
    import lanp.model.score as S

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(S, "score_file", bug)
    monkeypatch.setattr(outputs.tempfile, "tempdir", str(tmp_path))
    code, err = run_cli(["score", "--model", str(data / "m.pt"), "--features", str(data / "f.h5"),
                         "--out", str(tmp_path / "s.h5")], capsys)
    assert code == 1 and err.count("\n") == 1 and "ZeroDivisionError: a bug" in err
    saved = Path(err.rsplit("traceback is in ", 1)[1].rstrip(")\n"))
    assert saved.parent == tmp_path and "Traceback" in saved.read_text()


def test_a_command_with_several_outputs_changes_none_of_them_when_one_fails(data, tmp_path, monkeypatch, capsys):
    """synth writes features and ground truth, evaluate a ground truth and its list: when the second
    file cannot be written, the first is not renamed into place either."""
    first = []

    def second_file_fails(raw, data):
        first.append(first[0] if first else raw)
        if raw is not first[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return raw.write(data)

    monkeypatch.setattr(outputs, "_write_bytes", second_file_fails)
    out, gt = existing(tmp_path / "x.h5"), existing(tmp_path / "x.gt.h5")
    code, err = run_cli(["synth", "--out", str(out), "--gt", str(gt), "--videos", "4"], capsys)
    assert code == 2 and "no space left on device writing" in err and str(gt) in err, err
    assert out.read_bytes() == ORIGINAL and gt.read_bytes() == ORIGINAL and temporaries(tmp_path) == []
    first.clear()
    npy, lst = existing(tmp_path / "gt.npy"), existing(tmp_path / "gt.list")
    code, err = run_cli(["evaluate", "--scores", str(data / "s.h5"), "--gt", str(data / "f.gt.h5"),
                         "--export-gt", "rtfm", str(npy), "--export-list", str(lst)], capsys)
    assert code == 2 and "gt.list" in err, err
    assert npy.read_bytes() == ORIGINAL and lst.read_bytes() == ORIGINAL and temporaries(tmp_path) == []


def test_a_signal_during_start_up_is_an_interrupt(monkeypatch, capsys):
    """The handlers are in place before the command's modules (numba, h5py, torch) are imported:
    a Ctrl-C during those imports is exit 130 and one line, not a traceback."""
    import lanp.cli as cli

    def importing(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_parser_for", importing)
    code, err = run_cli(["propagate", "--features", "x.h5"], capsys)
    assert code == 130 and err == "interrupted: no output was written, existing outputs are unchanged\n"


def test_out_of_memory_is_an_error_line(data, tmp_path, monkeypatch, capsys):
    import lanp.model.score as S

    def huge(*args, **kwargs):
        raise MemoryError("Unable to allocate 745. GiB for an array")

    monkeypatch.setattr(S, "score_file", huge)
    code, err = run_cli(["score", "--model", str(data / "m.pt"), "--features", str(data / "f.h5"), "--out",
                         str(tmp_path / "s.h5")], capsys)
    assert code == 2 and err.startswith("error: out of memory: Unable to allocate 745. GiB")


def test_compare_keeps_its_previous_results_when_the_chart_cannot_be_written(data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "cmp"
    out.mkdir()
    old = [existing(out / name) for name in ("compare.json", "compare.md", "compare.png")]
    failing = [False]

    def png_fails(raw, data):
        failing[0] = failing[0] or bytes(memoryview(data)[:4]) == b"\x89PNG"
        if failing[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return raw.write(data)

    monkeypatch.setattr(outputs, "_write_bytes", png_fails)
    code, err = run_cli(["compare", "--train", str(data / "f.h5"), "--test", str(data / "f.h5"), "--gt",
                         str(data / "f.gt.h5"), "--methods", "trivial-ends", "--seeds", "1", "--out", str(out)],
                        capsys)
    assert code == 2 and "no space left on device writing" in err and "compare.png" in err, err
    assert [p.read_bytes() for p in old] == [ORIGINAL] * 3 and temporaries(out) == []


def test_a_write_failure_at_any_byte_leaves_libhdf5_consistent(data, tmp_path, monkeypatch):
    """The disk fills at a sweep of byte counts, inside chunk data and inside metadata libhdf5
    reads back later: every write ends as a WriteError, never a crash (the interpreter would die
    here), and nothing is left behind."""
    from lanp.data.convert import convert, sources_for

    sources = sources_for("folder", data / "npy")
    rng = np.random.default_rng(7)
    arrays = {"a": rng.normal(size=(300, 40)), "ids": [f"v{i}" for i in range(300)]}
    for limit in range(0, 120_000, 6007):
        monkeypatch.setattr(outputs, "_write_bytes", _disk_fills_after(limit))
        for write in (lambda: convert(sources, tmp_path / "c.h5", quiet=True, chunk_rows=7),
                      lambda: write_h5(tmp_path / "w.h5", arrays, {"x": 1})):
            try:
                write()
            except outputs.WriteError as exc:
                assert exc.errno == errno.ENOSPC
        assert temporaries(tmp_path) == []


def test_the_temporary_file_of_a_killed_run_is_removed_by_the_next_run(data, tmp_path, capsys):
    rng = np.random.default_rng(9)
    src = tmp_path / "src"
    src.mkdir()
    for v in range(60):
        np.save(src / f"v{v:02d}.npy", rng.normal(size=(400, 512)).astype(np.float32))
    out = tmp_path / "out" / "big.h5"
    out.parent.mkdir()
    argv = ["convert", str(src), "--out", str(out), "--quiet"]
    for _ in range(6):
        p = subprocess.Popen([sys.executable, "-m", "lanp.cli", *argv], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, cwd=ROOT)
        while p.poll() is None and not temporaries(out.parent):
            time.sleep(0.002)
        if p.poll() is None:
            p.kill()                                      # SIGKILL: no handler runs, the temporary stays
            p.wait()
            break
        p.wait()
    else:
        pytest.skip("every run finished before its temporary file was seen")
    left = temporaries(out.parent)
    assert left and f"-{p.pid}-" in left[0]
    assert main(argv) == 0
    assert temporaries(out.parent) == [] and out.is_file()
