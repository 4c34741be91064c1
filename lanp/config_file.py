"""``--config file.toml`` and ``--print-config`` for every command (docs/config.md).

A config file holds option values in TOML (read with the standard library's ``tomllib``). Keys are
the long option names without the dashes (``frames-per-snippet``; ``frames_per_snippet`` works
too) or a positional argument's name (``source``). Either

- one table per command, ``[propagate]``, ``[train]``, ``[score]``, ``[evaluate]``, ...: each command
  reads its own table and ignores the other commands' tables; or
- keys at the top level, read by whichever command is given the file.

Values are typed as on the command line: a string is parsed by the option's own type, a number or
boolean must fit it, a list fills an option that takes several values (``features = ["a.h5"]``;
``seeds = [0, -1]`` becomes ``0,-1``), and flags take ``true`` / ``false``. Options given on the
command line override the file. An unknown key or command table, or a bad value, is an
``InputError`` naming the file, the key and the allowed keys or values.

The resolved configuration -- every option's final value, plus ``command`` and ``config_file`` --
is printed as TOML by ``--print-config`` (which then exits without running: its output is a valid
config file) and stored in outputs: :func:`output_attrs` gives ``{"lanp_config": <JSON>}`` for HDF5
attributes, :func:`current_config` the dict for checkpoints and JSON outputs.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from lanp.kernels import InputError

CONFIG_ATTR = "lanp_config"
_INTERNAL = {"_run", "config", "print_config", "help"}
_current: Optional[Dict[str, Any]] = None


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Add ``--config`` and ``--print-config`` to a command's parser (lanp.cli does this once)."""
    group = parser.add_argument_group("configuration")
    group.add_argument("--config", metavar="FILE.toml", default=None,
                       help="read option values from a TOML file (docs/config.md); options given here override it")
    group.add_argument("--print-config", action="store_true",
                       help="print the resolved configuration as TOML and exit without running")
    parser.set_defaults(_command=command)


# -- reading ------------------------------------------------------------------------------------
def load(path) -> dict:
    """The TOML file as a dict; a missing or malformed file is an InputError naming it."""
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {str(path)!r} does not exist")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"config file {str(path)!r} is not a UTF-8 text file (byte {exc.start} is "
                         f"0x{exc.object[exc.start]:02x}): expected TOML, see docs/config.md") from None


def _options(parser: argparse.ArgumentParser) -> Dict[str, argparse.Action]:
    """key -> action for every option a config file may set (long name without dashes, the dest)."""
    out: Dict[str, argparse.Action] = {}
    for action in parser._actions:
        if action.dest in _INTERNAL or action.dest == argparse.SUPPRESS or action.dest.startswith("_"):
            continue
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        names = [s[2:] for s in action.option_strings if s.startswith("--")] or [action.dest]
        for name in names:
            out[name] = action
        out[action.dest] = action
    return out


def _key_name(action: argparse.Action) -> str:
    longs = [s[2:] for s in action.option_strings if s.startswith("--")]
    return longs[0] if longs else action.dest


def _section(data: dict, command: str, commands, where: str) -> dict:
    """The part of a config file that ``command`` reads (its table, else the top-level keys)."""
    flat = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    unknown = [k for k in tables if k not in commands]
    if unknown:
        raise InputError(f"config file {where}: table [{unknown[0]}] is not a lanp command; tables must be "
                         f"named after commands: {', '.join(commands)}")
    section = dict(flat)
    section.update(tables.get(command, {}))
    return section


def _convert_one(action: argparse.Action, value, key: str, where: str):
    def bad(why: str):
        return InputError(f"config file {where}: key {key!r} = {value!r} is invalid: {why}")

    if isinstance(value, (dict, list)):
        raise bad("expected a single value")
    kind = action.type
    if kind is None:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise bad("expected a string")
        converted = value if isinstance(value, str) else str(value)
    else:
        try:
            if isinstance(value, str):
                converted = kind(value)
            elif kind in (int, float) and not isinstance(value, bool):
                converted = kind(value)
                if kind is int and converted != value:
                    raise ValueError("not an integer")
            else:
                converted = kind(str(value))
        except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
            raise bad(f"{getattr(kind, '__name__', 'the option type')} expected ({exc})") from None
    if action.choices is not None and converted not in action.choices:
        raise bad(f"choose one of {', '.join(map(str, action.choices))}")
    return converted


