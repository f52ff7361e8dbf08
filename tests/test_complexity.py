"""Complexity counting (audiobench.complexity) against the published numbers on the model cards.

Published params/MACs are read from the cards (which read ``leaderboards/published.yaml``) or from
the shared reference files, never typed in here. Big models are built on the meta device: the counter
gives the same params/MACs there (checked against CPU below) without allocating or initialising weights.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from audiobench import load_model
from audiobench.complexity import COUNTER, count_macs, measure_complexity

PARAMS_TOLERANCE = 0.005  # relative, vs the published params
MACS_TOLERANCE = 0.03  # relative, vs the published MACs
REGRESSION_MODELS = ["mn04", "mn05", "mn10", "mn20", "mn30", "mn40", "dymn04", "dymn10", "dymn20"]


def meta_model(name: str):
    with torch.device("meta"):
        return load_model(name)


@pytest.fixture(scope="module")
def records() -> dict[str, dict]:
    """Complexity records (no latency) of the regression models, counted on the meta device."""
    return {name: measure_complexity(meta_model(name), measure_latency=False) for name in REGRESSION_MODELS}


def card_complexity(name: str):
    """The first AudioSet mAP number on the model card that carries params and MACs."""
    model = meta_model(name)
    for number in model.card.published:
        if number.task == "audioset" and number.metric == "mAP" and number.params_M and number.macs_G:
            return number
    pytest.fail(f"the card of {name} has no published AudioSet params/MACs")


@pytest.mark.parametrize("name", REGRESSION_MODELS)
def test_params_and_macs_match_published(records: dict[str, dict], name: str) -> None:
    record, published = records[name], card_complexity(name)
    assert record["input"]["shape"] == [1, 1, 128, 1000]  # 10 s at 32 kHz, hop 320
    params_m, macs_g = record["params"]["total"] / 1e6, record["macs"]["total"] / 1e9
    assert abs(params_m - published.params_M) / published.params_M <= PARAMS_TOLERANCE, (params_m, published)
    assert abs(macs_g - published.macs_G) / published.macs_G <= MACS_TOLERANCE, (macs_g, published)
    assert record["published"]["record_id"] == published.record_id
    assert record["published"]["params_rel_diff"] == pytest.approx((params_m - published.params_M) / published.params_M)


@pytest.mark.parametrize("name", REGRESSION_MODELS)
def test_params_equal_reference_implementation(records: dict[str, dict], name: str, shared_dir: Path) -> None:
    """Exact counts of the original EfficientAT code (DyMN: 0.2-0.5 % below the README, protocols.md conflict 4)."""
    reference = json.loads((shared_dir / "fixtures/efficientat/architectures.json").read_text())[name]
    assert records[name]["params"]["total"] == reference["params"]


def test_dymn_dynamic_convolutions_are_counted(records: dict[str, dict]) -> None:
    """DyMN's dynamic convs are functional mm/bmm/conv2d calls: an op-level count sees them."""
    ops = records["dymn10"]["macs"]["by_operator"]
    assert ops["bmm"] > ops["convolution"] > 0  # 1x1 dynamic convs run as batched matmuls


def test_passt_s_matches_reference_counts(shared_dir: Path) -> None:
    """PaSST-S: the card's AudioSet record has no params/MACs, so compare with the reference files:
    the exact parameter count of the public implementation and the op-level MACs in shared/README.md."""
    model = meta_model("passt-s")
    record = measure_complexity(model, measure_latency=False)
    reference = json.loads((shared_dir / "fixtures/passt/architectures.json").read_text())
    (arch,) = reference.values()
    readme = (shared_dir / "README.md").read_text()
    macs_g = float(re.search(r"op-level counter gives ([0-9.]+) GMACs for a `\[1,1,128,998\]`", readme).group(1))
    published = [n for n in model.card.published if n.params_M is not None or n.macs_G is not None]
    assert record["published"] is None and not published  # nothing to compare on the card itself
    assert record["params"]["total"] == arch["params"]
    assert abs(record["macs"]["total"] / 1e9 - macs_g) / macs_g <= MACS_TOLERANCE
    # 1000 frames give the same 12 x 99 patch grid as the 998 frames of the reference input
    assert record["input"]["shape"] == [1, 1, 128, 1000]
    assert set(record["macs"]["by_module"]) >= {"patch_embed", "blocks"}


