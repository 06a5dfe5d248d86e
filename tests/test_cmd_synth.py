# amaranth: UnusedElaboratable=no
"""``densehw synth``'s argument errors."""



from boards import specs


def test_cli_synth_errors(tmp_path, capsys):
    from densehw.cli import main

    bad = tmp_path / "cfg.json"
    bad.write_text('{"rows": 0}')
    assert main(["synth", "--board", "asic", "--config", str(bad)]) == 2
    assert "rows must be in [1, 64], not 0" in capsys.readouterr().err
    assert main(["synth", "--board", "asic", "--config", str(tmp_path / "none.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["synth", "--seeds", "a,b", "--board", "asic"]) == 2
    assert "--seeds must be" in capsys.readouterr().err
    assert main(["synth", "--jobs", "0", "--board", "asic"]) == 2
    assert "--jobs must be at least 1, not 0" in capsys.readouterr().err
    assert main(["synth", "--pnr-timeout", "0", "--board", "asic"]) == 2
    assert "--pnr-timeout must be a positive number of seconds, not 0" in capsys.readouterr().err
    spec = tmp_path / "spec.toml"
    spec.write_text('kind = "int8-mac"\nrows = 1\ncols = 1\n')
    assert specs.load_spec(spec) == {"kind": "int8-mac", "rows": 1, "cols": 1}
    arr = tmp_path / "arr.toml"
    arr.write_text("rows = 2\ncols = 2\n")
    assert specs.load_spec(arr) == {"kind": "array", "config": {"rows": 2, "cols": 2}}
