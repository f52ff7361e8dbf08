"""Sound event detection on frozen frame embeddings (task cards with ``label_type: events``).

Frame embeddings at a fixed 50 ms hop (:mod:`.frames`, cached) -> frame targets from the clips' strong
labels (:mod:`.targets`) -> a frame head trained per split (:mod:`.heads`) -> raw frame scores stored in
the events predictions file (:mod:`.predictions`) -> post-processing (:mod:`.postprocess`) -> the DCASE
metrics of :mod:`audiobench.metrics_sed` (:mod:`.scoring`). :func:`run_events` is the runner path.
"""

from audiobench.events.run import run_events

__all__ = ["run_events"]
