"""Command line: ``lanp <command>`` and ``lanp-propagate`` (= ``lanp propagate``).

Each command lives in its own module exposing ``configure(parser)`` and ``run(args) -> int``;
modules are imported only when their command runs, so ``lanp propagate`` never imports torch.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from lanp import __version__, config_file
from lanp.kernels import InputError

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
}


def _parser_for(name: str, prog: str = None) -> argparse.ArgumentParser:
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=prog, description=module.__doc__ or help_text,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    module.configure(parser)
    config_file.add_arguments(parser, name)          # --config FILE.toml, --print-config
    parser.set_defaults(_run=module.run)
    return parser


def _execute(parser: argparse.ArgumentParser, argv) -> int:
    try:
        args = config_file.parse_args(parser, argv, tuple(COMMANDS))
        return int(args._run(args) or 0)
    except (InputError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: no output was written", file=sys.stderr)
        return 130


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
    return _execute(_parser_for(argv[0], prog=f"lanp {argv[0]}"), argv[1:])


def propagate_main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    return _execute(_parser_for("propagate", prog="lanp-propagate"), argv)


if __name__ == "__main__":
    sys.exit(main())