def test_meta_device_counts_equal_cpu_counts() -> None:
    cpu = measure_complexity(load_model("mn04"), measure_latency=False)
    meta = measure_complexity(meta_model("mn04"), measure_latency=False)
    assert cpu["params"] == meta["params"]
    assert cpu["macs"]["total"] == meta["macs"]["total"]
    assert cpu["macs"]["by_operator"] == meta["macs"]["by_operator"]
    assert meta["peak_activation_memory"]["bytes"] == pytest.approx(cpu["peak_activation_memory"]["bytes"], rel=1e-3)


def _conv_macs_by_formula(network: nn.Module, mel: torch.Tensor) -> int:
    """Independent check: k_h * k_w * C_in/groups * C_out * H_out * W_out per nn.Conv2d (no bias here)."""
    total = 0

    def hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += kh * kw * (module.in_channels // module.groups) * output.numel()

    handles = [m.register_forward_hook(hook) for m in network.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        network(mel)
    for handle in handles:
        handle.remove()
    return total


def test_cpmobile_one_second(shared_dir: Path) -> None:
    model = load_model("cpmobile")
    record = measure_complexity(model, seconds=1.0, latency_runs=2, threads=1)
    expected_mel = torch.load(shared_dir / "fixtures/cpmobile/cpmobile_io.pt", weights_only=True)["mel"]
    reference = json.loads((shared_dir / "fixtures/cpmobile/architecture.json").read_text())
    # the real DC23 front-end makes 64 frames of a 1 s clip (pre-emphasis drops one sample)
    assert record["input"]["shape"] == [1, 1, expected_mel.shape[1], expected_mel.shape[2]]
    assert record["input"]["seconds"] == 1.0 and record["input"]["frontend_counted"] is False
    assert record["params"]["total"] == reference["params"] == record["params_trainable"]
    macs = record["macs"]["total"]
    assert macs == _conv_macs_by_formula(model.network, torch.zeros(record["input"]["shape"]))
    budget = record["budget"]
    assert budget["params_within"] == (reference["params"] <= budget["max_params"])
    assert budget["macs_within"] == (macs <= budget["max_macs_per_second"])
    assert budget["macs_per_second"] == macs
    latency = record["latency"]
    assert latency["threads"] == 1 and latency["runs"] == 2 and latency["cpu"]
    for key in ("network", "frontend_plus_network"):
        assert 0 < latency[key]["median_ms"] <= latency[key]["p90_ms"]
        assert latency[key]["real_time_factor"] == pytest.approx(latency[key]["median_ms"] / 1000.0)


def test_default_clip_is_the_segment_length() -> None:
    record = measure_complexity(meta_model("cpmobile"), measure_latency=False)
    assert record["input"]["seconds"] == 1.0


def test_record_is_json_and_names_counter_and_input() -> None:
    record = json.loads(json.dumps(measure_complexity(meta_model("mn04"), seconds=2.0, measure_latency=False)))
    assert record["macs"]["counter"] == COUNTER == "torch.utils.flop_counter.FlopCounterMode"
    assert record["macs"]["counter_version"] == torch.__version__
    assert record["input"] == {**record["input"], "seconds": 2.0, "sample_rate": 32000, "num_samples": 64000,
                               "shape": [1, 1, 128, 200], "batch": 1, "frontend_counted": False}
    assert "TorchDispatchMode" in record["peak_activation_memory"]["method"]
    assert record["latency"] is None


def test_thread_setting_is_restored() -> None:
    before = torch.get_num_threads()
    measure_complexity(load_model("cpmobile"), latency_runs=1, threads=1)
    assert torch.get_num_threads() == before


def test_model_without_network() -> None:
    record = measure_complexity(load_model("logmel-stats"), latency_runs=1)
    assert record["params"]["total"] == 0 and record["macs"]["total"] == 0
    assert record["input"]["shape"] == [1, 1, 128, 1000]
    assert record["latency"]["network"] is None and record["latency"]["frontend_plus_network"]["median_ms"] > 0
    assert any("no neural network" in note for note in record["notes"])


def test_cpu_fused_attention_is_counted() -> None:
    """FlopCounterMode's registry lacks the CPU fused SDPA kernel; the module adds it."""

    class Attention(nn.Module):
        def forward(self, q: torch.Tensor) -> torch.Tensor:
            return nn.functional.scaled_dot_product_attention(q, q, q)

    b, h, n, d = 1, 2, 50, 16
    assert count_macs(Attention(), torch.randn(b, h, n, d))["total"] == 2 * b * h * n * n * d


def test_cli_json() -> None:
    from audiobench.cli import app

    result = CliRunner().invoke(app, ["complexity", "--model", "mn10", "--json", "--no-latency"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["model"] == "mn10" and record["latency"] is None
    assert record["input"]["shape"] == [1, 1, 128, 1000]
    assert record["params"]["total"] == sum(p.numel() for p in meta_model("mn10").network.parameters())


def test_run_reuses_the_counted_complexity(monkeypatch) -> None:
    import audiobench.complexity as complexity

    calls = []
    real = complexity.measure_complexity
    monkeypatch.setattr(complexity, "measure_complexity", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = complexity.cached_complexity(load_model("mn04"))
    second = complexity.cached_complexity(load_model("mn04"))
    assert len(calls) == 1 and first == second and first["params"]["total"] == second["params"]["total"] > 0


# --------------------------------------------------------------------------- latency budget, device, progress


def test_latency_is_capped_by_its_time_budget() -> None:
    model = load_model("cpmobile")
    slow = measure_complexity(model, latency_runs=100_000, latency_budget_s=0.5)["latency"]
    assert 3 <= slow["runs"] < 100_000 and slow["requested_runs"] == 100_000 and slow["budget_s"] == 0.5
    for key in ("network", "frontend_plus_network"):
        assert 3 <= slow[key]["runs"] < 100_000 and slow[key]["warmup_runs"] >= 1
    at_least = measure_complexity(model, latency_runs=10, latency_budget_s=0.0)["latency"]
    assert at_least["runs"] == 3 and at_least["network"]["runs"] == 3  # the minimum, however small the budget
    at_most = measure_complexity(model, latency_runs=2, latency_budget_s=60.0)["latency"]
    assert at_most["runs"] == 2  # --runs is the maximum


def test_stages_are_reported_and_device_recorded() -> None:
    stages: list[str] = []
    record = measure_complexity(load_model("cpmobile"), latency_runs=3, stage=stages.append)
    assert record["device"] == "cpu" and record["latency"]["device"] == "cpu"
    for expected in ("counting MACs", "measuring peak activation memory", "latency (network): run 3/3",
                     "latency (frontend + network): run 3/3"):
        assert expected in stages, stages
    assert stages.index("counting MACs") < stages.index("measuring peak activation memory") < stages.index(
        "latency (network): run 1/3")
    assert measure_complexity(meta_model("mn04"), measure_latency=False)["device"] == "meta"


def test_cli_latency_budget_and_device() -> None:
    from audiobench.cli import app

    result = CliRunner().invoke(app, ["complexity", "--model", "cpmobile", "--device", "cpu", "--runs", "4",
                                      "--latency-budget", "1", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["device"] == "cpu" and record["latency"]["device"] == "cpu"
    assert record["latency"]["budget_s"] == 1.0 and 3 <= record["latency"]["runs"] <= 4
    table = CliRunner().invoke(app, ["complexity", "--model", "cpmobile", "--runs", "3"])
    assert table.exit_code == 0, table.output
    assert "median of 3 runs (at most 3, budget 10 s)" in table.stdout
    bad = CliRunner().invoke(app, ["complexity", "--model", "cpmobile", "--device", "tpu"])
    assert bad.exit_code == 2 and "Unknown device 'tpu'" in bad.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cli_cuda_without_gpu_is_explained() -> None:
    from audiobench.cli import app

    result = CliRunner().invoke(app, ["complexity", "--model", "cpmobile", "--device", "cuda"])
    assert result.exit_code == 2 and "no CUDA GPU" in result.output and "Traceback" not in result.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_latency_on_cuda_is_synchronised_and_recorded() -> None:
    model = load_model("mn04").to("cuda")
    record = measure_complexity(model, latency_runs=5, latency_budget_s=5.0)
    latency = record["latency"]
    assert record["device"] == "cuda" and latency["device"] == "cuda" and latency["gpu"]
    assert 3 <= latency["runs"] <= 5 and latency["network"]["median_ms"] > 0
