"""`alops demo` (what `make demo` runs): the whole flow on the digits example, end to end."""

from __future__ import annotations

import json
import re

from conftest import run_alops


def test_demo_runs_the_whole_flow_and_says_where_things_are(tmp_path):
    folder = tmp_path / "demo"
    result = run_alops("demo", "--keep", str(folder), cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    for step in ("scaffold", "feature/first-model", "experiment/baseline", "experiment/more-epochs",
                 "al/round-1 round 3", "al/random round 3", "release/1.0"):
        assert step in output
    assert re.search(r"demo finished in \d+ s", output)
    curves = re.findall(r"active learning, (\w+) *: (.*)", output)
    assert [name for name, _ in curves] == ["margin", "random"]
    margin = [int(n) for n in re.findall(r"(\d+) labels", curves[0][1])]
    assert margin == sorted(margin) and margin[-1] - margin[0] == 3 * 60  # three rounds of 60 labels
    assert (folder / "al-report/learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "random (simulation)" not in output  # the baseline is the al/random branch, measured in the same run
    record = json.loads((folder / "release.json").read_text())
    assert record["version"] == "1" and record["gate"].startswith("first release")
    assert (folder / "digits_al/mlflow.db").exists()
    report = (folder / "experiment-report.md").read_text()
    assert "| `train.epochs` | `25` | `15` |" in report
    table = report[report.index("| metric |"):].splitlines()
    assert table[2].startswith("| `val_accuracy` |")  # the primary metric of alops.yaml is the first row
    main_table = table[:table.index("")]
    assert not any("dev_rows" in row or "max_abs_deviation_pp" in row for row in main_table)  # fidelity collapsed
    assert "<details><summary>Dev dataset fidelity" in report
    assert "| dataset | full | full |" in report  # both sides trained on the full data
    al_report = (folder / "al-report/report.md").read_text()
    assert "Strategy: `margin`." in al_report and "| round | labeled | labels added |" in al_report
    assert "**`val_accuracy`:" in report
