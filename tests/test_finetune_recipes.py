"""Fine-tuning recipes: every published recipe resolves, defaults per (family, task), overrides, clear errors."""

from __future__ import annotations

import pytest

from audiobench.finetune.recipes import (FIELDS, RecipeError, default_recipe, load_recipe_data, parse_recipe_options,
                                         recipe_files, resolve_recipe)

PUBLISHED = {"eat-audioset", "eat-esc50", "eat-fsd50k", "eat-openmic", "eat-dcase20", "passt-esc50", "passt-fsd50k",
             "passt-openmic", "dir-passt-tau22", "dcase23-cpmobile", "rcnn-esc50"}


def test_every_published_recipe_is_there_and_resolves():
    assert set(recipe_files()) == PUBLISHED
    for name in PUBLISHED:
        data = load_recipe_data(name)
        assert data["source"] and data["applies_to"]["families"] and data["applies_to"]["tasks"]
        for family in data["applies_to"]["families"]:
            resolved = resolve_recipe(name, family, data["applies_to"]["tasks"][0])
            assert set(resolved.values) == set(FIELDS) and resolved.task_in_recipe
            assert resolved.describe()["source"] == data["source"]


@pytest.mark.parametrize("family, task, expected", [
    ("efficientat-mn", "esc50", "eat-esc50"), ("efficientat-dymn", "fsd50k", "eat-fsd50k"),
    ("passt", "esc50", "passt-esc50"), ("passt", "tau22", "dir-passt-tau22"), ("cp-mobile", "tau22", "dcase23-cpmobile"),
    ("efficientat-mn", "audioset", "eat-audioset"), ("passt", "openmic", "passt-openmic"),
])
def test_default_recipe_per_family_and_task(family, task, expected):
    assert default_recipe(family, task) == expected


def test_published_values_and_family_override():
    mn = resolve_recipe("eat-esc50", "efficientat-mn", "esc50")
    assert (mn["lr"], mn["batch_size"], mn["epochs"], mn["optimizer"]) == (6e-5, 128, 80, "adam")
    assert (mn["warm_up_len"], mn["ramp_down_start"], mn["ramp_down_len"], mn["last_lr_value"]) == (10, 10, 65, 0.01)
    assert mn["augment"] == ["gain", "roll", "wavmix", "mixup"] and mn.family_override == {}
    dymn = resolve_recipe("eat-esc50", "efficientat-dymn", "esc50")
    assert (dymn["lr"], dymn["batch_size"]) == (4e-5, 64) and dymn.family_override == {"lr": 4e-5, "batch_size": 64}
    cp = resolve_recipe(None, "cp-mobile", "tau22")
    assert (cp["kd_kind"], cp["kd_temperature"], cp["kd_weight"], cp["mixstyle_alpha"]) == ("dcase23", 2.0, 0.02, 0.3)
    assert resolve_recipe("passt-esc50", "passt", "esc50")["patchout_f"] == 3


def test_overrides_are_checked_and_recorded():
    options = parse_recipe_options(["lr=1e-4", "augment=[roll, mixup]", "init=random", "eval_batch_size=null"])
    resolved = resolve_recipe("eat-esc50", "efficientat-mn", "synthetic", options, epochs=2)
    assert resolved["lr"] == 1e-4 and isinstance(resolved["lr"], float)  # YAML reads "1e-4" as a string
    assert resolved["augment"] == ["roll", "mixup"] and resolved["epochs"] == 2 and resolved["init"] == "random"
    assert resolved.overrides == {"lr": 1e-4, "augment": ["roll", "mixup"], "init": "random",
                                  "eval_batch_size": None, "epochs": 2}
    assert resolved.task_in_recipe is False
    assert resolve_recipe("eat-esc50", "efficientat-mn", "esc50", {"lr": 3})["lr"] == 3.0


@pytest.mark.parametrize("options, words", [
    ({"learning_rate": 1e-3}, "unknown field 'learning_rate'"),
    ({"name": "other"}, "unknown field 'name'"),
    ({"lr": -1.0}, "lr=-1.0"),
    ({"lr": "fast"}, "lr='fast'"),
    ({"optimizer": "sgd"}, "optimizer='sgd'"),
    ({"epochs": 1.5}, "epochs=1.5"),
    ({"epochs": True}, "epochs=True"),
    ({"augment": ["mixup", "roll"]}, "waveform step after a spectrogram step"),
    ({"augment": ["roll", "warp"]}, "unknown or repeated"),
])
def test_bad_overrides_fail_clearly(options, words):
    with pytest.raises(RecipeError) as caught:
        resolve_recipe("eat-esc50", "efficientat-mn", "esc50", options)
    assert words in str(caught.value) and caught.value.hint


def test_unknown_or_inapplicable_recipe():
    with pytest.raises(RecipeError, match="Unknown fine-tuning recipe 'nope'") as caught:
        resolve_recipe("nope", "efficientat-mn", "esc50")
    assert "eat-esc50" in caught.value.hint
    with pytest.raises(RecipeError, match="written for model families") as caught:
        resolve_recipe("eat-esc50", "cp-mobile", "tau22")
    assert "dcase23-cpmobile" in caught.value.hint
    with pytest.raises(RecipeError, match="No published fine-tuning recipe") as caught:
        default_recipe("efficientat-mn", "synthetic")
    assert "eat-esc50" in caught.value.hint


def test_recipe_option_syntax():
    assert parse_recipe_options(["teacher=[mn04@a.pt]", "amp=false", "clip_seconds=1"]) == {
        "teacher": ["mn04@a.pt"], "amp": False, "clip_seconds": 1}
    with pytest.raises(RecipeError, match="KEY=VALUE"):
        parse_recipe_options(["lr"])
