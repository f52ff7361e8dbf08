"""Fine-tuning recipes: published training setups stored as data (``recipes/*.yaml``), resolved for one run.

A recipe file holds metadata (``name``, ``source``, ``description``, ``applies_to`` with model families and
tasks, optional ``family_overrides``) and hyper-parameters (the fields of :data:`FIELDS`). Resolving a recipe
for a run applies, in this order: the defaults of :data:`FIELDS`, the file's values, the file's
``family_overrides`` for the model's family, then the user's overrides (``--recipe-option key=value`` and
``--epochs``). Every value is checked against its field; errors name the recipe, the field and the value.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audiobench.errors import AudiobenchError

RECIPE_DIR = Path(__file__).resolve().parent / "recipes"
META_KEYS = ("name", "source", "description", "applies_to", "family_overrides")

WAVEFORM_STEPS = ("gain", "roll", "wavmix", "dir")
SPECTROGRAM_STEPS = ("spec_mask", "mixup", "mixstyle")


class RecipeError(AudiobenchError):
    """A recipe that cannot be found, does not apply, or has a bad value."""


@dataclass(frozen=True)
class Field:
    """One hyper-parameter: its type, allowed values or range, whether null is allowed, and what it means."""

    kind: type
    default: Any
    help: str
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False


FIELDS: dict[str, Field] = {
    "init": Field(str, "pretrained", "start from the released weights or from a random initialisation",
                  ("pretrained", "random")),
    "epochs": Field(int, 1, "training epochs", minimum=1),
    "batch_size": Field(int, 32, "training clips per optimizer step", minimum=1),
    "eval_batch_size": Field(int, None, "clips per forward pass when scoring (null: batch_size)", minimum=1,
                             optional=True),
    "clip_seconds": Field(float, None, "training/test clip length (null: the task card's)", minimum=0.01,
                          optional=True),
    "sampler": Field(str, "shuffle", "order of training clips per epoch", ("shuffle", "class_balanced")),
    "samples_per_epoch": Field(int, None, "clips drawn per epoch (null: every training clip once)", minimum=1,
                               optional=True),
    "balanced_offset": Field(float, 100.0, "class-balanced sampling: weight 1 / (class count + offset)", minimum=0),
    "optimizer": Field(str, "adam", "optimizer (adam: L2 weight decay; adamw: decoupled)", ("adam", "adamw")),
    "lr": Field(float, 1e-4, "base learning rate", minimum=0),
    "weight_decay": Field(float, 0.0, "weight decay", minimum=0),
    "schedule": Field(str, "exp_warmup_linear_down", "learning-rate schedule (stepped once per epoch)",
                      ("exp_warmup_linear_down", "constant")),
    "warm_up_len": Field(int, 0, "exponential warm-up epochs", minimum=0),
    "ramp_down_start": Field(int, 0, "epoch where the linear decay starts", minimum=0),
    "ramp_down_len": Field(int, 0, "epochs of linear decay", minimum=0),
    "last_lr_value": Field(float, 0.01, "final learning rate as a fraction of lr", minimum=0),
    "loss": Field(str, "cross_entropy", "training loss (targets mixed by wavmix/mixup)",
                  ("cross_entropy", "bce", "masked_bce")),
    "masked_bce_normalize": Field(str, "all", "masked BCE: mean over all entries (originals) or known labels",
                                  ("all", "known")),
    "augment": Field(list, [], f"augmentations in order: waveform {WAVEFORM_STEPS} then spectrogram "
                               f"{SPECTROGRAM_STEPS}"),
    "roll_max_shift": Field(int, 4000, "time roll: largest shift in samples (both directions)", minimum=0),
    "gain_db": Field(float, 12.0, "random gain: largest gain in dB", minimum=0),
    "gain_integer_db": Field(bool, True, "random gain drawn in whole dB from -g to g-1 (EfficientAT code)"),
    "wavmix_p": Field(float, 0.5, "probability that a clip is mixed with another", minimum=0, maximum=1),
    "wavmix_beta": Field(float, 2.0, "wavmix weight ~ Beta(b, b), folded to >= 0.5", minimum=1e-6),
    "dir_p": Field(float, 0.6, "device impulse responses: probability per device-a clip", minimum=0, maximum=1),
    "dir_folder": Field(str, None, "folder of impulse response wav files (DIR)", optional=True),
    "dir_device": Field(str, "a", "the device whose clips DIR augments (clip group)"),
    "freqm": Field(int, 0, "frequency mask: largest width in mel bins (0: off)", minimum=0),
    "timem": Field(int, 0, "time mask: largest width in frames (0: off)", minimum=0),
    "mixup_alpha": Field(float, 0.3, "spectrogram mixup weight ~ Beta(a, a), folded to >= 0.5", minimum=1e-6),
    "mixstyle_p": Field(float, 0.4, "Freq-MixStyle: probability per batch", minimum=0, maximum=1),
    "mixstyle_alpha": Field(float, 0.3, "Freq-MixStyle: weight ~ Beta(a, a)", minimum=1e-6),
    "patchout_t": Field(int, None, "PaSST structured patchout: time columns dropped (null: keep the model's)",
                        minimum=0, optional=True),
    "patchout_f": Field(int, None, "PaSST structured patchout: frequency rows dropped (null: keep the model's)",
                        minimum=0, optional=True),
    "teacher": Field(list, [], "teacher models for distillation: MODEL or MODEL@WEIGHTS_FILE (mean of logits)"),
    "kd_kind": Field(str, "audioset", "distillation loss (audiobench.finetune.distillation)",
                     ("audioset", "dcase23")),
    "kd_temperature": Field(float, None, "distillation temperature (null: the kind's)", minimum=1e-6,
                            optional=True),
    "kd_weight": Field(float, None, "weight of the label loss (null: the kind's)", minimum=0, maximum=1,
                       optional=True),
    "evaluate_epoch": Field(str, "last", "which epoch's model scores the test clips",
                            ("last", "best-on-validation")),
    "amp": Field(bool, True, "mixed precision (fp16 autocast + GradScaler) on CUDA; always off on CPU"),
}
REQUIRED = ("epochs", "batch_size", "optimizer", "lr", "schedule", "loss", "augment")


@dataclass(frozen=True)
class ResolvedRecipe:
    """A recipe's values for one run, and where they came from."""

    name: str
    source: str
    description: str
    applies_to: dict[str, list[str]]
    values: dict[str, Any]
    family_override: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    task_in_recipe: bool = True

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def describe(self) -> dict[str, Any]:
        """The record's view: name, source, every value, and the overrides applied."""
        return {"name": self.name, "source": self.source, "description": self.description,
                "applies_to": self.applies_to, "values": dict(self.values),
                "family_override": dict(self.family_override), "overrides": dict(self.overrides),
                "task_in_recipe": self.task_in_recipe}


