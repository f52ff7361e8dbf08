"""Generic dataset layouts: a new task whose data comes in one of them needs only a task card.

Two layouts are supported (see docs/tasks.md, "Adding a task"):

* ``audiofolder`` (:func:`load_audiofolder`, in :mod:`audiobench.datasets.generic_audiofolder`): class
  folders, ``<root>/<class>/<file>``, optionally under split folders, ``<root>/<split>/<class>/<file>``
  (``train``/``valid``/``test``... or ``fold1``..``foldK``);
* ``csv`` (:func:`load_csv`, in :mod:`audiobench.datasets.generic_csv`): a metadata table naming each
  audio file with its label(s) and, optionally, its fold or split and group.

Neither layout has an official clip list unless the task card pins one in ``dataset_options.official``
(``{clips: N, sha256: ...}``); the sha256 is :func:`~audiobench.datasets.base.list_sha256` of the
(clip id, class name(s), fold or split) rows, printed by ``index.listed_sha256`` of the loaded index.
"""

from __future__ import annotations

from audiobench.datasets.generic_audiofolder import load_audiofolder
from audiobench.datasets.generic_csv import load_csv
from audiobench.datasets.generic_common import AUDIO_EXTENSIONS, pinned_official

__all__ = ["AUDIO_EXTENSIONS", "load_audiofolder", "load_csv", "pinned_official"]
