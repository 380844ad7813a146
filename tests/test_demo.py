"""`automind demo --model brunel --quick`: the amortised walk-through end to end at toy sizes,
as CI runs it (the default MK1 demo: tests/test_demo_mk1.py)."""

import json
import re

import numpy as np
import pytest

from automind.cli import main
from automind.cli.demo import print_brunel_summary
from automind.recordings import read_recording


def test_quick_demo_reports_a_consistent_set(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--model", "brunel", "--quick", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 < summary["yield"] <= 1
    assert summary["n_accepted"] == round(summary["yield"] * summary["n_simulated"])
    assert np.isfinite(summary["coverage_max_abs_error"]) and 0 <= summary["coverage_max_abs_error"] <= 1
    assert summary["contraction"]["g"] > 1 and summary["contraction"]["nu_ext"] > 1  # learned
    assert 1 <= summary["participation_ratio"] <= 2 and 0 <= summary["local_global_angle_deg"] <= 90

    # the recording was written as NWB and is readable as any user's recording
    recording = read_recording(out / "recording.nwb")
    assert set(recording.groups) == {"E", "I"} and recording.n_spikes > 1000

    # the consistent set contains the truth's neighbourhood: the accepted θ lie near (5, 2)
    rows = np.atleast_2d(np.genfromtxt(out / "samples" / "consistent_set.csv", delimiter=",",
                                       skip_header=1))
    assert len(rows) == summary["n_accepted"]
    assert abs(np.median(rows[:, 1]) - 5.0) < 1.0 and abs(np.median(rows[:, 2]) - 2.0) < 0.5

    page = out / "report" / "index.html"
    assert summary["report"] == str(page)
    html = page.read_text()
    images = re.findall(r"src='(figures/[^']+)'", html)
    assert {"figures/target_vs_accepted.png", "figures/consistent_set_pairplot.png",
            "figures/coverage.png", "figures/training_curve.png",
            "figures/geometry_directions.png"} <= set(images)
    assert all((page.parent / image).stat().st_size > 5000 for image in images)
    assert html.count("<tr>") >= summary["n_accepted"] + 1  # the consistent-set table

    print_brunel_summary(summary)  # what the command prints without --json
    assert f"yield {summary['yield']:.2f} ({summary['n_accepted']} of" in capsys.readouterr().out


@pytest.mark.parametrize("model", ["mk1", "brunel"])
def test_demo_refuses_a_folder_with_content(tmp_path, capsys, model):
    (tmp_path / "keep.txt").write_text("precious")
    assert main(["demo", "--model", model, "--quick", "--out", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "precious"
