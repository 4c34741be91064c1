"""--config FILE.toml and --print-config: every command's parser, overrides, errors, round trips,
the example configs, and the configuration stored in outputs."""
import argparse
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from lanp import config_file
from lanp.cli import COMMANDS, _parser_for, main
from lanp.kernels import InputError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def resolve(command, argv):
    parser = _parser_for(command, prog=f"lanp {command}")
    args = config_file.parse_args(parser, argv, tuple(COMMANDS))
    return args, config_file.resolved_config(args, parser)


def required_argv(command):
    """Dummy values for a command's required options and positionals."""
    parser = _parser_for(command)
    argv = []
    for a in parser._actions:
        if a.option_strings and a.required:
            argv += [a.option_strings[-1], "x.h5"]
        elif not a.option_strings and a.nargs != argparse.SUPPRESS and a.dest not in ("help",):
            argv.insert(0, "x.h5")
    for group in parser._mutually_exclusive_groups:
        if group.required:
            argv += [group._group_actions[0].option_strings[-1], "x"]
    return argv


@pytest.mark.parametrize("command", list(COMMANDS))
def test_print_config_round_trips_for_every_command(tmp_path, capsys, command):
    argv = required_argv(command)
    assert main([command, *argv, "--print-config"]) == 0
    text = capsys.readouterr().out
    assert f"[{command}]" in text
    path = tmp_path / f"{command}.toml"
    path.write_text(text)
    assert main([command, "--config", str(path), "--print-config"]) == 0       # nothing else needed
    again = capsys.readouterr().out
    body = lambda t: [line for line in t.splitlines() if not line.startswith("# lanp")]
    assert body(again) == body(text)
    _, first = resolve(command, argv)
    _, second = resolve(command, ["--config", str(path)])
    assert first["options"] == second["options"] and second["config_file"] == str(path)


def test_values_types_and_command_line_overrides(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[propagate]\nfeatures = ["a.h5", "b.h5"]\nseeds = [0, 1, -2, -1]\nn_normal = 5\n'
                   'alpha = 0.9\nwindow = 8\nquiet = true\n[evaluate]\nscores = "s.h5"\ngt = "g.h5"\n')
    args, resolved = resolve("propagate", ["--config", str(cfg)])
    assert args.features == ["a.h5", "b.h5"] and args.seeds == (0, 1, -2, -1) and args.n_normal == 5
    assert args.alpha == 0.9 and args.window == 8 and args.quiet is True
    assert resolved["options"]["seeds"] == [0, 1, -2, -1] and resolved["command"] == "propagate"
    # the command line wins, also for list options (not appended) and mutually exclusive options
    args, _ = resolve("propagate", ["--config", str(cfg), "--features", "c.h5", "--alpha", "0.5",
                                    "--normal-fraction", "0.3"])
    assert args.features == ["c.h5"] and args.alpha == 0.5
    assert args.normal_fraction == 0.3 and args.n_normal is None
    # each command reads its own table only
    args, _ = resolve("evaluate", ["--config", str(cfg)])
    assert (args.scores, args.gt, args.far_threshold) == ("s.h5", "g.h5", 0.5)


