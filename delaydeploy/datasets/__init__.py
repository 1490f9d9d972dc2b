"""Datasets for delay SNNs, all behind one interface (see :mod:`delaydeploy.datasets.common`).

Items are ``(x [T, C] float32, label int)``; classes expose ``num_channels``,
``num_classes``, ``input_kind`` and ``dt``; :func:`pad_collate` batches them time first.
:func:`load_dataset` opens any of :data:`DATASET_NAMES` by name:

* ``synthetic`` - generated timing task (no files; ``data_dir`` is ignored),
* ``shd``, ``ssc`` - Spiking Heidelberg Digits / Speech Commands HDF5 files,
* ``gsc`` - Google Speech Commands v0.02 folder, published DCLS log-mel front end,
* ``fsdd`` - Free Spoken Digit Dataset recordings, cochlea-encoded spike counts.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from delaydeploy.datasets.common import FramesDataset, InputKind, PackedFrames, pad_collate
from delaydeploy.datasets.fsdd import FSDD, parse_speakers
from delaydeploy.datasets.gsc import GSC, GSC_LABELS
from delaydeploy.datasets.heidelberg import FRAME_CONVENTIONS, SHD, SSC
from delaydeploy.errors import DatasetError

if TYPE_CHECKING:
    from delaydeploy.datasets.synthetic import SyntheticTimingDataset

#: The datasets :func:`load_dataset` opens.
DATASET_NAMES: tuple[str, ...] = ("synthetic", "shd", "ssc", "gsc", "fsdd")

__all__ = [
    "DATASET_NAMES", "FRAME_CONVENTIONS", "FSDD", "GSC", "GSC_LABELS", "SHD", "SSC",
    "FramesDataset", "InputKind", "PackedFrames", "dataset_class", "load_dataset", "pad_collate",
    "with_test_speakers",
]


def with_test_speakers(options: dict, test_speakers: str | None) -> dict:
    """Dataset ``options`` with FSDD's speaker-independent split (``test_speakers``, comma-separated)
    where given; a dataset other than FSDD refuses the option when it is loaded."""
    if test_speakers is None:
        return dict(options)
    return {**options, "test_speakers": list(parse_speakers(test_speakers) or ())}


def dataset_class(name: str) -> Callable[..., FramesDataset | GSC | SyntheticTimingDataset]:
    """The class behind a dataset name; ``synthetic`` is imported only when asked for."""
    if name == "synthetic":
        from delaydeploy.datasets.synthetic import SyntheticTimingDataset

        return SyntheticTimingDataset
    classes: dict[str, Callable[..., FramesDataset | GSC]] = {"shd": SHD, "ssc": SSC, "gsc": GSC, "fsdd": FSDD}
    if name not in classes:
        raise DatasetError(f"unknown dataset {name!r} (choose from {', '.join(DATASET_NAMES)})")
    return classes[name]


def load_dataset(name: str, data_dir: str | os.PathLike | None, split: str,
                 **options: object) -> FramesDataset | GSC | SyntheticTimingDataset:
    """Open split ``split`` of dataset ``name`` from ``data_dir`` with dataset-specific ``options``.

    Options are the keyword arguments of the dataset's class, e.g. ``frames`` and
    ``cache_dir`` for SHD/SSC; an option the dataset does not take raises a
    :class:`DatasetError` naming the ones it does.
    """
    cls = dataset_class(name)
    accepted = [p for p in inspect.signature(cls).parameters if p not in ("self", "data_dir", "split")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DatasetError(f"dataset {name!r} has no option {', '.join(map(repr, unknown))} "
                           f"(options: {', '.join(accepted) or 'none'})")
    if name == "synthetic":
        return cls(split, **options)
    if data_dir is None:
        raise DatasetError(f"dataset {name!r} needs a data_dir")
    return cls(data_dir, split, **options)
