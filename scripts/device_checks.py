"""Every GPU check of issues 11 and 12 in one command, for the lent GPU machine (``python3 scripts/device_checks.py``).

Stage first, here: ``python scripts/stage_device_checks.py`` (writes ``.device/``), then run this there with
``carry=[".device"]``. Each check runs in its own process under a time limit, writes its log and JSON under
``$OUT`` (or ``--out``) and a failure does not stop the others; ``summary.json`` collects them.

Checks (``--checks`` picks some):

* ``throughput``: ``benchmarks/embedding_throughput.py`` on the device for mn10, dymn10, PaSST-S (random
  weights: speed does not depend on them) and mn04 with its released weights (also the CPU/CUDA cosine);
* ``precision``: ESC-50 (staged clips, 5 folds, linear probe) with mn04 on the device in fp32, fp16 and bf16;
* ``finetune``: mn04 fine-tuned on the staged ESC-50 clips, 5 folds, recipe eat-esc50, with its wall time;
* ``cpmobile``: CP-Mobile from scratch on a generated TAU22-layout copy with KD (the released CP-Mobile as
  teacher), device impulse responses and Freq-MixStyle.

``--device cpu --smoke`` runs the same flow with tiny settings on a CPU (to test this script).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / ".device"
SITE = Path("/tmp/audiobench-site")
MN04 = "mn04_as_mAP_432.pt"
CPMOBILE = "cpmobile_tau22_c0a7nzin.ckpt"


def prepare_environment(cache: Path) -> dict[str, str]:
    """Install the carried wheels when the image lacks them; a cache with the staged checkpoints in it."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", AUDIOBENCH_CACHE=str(cache))
    paths = [str(ROOT)]
    probe = subprocess.run([sys.executable, "-c", "import soundfile, soxr, platformdirs"], capture_output=True)
    if probe.returncode != 0 and (STAGE / "wheels").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--no-cache-dir", "--upgrade", "--target", str(SITE), *map(str, (STAGE / "wheels").iterdir())],
                       check=True)
        paths.append(str(SITE))
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    (cache / "checkpoints").mkdir(parents=True, exist_ok=True)
    for path in (STAGE / "checkpoints").glob("*"):
        shutil.copy(path, cache / "checkpoints" / path.name)
    return env


def run_options(**settings: Any):
    from audiobench.runner import RunOptions

    return RunOptions(**settings)


def esc50_folds() -> int:
    """Folds of the stratified CV the staged ESC-50 clips allow (5 unless a class has fewer clips)."""
    import csv

    present = {path.stem for path in (STAGE / "esc50" / "audio").iterdir()}
    counts: dict[str, int] = {}
    with open(STAGE / "esc50" / "meta" / "esc50.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if Path(row["filename"]).stem in present:
                counts[row["target"]] = counts.get(row["target"], 0) + 1
    return max(2, min(5, min(counts.values())))


def accuracy(record: dict[str, Any]) -> dict[str, Any]:
    metric = record["metrics"]["accuracy"]
    return {"mean": metric["mean"], "per_split": metric.get("per_split")}


# ---------------------------------------------------------------------------------------------- the checks
def check_throughput(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    results = {}
    clips = 16 if args.smoke else 2048
    for model, checkpoint in (("mn10", None), ("dymn10", None), ("passt-s", None), ("mn04", MN04)):
        command = [sys.executable, str(ROOT / "benchmarks" / "embedding_throughput.py"), "--device", args.device,
                   "--model", model, "--audio-dir", str(STAGE / "esc50" / "audio"), "--clips", str(clips),
                   "--batch-size", "8" if args.smoke else "64", "--repeats", "1" if args.smoke else "3",
                   "--loop-clips", "4" if args.smoke else "256", "--json"]
        if model == "passt-s" and not args.smoke:
            command[command.index("--clips") + 1] = "768"
        if checkpoint:
            command += ["--checkpoint", str(Path(os.environ["AUDIOBENCH_CACHE"]) / "checkpoints" / checkpoint)]
        done = subprocess.run(command, capture_output=True, text=True)
        print(done.stderr[-3000:], file=sys.stderr)
        results[model] = json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-1500:]}
    return results


