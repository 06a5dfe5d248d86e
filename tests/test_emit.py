# amaranth: UnusedElaboratable=no
"""How densehw writes Verilog (``hw.emit``): the same text whatever Yosys the environment names."""

import os

from synth_data import needs_yowasp  # noqa: E402  (tests/ helper)

from boards import tools


@needs_yowasp
def test_verilog_text_ignores_the_environments_yosys(monkeypatch):
    """The same configuration gives the same Verilog whatever Yosys the environment names
    (under make, $YOSYS is Yosys 0.70; Amaranth would otherwise write with it), and the
    environment's own choice is left as it was."""
    from contract.array import ArrayConfig
    from hw.array_top import generate_array_verilog

    cfg = ArrayConfig(rows=1, cols=1, depth=16)
    monkeypatch.delenv("YOSYS", raising=False)
    monkeypatch.delenv("AMARANTH_USE_YOSYS", raising=False)
    plain = generate_array_verilog(cfg)
    assert "AMARANTH_USE_YOSYS" not in os.environ
    monkeypatch.setenv("YOSYS", tools.tool("yosys"))
    monkeypatch.setenv("AMARANTH_USE_YOSYS", "system")
    assert generate_array_verilog(cfg) == plain
    assert os.environ["AMARANTH_USE_YOSYS"] == "system"
    # without the pin, that environment does change the text (so the check above can fail)
    from amaranth.back import verilog

    from hw.array_top import ArrayTop
    system = verilog.convert(ArrayTop(config=cfg), name="densehw_array", emit_src=False)
    assert system != plain