def _read(path: Path) -> dict[str, Any]:
    """The parsed recipe file (parsed once per file version)."""
    stat = path.stat()
    return copy.deepcopy(_parse(str(path), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=64)
def _parse(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: ~10x faster
    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a safe loader
    except (OSError, yaml.YAMLError) as error:
        raise RecipeError(f"Recipe file {path} cannot be read ({error}).",
                          hint="Fix the YAML of the recipe file.") from None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise RecipeError(f"Recipe file {path} is not a mapping with a name.", hint="See recipes/eat-esc50.yaml.")
    return data


def recipe_files() -> dict[str, Path]:
    """Every built-in recipe by name."""
    return {_read(path)["name"]: path for path in sorted(RECIPE_DIR.glob("*.yaml"))}


def load_recipe_data(name: str) -> dict[str, Any]:
    """The raw data of recipe ``name`` (RecipeError naming the known recipes when it does not exist)."""
    files = recipe_files()
    if name not in files:
        raise RecipeError(f"Unknown fine-tuning recipe {name!r}.", hint=f"Known recipes: {', '.join(sorted(files))}.")
    return _read(files[name])


def _coerce(recipe: str, key: str, value: Any) -> Any:
    """``value`` checked against field ``key`` (ints become floats for float fields; numeric strings too)."""
    if key not in FIELDS:
        raise RecipeError(f"Recipe {recipe!r}: unknown field {key!r}.",
                          hint=f"Fields: {', '.join(FIELDS)}." if key not in META_KEYS else
                          f"{key!r} describes the recipe and cannot be overridden.")
    spec = FIELDS[key]
    bad = RecipeError(f"Recipe {recipe!r}: {key}={value!r} is not valid ({spec.help}).",
                      hint=_expected(spec))
    if value is None:
        if spec.optional:
            return None
        raise bad
    if spec.kind is float and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise bad from None
    if spec.kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if spec.kind is list and isinstance(value, (str, tuple)):
        value = [value] if isinstance(value, str) else list(value)
    if not isinstance(value, spec.kind) or (spec.kind is int and isinstance(value, bool)):
        raise bad
    if spec.choices and value not in spec.choices:
        raise bad
    if spec.minimum is not None and value < spec.minimum or spec.maximum is not None and value > spec.maximum:
        raise bad
    if spec.kind is list and not all(isinstance(item, str) for item in value):
        raise bad
    return list(value) if spec.kind is list else value


def _expected(spec: Field) -> str:
    if spec.choices:
        return f"Use one of: {', '.join(map(str, spec.choices))}."
    bounds = [f">= {spec.minimum}" if spec.minimum is not None else "", f"<= {spec.maximum}"
              if spec.maximum is not None else ""]
    rule = " and ".join(b for b in bounds if b)
    return f"Give a {spec.kind.__name__}{' ' + rule if rule else ''}{' or null' if spec.optional else ''}."


def check_augment(recipe: str, steps: list[str]) -> None:
    """Known steps, each once, waveform steps before spectrogram steps (the front-end runs in between)."""
    known = WAVEFORM_STEPS + SPECTROGRAM_STEPS
    unknown = [s for s in steps if s not in known]
    if unknown or len(set(steps)) != len(steps):
        raise RecipeError(f"Recipe {recipe!r}: augment={steps} has unknown or repeated steps {unknown or steps}.",
                          hint=f"Use each of {', '.join(known)} at most once.")
    stages = [s in SPECTROGRAM_STEPS for s in steps]
    if stages != sorted(stages):
        raise RecipeError(f"Recipe {recipe!r}: augment={steps} puts a waveform step after a spectrogram step.",
                          hint=f"List waveform steps {WAVEFORM_STEPS} first, then {SPECTROGRAM_STEPS}.")


def _checked(recipe: str, values: dict[str, Any]) -> dict[str, Any]:
    return {key: _coerce(recipe, key, value) for key, value in values.items()}


def default_recipe(family: str, task: str) -> str:
    """The recipe whose ``applies_to`` names both the model family and the task."""
    matches, for_family = [], []
    for name in sorted(recipe_files()):
        applies = load_recipe_data(name).get("applies_to") or {}
        if family in applies.get("families", []):
            for_family.append(name)
            if task in applies.get("tasks", []):
                matches.append(name)
    if not matches:
        raise RecipeError(f"No published fine-tuning recipe is written for model family {family!r} on task {task!r}.",
                          hint=f"Pass --recipe NAME; recipes for {family}: {', '.join(for_family) or 'none'}.")
    return matches[0]


def resolve_recipe(name: str | None, family: str, task: str, overrides: dict[str, Any] | None = None,
                   epochs: int | None = None) -> ResolvedRecipe:
    """The values of recipe ``name`` (None: :func:`default_recipe`) for a model of ``family`` on ``task``."""
    name = name or default_recipe(family, task)
    data = load_recipe_data(name)
    applies = data.get("applies_to") or {}
    families = list(applies.get("families", []))
    if family not in families:
        others = [n for n in sorted(recipe_files()) if family in
                  (load_recipe_data(n).get("applies_to") or {}).get("families", [])]
        raise RecipeError(f"Recipe {name!r} is written for model families {families}; this model is {family!r}.",
                          hint=f"Recipes for {family}: {', '.join(others) or 'none'}.")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise RecipeError(f"Recipe {name!r} lacks the field(s) {', '.join(missing)}.", hint="Add them to its file.")
    values = {key: spec.default for key, spec in FIELDS.items()}
    values.update(_checked(name, {k: v for k, v in data.items() if k not in META_KEYS}))
    family_override = _checked(name, (data.get("family_overrides") or {}).get(family, {}))
    values.update(family_override)
    user = dict(overrides or {})
    if epochs is not None:
        user["epochs"] = epochs
    user = _checked(name, user)
    values.update(user)
    check_augment(name, values["augment"])
    return ResolvedRecipe(name=name, source=str(data.get("source", "")), description=str(data.get("description", "")),
                          applies_to={k: list(v) for k, v in applies.items()}, values=values,
                          family_override=family_override, overrides=user,
                          task_in_recipe=task in applies.get("tasks", []))


def parse_recipe_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as a dict; values are read as YAML (``3`` -> 3, ``[roll, gain]`` -> a list)."""
    from audiobench.key_values import parse_key_values

    return parse_key_values(items, "--recipe-option", "lr=1e-4", RecipeError)
