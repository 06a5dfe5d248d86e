# amaranth: UnusedElaboratable=no
"""``densehw sweep``'s argument errors."""


import pytest


def test_cmd_sweep_argument_errors():
    import argparse

    from densehw import cmd_sweep
    from densehw.cli import UserError

    p = argparse.ArgumentParser()
    cmd_sweep.add_arguments(p)
    for argv, msg in ((["--shapes", "4by4"], "--shapes wants RxC"),
                      (["--devices", "xilinx"], "unknown board 'xilinx'"),
                      (["--devices", "ecp5:12f"], "unknown ecp5 device '12f'"),
                      (["--wbits", "x"], "--wbits must be comma-separated integers"),
                      (["--jobs", "0"], "--jobs must be at least 1"),
                      (["--pnr-timeout", "-5"], "--pnr-timeout must be a positive number")):
        with pytest.raises(UserError, match=msg):
            cmd_sweep.run(p.parse_args(argv))
    with pytest.raises(ValueError, match="6"):
        cmd_sweep.run(p.parse_args(["--wbits", "6"]))
