"""Every command's --help prints its usage and exits 0 (argparse formats help strings with %, so a
stray percent sign in an option's help, e.g. "the 10 % quantile", crashed `lanp propagate --help`)."""
import pytest

from lanp.cli import COMMANDS, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_prints_usage_and_exits_0(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out and "--help" in out
