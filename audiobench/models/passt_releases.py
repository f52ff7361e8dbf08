"""Released AudioSet PaSST checkpoints (torch-free, so model cards can be listed without torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict


@dataclass(frozen=True)
class PaSSTRelease:
    """A released AudioSet PaSST checkpoint (kkoutini/PaSST GitHub releases)."""

    arch: str  # key of ``default_cfgs`` in PaSST models/passt.py
    file_name: str
    url: str
    stride: int
    input_tdim: int
    depth: int = 12
    stft_hop: int = 320  # front-end hop (samples at 32 kHz) the model was trained with
    source: str = "kkoutini/PaSST models/passt.py default_cfgs"


_GH = "https://github.com/kkoutini/PaSST/releases/download/"


def _rel(arch: str, tag: str, file_name: str, stride: int, tdim: int = 998, **kw: object) -> PaSSTRelease:
    return PaSSTRelease(arch=arch, file_name=file_name, url=f"{_GH}{tag}/{file_name}", stride=stride,
                        input_tdim=tdim, **kw)  # type: ignore[arg-type]


# Release file names, tags, strides and input_size from PaSST models/passt.py default_cfgs
# (also in hear21passt/models/passt.py); 20 s / 30 s time lengths also from hear21passt base30sec.py
# (``get_model(arch="passt_30sec", input_tdim=3000)`` with hop 320). PaSST-L depth 7: protocols.md §2.3.
PASST_RELEASES: Dict[str, PaSSTRelease] = {
    "passt-s": _rel("passt_s_swa_p16_128_ap476", "v0.0.1-audioset", "passt-s-f128-p16-s10-ap.476-swa.pt", 10),
    "passt-s-ap4761": _rel("passt_s_swa_p16_128_ap4761", "v0.0.2-audioset",
                           "passt-s-f128-p16-s10-ap.4761-swa.pt", 10),
    "passt-s-ap472": _rel("passt_s_p16_128_ap472", "v0.0.2-audioset", "passt-s-f128-p16-s10-ap.472.pt", 10),
    "passt-s-s12": _rel("passt_s_swa_p16_s12_128_ap473", "v0.0.2-audioset",
                        "passt-s-f128-p16-s12-ap.473-swa.pt", 12),
    "passt-s-s14": _rel("passt_s_swa_p16_s14_128_ap471", "v0.0.2-audioset",
                        "passt-s-f128-p16-s14-ap.471-swa.pt", 14),
    "passt-s-s16": _rel("passt_s_swa_p16_s16_128_ap473", "v0.0.2-audioset",
                        "passt-s-f128-p16-s16-ap.473-swa.pt", 16),
    "passt-s-s16-ap468": _rel("passt_s_p16_s16_128_ap468", "v0.0.2-audioset", "passt-s-f128-p16-s16-ap.468.pt", 16),
    "passt-s-hop100": _rel("passt_s_swa_f128_stfthop100_p16_s10_ap473", "v0.0.3-audioset",
                           "passt-s-f128-stfthop100-p16-s10-ap.473-swa.pt", 10, 3200, stft_hop=100),
    "passt-s-hop160": _rel("passt_s_swa_f128_stfthop160_p16_s10_ap473", "v0.0.3-audioset",
                           "passt-s-f128-stfthop160-p16-s10-ap.473-swa.pt", 10, 2000, stft_hop=160),
    "passt-s-20sec": _rel("passt-s-f128-20sec-p16-s10-ap474-swa", "v0.0.5",
                          "passt-s-f128-20sec-p16-s10-ap.474-swa.pt", 10, 2000),
    "passt-s-30sec": _rel("passt-s-f128-30sec-p16-s10-ap473-swa", "v0.0.5",
                          "passt-s-f128-30sec-p16-s10-ap.473-swa.pt", 10, 3000),
    "passt-s-kd": _rel("passt_s_kd_p16_128_ap486", "v.0.0.9", "passt-s-kd-ap.486.pt", 10),
    "passt-l-kd": _rel("passt_l_kd_p16_128_ap47", "v.0.0.10", "passt-l-kd-ap.47.pt", 10, depth=7),
}
