"""One configuration loader for every command (``densehw.cli.load_config`` over
``contract.array.load_array_config``): TOML and JSON, ``default``, the board defaults in
``configs/``, and one-line errors."""

from __future__ import annotations

import json

import pytest

from boards import specs
from boards.devices import DEVICES
from contract.array import ArrayConfig, load_array_config, read_config_file
from densehw.cli import CONFIGS, UserError, load_config, main


def test_toml_and_json_give_the_same_config(tmp_path):
    cfg = ArrayConfig(rows=2, cols=4, depth=64, wbits=4)
    (tmp_path / "c.json").write_text(json.dumps(cfg.to_dict()))
    (tmp_path / "c.toml").write_text("rows = 2\ncols = 4\ndepth = 64\nwbits = 4\n")
    assert load_config(tmp_path / "c.json") == cfg == load_config(tmp_path / "c.toml")
    assert load_config("default") == ArrayConfig()


def test_board_defaults_are_files_and_named_configs():
    for board, devices in DEVICES.items():
        for device in devices:
            spec = specs.default_spec(board, device)
            cfg = load_config(f"{board}_{device}")
            assert cfg == ArrayConfig.from_dict(spec["config"])
    # the UP5K default is the largest array that places there with its counters: 2x3
    up5k = load_config("ice40_up5k")
    assert (up5k.rows, up5k.cols) == (2, 3)
    for path in CONFIGS.glob("*.toml"):
        load_array_config(path)


@pytest.mark.parametrize("command", ["compile", "generate"])
def test_every_command_reads_toml_and_json(command, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("rows = 4\ncolumns = 4\n")
    args = {"compile": ["compile", str(tmp_path / "m.dshw"), "-o", str(tmp_path / "p")],
            "generate": ["generate", "-o", str(tmp_path / "g")]}[command]
    assert main(args + ["--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'columns'" in err and "Traceback" not in err
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"rows": 0}')
    assert main(args + ["--config", str(bad_json)]) == 2
    assert "rows must be in" in capsys.readouterr().err
    assert main(args + ["--config", "no_such_board"]) == 2
    assert "ecp5_25f" in capsys.readouterr().err


def test_read_config_file_errors(tmp_path):
    with pytest.raises(ValueError, match=r"must end in \.toml or \.json"):
        read_config_file(tmp_path / "c.yaml")
    with pytest.raises(ValueError, match="does not exist"):
        read_config_file(tmp_path / "c.toml")
    (tmp_path / "c.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        read_config_file(tmp_path / "c.json")
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "none.json")


def test_sim_reads_toml_and_json_dot_configs(tmp_path, capsys):
    """``densehw sim --config`` (a DotConfig) takes TOML or JSON too; a bad one is one line."""
    for name, text in (("d.toml", "bogus = 1\n"), ("d.json", '{"bogus": 1}')):
        (tmp_path / name).write_text(text)
        assert main(["sim", "--config", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert "unknown configuration keys: bogus" in err and err.count("\n") == 1, err
    assert main(["sim", "--config", str(tmp_path / "none.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
