# amaranth: UnusedElaboratable=no
"""The hardware benchmark's tables (``boards.bench``)."""






def test_bench_blocks_table():
    from boards.bench import blocks_table

    def result(rows, cols, pe_luts, error=None):
        n = rows * cols
        return {"spec": {"kind": "array", "config": {"rows": rows, "cols": cols}},
                "board": "ice40", "device": "up5k", "error": error, "breakdown": {
                    "unit": "luts", "total": n * pe_luts + 500, "error": None, "blocks": [
                        {"block": "core.pe", "instances": n, "luts": n * pe_luts},
                        {"block": "csr", "instances": 1, "luts": 500}]}}
    baseline = {"spec": {"kind": "fp-mac", "fmt": "fp16"}, "board": "ice40", "device": "up5k",
                "breakdown": {"unit": "luts", "total": 9, "blocks": [
                    {"block": "top", "instances": 1, "luts": 9}]}}
    text = blocks_table([result(4, 4, 150), baseline, result(2, 2, 147),
                         result(8, 8, 1, error="did not fit")])
    lines = text.splitlines()
    assert lines[0] == "### ice40 (up5k): LUTs per block, total (each)"
    assert "| block | 2x2 | 4x4 |" in lines                  # sizes in order, failures left out
    assert "| core.pe | 588 (147.0) | 2400 (150.0) |" in lines
    assert "| csr | 500 (500.0) | 500 (500.0) |" in lines
    assert "| sum of blocks | 1088 | 2900 |" in lines
    assert "top" not in text                                  # only the shift array
    assert blocks_table([baseline]) == ""