@pytest.mark.parametrize("text, message", [
    ('[evaluate]\nfar_treshold = 1\n', r"unknown key 'far_treshold' for 'lanp evaluate'; allowed keys: .*far-threshold"),
    ('[evaluate]\nfar-threshold = "high"\n', r"key 'far-threshold' = 'high' is invalid: float expected"),
    ('[evaluate]\ndataset = "ucf"\n', r"key 'dataset' = 'ucf' is invalid: choose one of auto, ucf-crime"),
    ('[evaluate]\njson = "yes"\n', r"key 'json' = 'yes' is invalid: it is a flag, give true or false"),
    ('[evaluate]\nmax-mismatch = 2.5\n', r"key 'max-mismatch' = 2.5 is invalid: int expected"),
    ('[evaluate]\nexport-gt = ["rtfm"]\n', r"key 'export-gt' .* takes exactly 2 values"),
    ('[evaluat]\njson = true\n', r"table \[evaluat\] is not a lanp command; .*evaluate"),
    ('[evaluate]\nconfig = "other.toml"\n', r"unknown key 'config'"),
    ('[evaluate]\nfar-threshold = 0.1\nfar_threshold = 0.2\n', r"sets 'far-threshold' a second time"),
    ('[evaluate\n', r"is not valid TOML"),
])
def test_bad_config_files_get_clear_errors(tmp_path, capsys, text, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        resolve("evaluate", ["--config", str(cfg), "--scores", "s.h5", "--gt", "g.h5"])
    assert "bad.toml" in str(info.value)
    assert main(["evaluate", "--config", str(cfg), "--scores", "s.h5", "--gt", "g.h5"]) == 2
    assert capsys.readouterr().err.startswith("error: config file")
    assert main(["evaluate", "--config", str(tmp_path / "missing.toml"), "--scores", "s", "--gt", "g"]) == 2
    err = capsys.readouterr().err
    assert "missing.toml" in err and "does not exist" in err


@pytest.mark.parametrize("name", ["ucf-crime.toml", "shanghaitech.toml"])
def test_example_configs_resolve_for_each_of_their_commands(name):
    import tomllib

    path = CONFIGS / name
    tables = tomllib.loads(path.read_text())
    assert {"propagate", "train", "score", "evaluate"} <= set(tables)
    dataset = {"ucf-crime.toml": ("official-ucf", "ucf-crime"), "shanghaitech.toml": ("official-sht", "shanghaitech")}
    for command in tables:
        args, resolved = resolve(command, ["--config", str(path), *required_argv(command)])
        for key, value in tables[command].items():
            assert resolved["options"][key] == value, (name, command, key)
    args, _ = resolve("propagate", ["--config", str(path), "--features", "f.h5"])
    assert args.preset == dataset[name][0]
    args, _ = resolve("evaluate", ["--config", str(path), "--scores", "s", "--gt", "g"])
    assert args.dataset == dataset[name][1]


def test_resolved_config_is_stored_in_outputs(tmp_path, capsys):
    rng = np.random.default_rng(7)
    for k in range(3):
        np.save(tmp_path / f"v{k}.npy", rng.normal(size=(4 + k, 6)).astype(np.float32))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[convert]\nsource = "{tmp_path.as_posix()}"\ndtype = "float64"\n')
    out = tmp_path / "out" / "feats.h5"
    assert main(["convert", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    with h5py.File(out, "r") as f:
        stored = config_file.read_stored(dict(f.attrs))
        assert f["features"].dtype == np.float64
    assert stored["command"] == "convert" and stored["config_file"] == str(cfg)
    assert stored["options"]["dtype"] == "float64" and stored["options"]["out"] == str(out)
    assert stored["options"]["source"] == tmp_path.as_posix()
    assert json.loads(json.dumps(stored)) == stored


def test_current_config_is_set_while_a_command_runs_only(tmp_path, capsys, monkeypatch):
    seen = {}
    import lanp.commands.synth as synth

    monkeypatch.setattr(synth, "run", lambda args: seen.setdefault("config", config_file.current_config()) and 0)
    cfg = tmp_path / "s.toml"
    cfg.write_text("[synth]\nvideos = 7\n")
    assert main(["synth", "--config", str(cfg), "--out", str(tmp_path / "x.h5")]) == 0
    assert seen["config"]["options"]["videos"] == 7 and seen["config"]["command"] == "synth"
    assert config_file.current_config() is None and config_file.output_attrs() == {}
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["synth", "--config", str(cfg), "--help"])
    assert info.value.code == 0 and "--print-config" in capsys.readouterr().out


def test_labels_and_checkpoints_store_the_resolved_config(tmp_path):
    """lanp-propagate's labels file and lanp train's checkpoint carry the resolved configuration:
    the config file's value where the command line is silent, the command line's where it is not."""
    import json

    import h5py
    import torch

    from lanp.cli import main
    from lanp.data.synth import make_synthetic, write_synthetic

    write_synthetic(make_synthetic(num_videos=6, dim=8, min_length=8, max_length=20, seed=2), tmp_path / "f.h5")
    cfg = tmp_path / "c.toml"
    cfg.write_text("sigma = 0.2\nalpha = 0.9\n")
    assert main(["propagate", "--config", str(cfg), "--features", str(tmp_path / "f.h5"), "--alpha", "0.8",
                 "--out", str(tmp_path / "l.h5"), "--quiet"]) == 0
    with h5py.File(tmp_path / "l.h5", "r") as f:
        stored = json.loads(f.attrs["lanp_config"])
        assert f.attrs["sigma"] == 0.2 and f.attrs["alpha"] == 0.8
    assert stored["command"] == "propagate"
    assert stored["options"]["sigma"] == 0.2 and stored["options"]["alpha"] == 0.8
    assert main(["train", "--features", str(tmp_path / "f.h5"), "--labels", str(tmp_path / "l.h5"),
                 "--out", str(tmp_path / "m.pt"), "--epochs", "1", "--quiet"]) == 0
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)
    assert ckpt["lanp_config"]["command"] == "train" and ckpt["lanp_config"]["options"]["epochs"] == 1
