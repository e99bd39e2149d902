"""benchmarks/encoder/ablation.py runs end to end (tiny budgets, fake IDX data) and scores only a held-out train slice."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_datasets import write_fake_split


def test_ablation_smoke_run_writes_its_table(tmp_path: Path) -> None:
    from benchmarks.encoder import ablation

    write_fake_split(tmp_path, "train", 600)  # no t10k files: the test split is never read
    out, report = tmp_path / "abl.md", tmp_path / "abl.json"
    assert ablation.main(["--quick", "--data-root", str(tmp_path), "--out", str(out), "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    names = [row["encoder"] for row in result["rows"]]
    assert names[0] == "paper-cn" and len(names) == 6 and "multi-depth + 1 iteration" in names
    assert result["holdout"].startswith("Fashion-MNIST train[536:]")
    assert "python -m benchmarks.encoder.ablation --quick" in out.read_text()
    assert all(0 < row["ssim"] <= 1 and row["psnr"] > 0 for row in result["rows"])
