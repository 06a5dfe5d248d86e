"""The README's quick-start commands run as shown (each takes seconds): the ``sh`` block of its
"Quick start" section, line by line, in the repository with ``.venv/bin`` on the ``PATH``."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def quick_start_commands():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Quick start"):]
    section = section[:section.index("\n## ", 1)]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_quick_start_commands_run_as_shown():
    commands = quick_start_commands()
    assert len(commands) >= 5 and commands[0].startswith("densehw generate"), commands
    shutil.rmtree(ROOT / "build" / "readme", ignore_errors=True)
    env = dict(os.environ)
    env["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for command in commands:
        proc = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert (ROOT / "build" / "readme" / "gen" / "densehw_array.v").is_file()
    assert (ROOT / "build" / "readme" / "y.npy").is_file()
    assert "accuracy" in proc.stdout