def check_precision(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from audiobench.runner import run

    results = {}
    for precision in ("fp32", "fp16", "bf16"):
        started = time.perf_counter()
        record, _ = run(run_options(task="esc50", model="mn04", data_dir=STAGE / "esc50", checkpoint=Path(MN04),
                                    cv=esc50_folds(), device=args.device, precision=precision,
                                    output_dir=work / precision))
        results[precision] = {**accuracy(record), "wall_s": time.perf_counter() - started,
                              "embeddings": record["embeddings"]}
    return results


def check_finetune(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from audiobench.runner import run

    epochs = 2 if args.smoke else None  # None: the recipe's 80 epochs
    started = time.perf_counter()
    record, _ = run(run_options(task="esc50", model="mn04", data_dir=STAGE / "esc50", checkpoint=Path(MN04),
                                cv=esc50_folds(), device=args.device, protocol="finetune", recipe="eat-esc50",
                                epochs=epochs, output_dir=work / "out"))
    wall = time.perf_counter() - started
    clips = record["dataset"]["clips"]
    folds = esc50_folds()
    trained = clips * (folds - 1) * record["protocol"]["epochs"]  # every split trains on the other folds
    return {**accuracy(record), "wall_s": wall, "clips": clips, "folds": folds,
            "train_clips_per_s_wall": trained / wall, "protocol": record["protocol"],
            "splits": record["finetune"]["splits"]}


def check_cpmobile(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_tau22 import make_tau22  # the official TAU22 layout, generated

    from audiobench.runner import run

    make_tau22(work / "tau22", segments=2 if args.smoke else 12, seconds=1.0)
    teacher = f"cpmobile@{Path(os.environ['AUDIOBENCH_CACHE']) / 'checkpoints' / CPMOBILE}"
    options = {"init": "random", "teacher": [teacher], "dir_folder": str(STAGE / "tau22" / "device_irs")}
    started = time.perf_counter()
    record, _ = run(run_options(task="tau22", model="cpmobile", data_dir=work / "tau22", device=args.device,
                                protocol="finetune", recipe="dcase23-cpmobile", recipe_options=options,
                                epochs=1 if args.smoke else 10, output_dir=work / "out"))
    return {**accuracy(record), "wall_s": time.perf_counter() - started, "clips": record["dataset"]["clips"],
            "protocol": record["protocol"], "teacher": record["finetune"]["teacher"],
            "device_irs": record["finetune"]["device_irs"], "per_device": {
                key: value["mean"] for key, value in record["metrics"].items() if key.startswith("accuracy@")}}


CHECKS: dict[str, Callable[[argparse.Namespace, Path], dict[str, Any]]] = {
    "throughput": check_throughput, "precision": check_precision, "finetune": check_finetune,
    "cpmobile": check_cpmobile}
LIMITS_S = {"throughput": 170, "precision": 90, "finetune": 170, "cpmobile": 90}


def run_one(args: argparse.Namespace) -> None:
    """In a child process: one check, its JSON to ``<out>/<check>.json``."""
    work = Path(args.work) / args.step
    work.mkdir(parents=True, exist_ok=True)
    result = CHECKS[args.step](args, work)
    (Path(args.out) / f"{args.step}.json").write_text(json.dumps(result, indent=1, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--checks", default=",".join(CHECKS))
    parser.add_argument("--out", default=os.environ.get("OUT", "device-checks-out"))
    parser.add_argument("--work", default="/tmp/audiobench-device-checks")
    parser.add_argument("--smoke", action="store_true", help="tiny settings, to test this script on a CPU")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        return run_one(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = prepare_environment(Path(args.work) / "cache")
    os.environ.update(env)
    summary: dict[str, Any] = {}
    for name in args.checks.split(","):
        started = time.perf_counter()
        command = [sys.executable, __file__, "--step", name, "--device", args.device, "--out", str(out),
                   "--work", args.work] + (["--smoke"] if args.smoke else [])
        with open(out / f"{name}.log", "w") as log:
            try:
                code = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      timeout=LIMITS_S[name] * (3 if args.smoke else 1)).returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        result_path = out / f"{name}.json"
        summary[name] = {"exit": code, "wall_s": round(time.perf_counter() - started, 1),
                         "result": json.loads(result_path.read_text()) if result_path.exists() else None}
        print(f"{name}: exit {code}, {summary[name]['wall_s']} s", flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(json.dumps(summary, indent=1, default=str)[-6000:])


if __name__ == "__main__":
    main()
