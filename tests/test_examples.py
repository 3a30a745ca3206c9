"""The examples run as written, each in its own process.

So they cannot go stale, and what they register never leaks into the other tests' registry.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_custom_task_example_trains_and_embeds() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(EXAMPLES / "custom_task.py")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    loss = re.search(r"slice_order: 20 steps, final loss ([0-9.]+);", done.stdout)
    assert loss is not None and float(loss.group(1)) < 10, done.stdout
    assert "embedding of one clip: (128,)" in done.stdout
