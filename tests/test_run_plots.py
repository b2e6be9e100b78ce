"""runs/dvc.yaml (palbench/config/plots.py): `palbench protocol` declares, for `dvc plots`, every run's DVCLive
curves and confusion matrix, for every protocol. The smoke pipeline renders them (tests/test_pipeline.py)."""

import pytest
import yaml

from palbench.cli import main
from palbench.config import available_protocols, read_params, run_configs, run_names
from palbench.config.plots import CONFUSION_FILE, CURVES


@pytest.mark.parametrize("protocol", available_protocols())
def test_protocol_declares_the_plots_of_every_run(tmp_path, protocol, capsys):
    assert main(["protocol", protocol, "--params", str(tmp_path / "params.yaml")]) == 0
    assert str(tmp_path / "runs" / "dvc.yaml") in capsys.readouterr().out
    params = read_params(tmp_path / "params.yaml")
    plots = yaml.safe_load((tmp_path / "runs" / "dvc.yaml").read_text())
    assert list(plots) == ["plots"]  # plots only: the stages stay in the project's dvc.yaml
    ids = [next(iter(p)) for p in plots["plots"]]
    assert ids == [f"{group}/{config}/{kind}" for config, group in run_configs(params).items()
                   for kind in (*CURVES, "confusion")]
    split = params["evaluate"]["split"]
    files = {}
    for plot in plots["plots"]:
        (plot_id, props), = plot.items()
        files.update(props["y"])
        if plot_id.endswith("/confusion"):
            assert props["template"] == "confusion" and props["x"] == "label"
        else:
            assert props["x"] == "step" and set(props["y"].values()) == {plot_id.rsplit("/", 1)[1]}
    runs = run_names(params)  # paths relative to runs/, each seed of each configuration
    assert set(files) == ({f"{r}/dvclive/plots/metrics/{c}.tsv" for r in runs for c in CURVES}
                          | {f"{r}/{split}/{CONFUSION_FILE}" for r in runs})
    assert len(files) == len(runs) * (len(CURVES) + 1)


def test_refresh_rewrites_the_plots_with_the_runs(tmp_path):
    params = tmp_path / "params.yaml"
    assert main(["protocol", "smoke", "--params", str(params)]) == 0
    text = params.read_text().replace("seeds: [0]", "seeds: [0, 1]")
    assert text != params.read_text()
    params.write_text(text)
    assert main(["protocol", "--refresh", "--params", str(params)]) == 0
    plots = (tmp_path / "runs" / "dvc.yaml").read_text()
    assert "baseline/base/s1/dvclive/plots/metrics/val_accuracy.tsv" in plots
