"""Command line: ``lanp <command>`` and ``lanp-propagate`` (= ``lanp propagate``).

Each command lives in its own module exposing ``configure(parser)`` and ``run(args) -> int``;
modules are imported only when their command runs, so ``lanp propagate`` never imports torch.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import tempfile
import time
import traceback

from lanp import __version__, outputs          # light: the signal handlers go in before numba loads

# command -> (module, one-line help)
COMMANDS = {
    "propagate": ("lanp.commands.propagate", "normality propagation: pseudo-labels and loss weights"),
    "synth": ("lanp.commands.synth", "write a seeded synthetic dataset and its ground truth"),
    "convert": ("lanp.commands.convert", "convert RTFM / C2FPL / LANP-split / folder .npy features to packed h5"),
    "train": ("lanp.commands.train", "train the detector on pseudo-labels (weighted BCE)"),
    "score": ("lanp.commands.score", "score every snippet of a feature file with a trained detector"),
    "evaluate": ("lanp.commands.evaluate", "frame-level ROC-AUC and AP of scores against ground truth"),
    "plot": ("lanp.commands.plot", "plot a video's scores over frames with ground truth shaded, or the ROC curve"),
    "demo": ("lanp.commands.demo", "synth -> propagate -> train -> score -> evaluate -> plot on synthetic data"),
    "compare": ("lanp.commands.compare", "LANP vs its ablations and baselines over seeds: AUC/AP table, pseudo-label P/R, bar chart"),
    "warmup": ("lanp.commands.warmup", "compile every numba kernel ahead of time into numba's cache (container images, clusters)"),
}


# commands whose several outputs are renamed into place together, only when the command succeeded
# (the others read their own outputs back: demo, compare's runs/, sharded work files)
TRANSACTIONAL = {"synth", "evaluate", "plot", "score", "train", "convert"}


def _parser_for(name: str, prog: str = None) -> argparse.ArgumentParser:
    from lanp import config_file

    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=prog, description=module.__doc__ or help_text,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    module.configure(parser)
    config_file.add_arguments(parser, name)          # --config FILE.toml, --print-config
    parser.set_defaults(_run=module.run)
    return parser


def _quiet_stdout() -> None:
    """The reader of stdout went away (``lanp ... | head -1``): send the rest nowhere."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _os_message(exc: OSError) -> str:
    if isinstance(exc, outputs.WriteError):
        return str(exc.strerror)
    what = exc.strerror or str(exc)
    if exc.filename is not None:
        other = f" -> {exc.filename2!r}" if exc.filename2 is not None else ""
        return f"{what.lower() if what[:1].isupper() else what}: {str(exc.filename)!r}{other}"
    return str(exc)


def _save_traceback(exc: BaseException) -> str:
    """Write the traceback of an unexpected error to a file; returns its path."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        fd, path = tempfile.mkstemp(prefix=f"lanp-traceback-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(f"lanp {__version__}, {' '.join(sys.argv)}\n{text}")
        return path
    except OSError:
        return "(could not be saved)"


def _interrupted(exc) -> int:
    signum = getattr(exc, "signum", 2)
    name = {2: "interrupted", 15: "terminated"}.get(signum, "interrupted")
    done = [str(p) for p in outputs.committed]
    if done:
        print(f"{name}: stopped after writing {', '.join(done)}; nothing else was changed", file=sys.stderr)
    else:
        print(f"{name}: no output was written, existing outputs are unchanged", file=sys.stderr)
    return 128 + signum


def _execute(name: str, prog: str, argv) -> int:
    """Run a command; every anticipated failure is one ``error:`` line and exit code 2, an interrupt
    exit code 130 (SIGINT) or 143 (SIGTERM), an unexpected error one line naming a saved traceback
    (exit code 1). The signal handlers are installed before the command's modules are imported."""
    outputs.install_signal_handlers()
    try:
        from lanp import config_file
        from lanp.kernels import InputError

        try:
            parser = _parser_for(name, prog=prog)
            args = config_file.parse_args(parser, argv, tuple(COMMANDS))
            with outputs.transaction() if name in TRANSACTIONAL else contextlib.nullcontext():
                code = int(args._run(args) or 0)
            outputs.checkpoint()                 # a signal swallowed by a C callback still counts
            sys.stdout.flush()
            return code
        except KeyboardInterrupt as exc:
            return _interrupted(exc)
        except Exception as exc:
            if outputs.received() is not None:   # what a library made of the signal (a closed pipe, ...)
                return _interrupted(outputs.Interrupted(outputs.received()))
            if isinstance(exc, BrokenPipeError):
                _quiet_stdout()
                return 141
            if isinstance(exc, MemoryError):
                print(f"error: out of memory: {exc or 'an allocation failed'} (a smaller input, chunk or "
                      f"option value would fit)", file=sys.stderr)
                return 2
            if not isinstance(exc, (InputError, FileNotFoundError, ValueError, RuntimeError, OSError)):
                path = _save_traceback(exc)      # a bug: one line, the traceback in a file
                print(f"error: unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                      f"(a bug in lanp; the traceback is in {path})", file=sys.stderr)
                return 1
            message = _os_message(exc) if isinstance(exc, OSError) else str(exc)
            message = " ".join(line.strip() for line in message.splitlines() if line.strip())   # one line
            print(f"error: {message}", file=sys.stderr)
            return 2
    except KeyboardInterrupt as exc:            # a signal while reporting
        return _interrupted(exc)
    finally:
        outputs.restore_signal_handlers()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        width = max(map(len, COMMANDS))
        lines = "\n".join(f"  {name:<{width}}  {help_text}" for name, (_, help_text) in COMMANDS.items())
        print(f"usage: lanp <command> [options]\n\ncommands:\n{lines}\n\n"
              f"'lanp <command> --help' describes a command.")
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"lanp {__version__}")
        return 0
    if argv[0] not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}: choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return _execute(argv[0], f"lanp {argv[0]}", argv[1:])


def propagate_main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    return _execute("propagate", "lanp-propagate", argv)


if __name__ == "__main__":
    sys.exit(main())
