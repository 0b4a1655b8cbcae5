"""Each benchmark runs at a tiny size and prints its last line; timings are never asserted here."""

import re
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.parametrize(
    "script, args, last_line",
    [
        ("train_throughput.py", ["--epochs", "1", "--rows", "640"], r"zoo/hand: \d+\.\d\d  notebook/zoo: \d+\.\d\d"),
        ("startup.py", ["--repeat", "1"], r"list/torch: \d+\.\d\d  load_ms: \d+"),
        ("attention.py", ["--iterations", "1", "--repeat", "1"], r"notebook/zoo: \d+\.\d\d"),
        ("precision.py", ["--epochs", "2", "--repeat", "1"],
         r"bf16/fp32 seconds per epoch: mnist-mlp \d+\.\d\d, transformer-encoder-reverse \d+\.\d\d"),
        ("scale.py", ["--small", "20", "--large", "200", "--repeat", "1"], r"list_s@200: \d+\.\d\d  200/20: \d+\.\d\d"),
        ("real_models.py", ["--repeat", "1", "--size", "32", "--images", "20", "--vit", "vit_tiny_patch16_224"],
         r"real_models: list \d+\.\d\ds, parity 5/5, finetune zoo/timm \d+\.\d\d, load/floor \d+\.\d\d"),
        ("data.py", ["--images", "32", "--rss-gb", "0.01", "--resume", "none"],
         r"data: pipeline zoo/hand \d+\.\d\d, zoo/webdataset \d+\.\d\d, rss \d+\.\d\d GB @0\.01GB, resume not run"),
    ],
)
def test_benchmark_runs_and_prints_its_last_line(script, args, last_line):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(last_line, result.stdout.strip().splitlines()[-1])
