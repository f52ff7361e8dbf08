"""Time `score-sed` on the DESED validation set (1168 clips, 50 operating points of the baseline).

Prints seconds for: reading + validating the inputs, the psds_eval operating points (PSDS1 + PSDS2)
one by one in this process (as the library is usually driven) and spread over worker processes
(as score-sed runs them), and the F1 figures at threshold 0.5 (psds_eval intersection F1, sed_eval
collar- and segment-based F1).

    python benchmarks/score_sed.py [--jobs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DESED = Path(__file__).resolve().parents[2] / "shared" / "data" / "desed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DESED)
    parser.add_argument("--jobs", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from audiobench.metrics_sed.detections import default_jobs, score_detections, sed_eval_f1
    from audiobench.metrics_sed.inputs import read_operating_points
    from audiobench.sed_io import read_durations, read_events, read_ground_truth

    jobs = args.jobs or default_jobs()
    times: dict[str, float] = {}
    start = time.perf_counter()
    durations = read_durations(args.data / "validation_durations.tsv")
    truth = read_ground_truth(args.data / "validation.tsv", durations)
    labels, clips = set(truth.events["event_label"]), set(durations["filename"])
    points = read_operating_points(args.data / "baseline_student_operating_points", labels, clips)
    at05 = read_events(args.data / "predictions0.5.csv", labels=labels, clips=clips)
    times["read_validate_s"] = time.perf_counter() - start
    values = {}
    for label, n in (("psds_ops_1_job_s", 1), (f"psds_ops_{jobs}_jobs_s", jobs)):
        start = time.perf_counter()
        scored = score_detections(truth, durations, points, None, n)
        times[label] = time.perf_counter() - start
        values[label] = {name: value for name, (value, _) in scored["psds"].items()}
    start = time.perf_counter()
    from audiobench.metrics_sed.detections import _init_worker, _intersection_f1_worker
    _init_worker(truth.events[["filename", "onset", "offset", "event_label"]], durations)
    inter = _intersection_f1_worker(at05.events)[0]
    times["intersection_f1_s"] = time.perf_counter() - start
    start = time.perf_counter()
    f1 = sed_eval_f1(truth, at05.events)
    times["sed_eval_collar_segment_f1_s"] = time.perf_counter() - start
    report = {"clips": len(durations), "operating_points": len(points), "jobs": jobs,
              "seconds": {k: round(v, 2) for k, v in times.items()}, "psds": values,
              "f1": {"intersection": inter, "collar": {k: f1["collar"][k] for k in ("macro", "micro")},
                     "segment": {k: f1["segment"][k] for k in ("macro", "micro")}}}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    for key, value in report["seconds"].items():
        print(f"{key:32s} {value:8.2f} s")
    print(f"PSDS {values}")


if __name__ == "__main__":
    main()
