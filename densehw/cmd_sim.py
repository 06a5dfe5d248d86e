"""``densehw sim``: co-simulate the generated RTL against the golden model (cocotb).

The same regression as ``make sim`` / ``python -m sim.run``; ``--config FILE`` runs the standard
tests on one configuration given as a DotConfig TOML or JSON file instead.
"""

from __future__ import annotations

HELP = "co-simulate the generated Verilog against the golden model (Verilator or Icarus)"


def add_arguments(parser) -> None:
    parser.add_argument("--sim", choices=("verilator", "icarus"), default="verilator",
                        help="simulator (default verilator)")
    parser.add_argument("--waves", action="store_true",
                        help="dump FST waveforms (paths are printed at the end)")
    parser.add_argument("--quick", action="store_true", help="a short smoke regression")
    parser.add_argument("--seed", type=int, default=1, help="base seed (default 1)")
    parser.add_argument("--jobs", type=int, default=2, metavar="N",
                        help="configurations simulated at a time (default 2)")
    parser.add_argument("--config", metavar="CFG.toml|CFG.json",
                        help="simulate this DotConfig (a TOML or JSON file with the keys of "
                             "DotConfig.to_dict) instead of the standard set")


def run(args) -> int:
    from sim import run as sim_run

    if args.config is not None:
        args.config = sim_run.load_config(args.config)
    return sim_run.run(args)