def _convert(action: argparse.Action, value, key: str, where: str):
    """A TOML value as the argparse action would have stored it."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise InputError(f"config file {where}: key {key!r} = {value!r} is invalid: it is a flag, give "
                             f"true or false")
        return value if isinstance(action, argparse._StoreTrueAction) else not value
    if isinstance(action, argparse._AppendAction):      # a repeatable option: a list of its values
        items = value if isinstance(value, list) else [value]
        return [_convert_one(action, v, key, where) for v in items]
    many = action.nargs in ("+", "*") or (isinstance(action.nargs, int) and action.nargs > 1)
    if many:
        items = value if isinstance(value, list) else [value]
        if isinstance(action.nargs, int) and len(items) != action.nargs:
            raise InputError(f"config file {where}: key {key!r} = {value!r} is invalid: it takes exactly "
                             f"{action.nargs} values")
        if action.nargs == "+" and not items:
            raise InputError(f"config file {where}: key {key!r} is an empty list: it takes one value or more")
        return [_convert_one(action, v, key, where) for v in items]
    if isinstance(value, list):                 # comma-separated options (--seeds 0,-1)
        if action.type is None or not all(isinstance(v, (int, float, str)) and not isinstance(v, bool)
                                          for v in value):
            raise InputError(f"config file {where}: key {key!r} = {value!r} is invalid: it takes a single value")
        value = ",".join(str(v) for v in value)
    return _convert_one(action, value, key, where)


def config_values(parser: argparse.ArgumentParser, path, command: str, commands) -> Dict[str, Any]:
    """dest -> value of every key that ``command`` reads from config file ``path``."""
    where = repr(str(path))
    section = _section(load(path), command, commands, where)
    options = _options(parser)
    values: Dict[str, Any] = {}
    for key, value in section.items():
        action = options.get(key) or options.get(key.replace("_", "-"))
        if action is None:
            allowed = sorted({_key_name(a) for a in options.values()})
            raise InputError(f"config file {where}: unknown key {key!r} for 'lanp {command}'; allowed keys: "
                             f"{', '.join(allowed)}")
        if action.dest in values:
            raise InputError(f"config file {where}: key {key!r} sets {_key_name(action)!r} a second time")
        values[action.dest] = _convert(action, value, key, where)
    return values


# -- parsing ------------------------------------------------------------------------------------
def _given_on_command_line(parser: argparse.ArgumentParser, argv: List[str]) -> set:
    """dests the command line sets itself (parsed with every default suppressed, nothing required)."""
    saved = [(a, a.default, a.required, a.nargs) for a in parser._actions]
    groups = [(g, g.required) for g in parser._mutually_exclusive_groups]
    try:
        for g in parser._mutually_exclusive_groups:
            g.required = False
        for a in parser._actions:
            a.default = argparse.SUPPRESS
            a.required = False
            if not a.option_strings and a.nargs is None:
                a.nargs = "?"
        ns, _ = parser.parse_known_args([x for x in argv if x not in ("-h", "--help")])
    finally:
        for a, default, required, nargs in saved:
            a.default, a.required, a.nargs = default, required, nargs
        for g, required in groups:
            g.required = required
    return set(vars(ns))


def parse_args(parser: argparse.ArgumentParser, argv, commands=()) -> argparse.Namespace:
    """``parser.parse_args(argv)`` with ``--config`` values under the command line's, and
    ``--print-config`` turned into the command to run. Also records the resolved configuration
    for :func:`current_config`."""
    global _current
    argv = list(argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    command = parser.get_default("_command") or (parser.prog or "").split()[-1]
    values: Dict[str, Any] = {}
    if known.config is not None:
        values = config_values(parser, known.config, command, commands or (command,))
    saved = [(a, a.default, a.required, a.nargs) for a in parser._actions]
    groups = [(g, g.required) for g in parser._mutually_exclusive_groups]
    try:
        if values:
            given = _given_on_command_line(parser, argv)
            for g in parser._mutually_exclusive_groups:       # a required choice the config makes
                if any(a.dest in values for a in g._group_actions):
                    g.required = False
            for a in parser._actions:
                if a.dest in values and a.dest not in given:      # the command line wins
                    a.default = values[a.dest]
                    a.required = False
                    if not a.option_strings and a.nargs is None:
                        a.nargs = "?"
        args = parser.parse_args(argv)
    finally:
        for a, default, required, nargs in saved:
            a.default, a.required, a.nargs = default, required, nargs
        for g, required in groups:
            g.required = required
    if values:
        # an option given on the command line replaces the config's values of the options that are
        # mutually exclusive with it (--normal-fraction on the command line beats n-normal in a file)
        for group in parser._mutually_exclusive_groups:
            dests = {a.dest for a in group._group_actions}
            if dests & given:
                for a in group._group_actions:
                    if a.dest not in given and a.dest in values:
                        setattr(args, a.dest, default_of(a))
    args._config_sources = {"config_file": None if known.config is None else str(known.config),
                            "from_config": sorted(values)}
    _current = resolved_config(args, parser)
    if getattr(args, "print_config", False):
        text = to_toml(_current, command)
        args._run = lambda _args: print(text, end="") or 0
    run = getattr(args, "_run", None)
    if run is not None:
        def run_then_forget(a, run=run):
            """Run the command; afterwards current_config() is None again (no stale configuration
            reaches later library calls in the same process)."""
            global _current
            try:
                return run(a)
            finally:
                _current = None
        args._run = run_then_forget
    return args


def default_of(action: argparse.Action):
    return None if action.default is argparse.SUPPRESS else action.default


# -- the resolved configuration -----------------------------------------------------------------
def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def resolved_config(args: argparse.Namespace, parser: Optional[argparse.ArgumentParser] = None) -> Dict[str, Any]:
    """Every option's final value (keys spelled as in config files), plus ``command``,
    ``config_file`` and ``lanp_version``: JSON-serialisable."""
    from lanp import __version__

    names = {a.dest: _key_name(a) for a in parser._actions} if parser is not None else {}
    options = {}
    for dest, value in sorted(vars(args).items()):
        if dest in _INTERNAL or dest.startswith("_"):
            continue
        options[names.get(dest, dest.replace("_", "-"))] = _plain(value)
    sources = getattr(args, "_config_sources", {})
    return {"command": getattr(args, "_command", None), "config_file": sources.get("config_file"),
            "lanp_version": __version__, "options": options}


def current_config() -> Optional[Dict[str, Any]]:
    """The resolved configuration of the command the CLI is running (None outside the CLI)."""
    return None if _current is None else json.loads(json.dumps(_current))


def output_attrs() -> Dict[str, str]:
    """``{"lanp_config": <resolved configuration as JSON>}`` for an output's HDF5 attributes, or {}
    outside the CLI."""
    return {} if _current is None else {CONFIG_ATTR: json.dumps(_current, sort_keys=True)}


def read_stored(attrs: dict) -> Optional[Dict[str, Any]]:
    """The configuration stored in an output's attributes (or a JSON output / checkpoint dict)."""
    value = attrs.get(CONFIG_ATTR)
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode()
    return json.loads(value) if isinstance(value, str) else value


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))             # a JSON string is a valid TOML basic string


def to_toml(config: Dict[str, Any], command: str) -> str:
    """The resolved configuration as a config file: a ``[command]`` table; unset options (None)
    appear as comments, since TOML has no null."""
    lines = [f"# lanp {config.get('lanp_version')} resolved configuration of 'lanp {command}'"
             + (f" (config file {config['config_file']})" if config.get("config_file") else ""),
             f"[{command}]"]
    for key, value in config["options"].items():
        if value is None:
            lines.append(f"# {key} = (not set)")
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
