"""Per-epoch seeding: epoch ``e`` sees the same data order and augmentation whether or not the run was resumed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.data.utils import set_rnd
from monai.utils import IgniteInfo, min_version, optional_import

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
manual_seed, _ = optional_import("ignite.utils", IgniteInfo.OPT_IMPORT_VERSION, min_version, "manual_seed")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["EpochSeedHandler"]


class EpochSeedHandler:
    """At every ``EPOCH_STARTED``, seeds the global RNGs and the dataset's random transforms from (seed, epoch, rank).

    ``monai.utils.set_determinism`` seeds once per process. The order of a shuffled ``DataLoader`` (its
    ``RandomSampler`` draws a seed from torch's global RNG when the epoch's iterator is created) and the state of
    MONAI's random transforms (seeded once, when the ``DataLoader`` is built, then advanced sample by sample)
    therefore depend on every random number drawn before: a run resumed from the checkpoint of epoch ``e - 1``
    trains epoch ``e`` on another order, with other augmentations, than the uninterrupted run. Seeding at the start
    of every epoch from ``(seed, epoch, rank)`` makes epoch ``e`` the same in both (the principle of Ignite's
    ``DeterministicEngine``, for any MONAI trainer). The rank enters the seed so that DDP processes draw different
    augmentations (their data order comes from ``DistributedSampler.set_epoch``, independent of this handler).

    What is seeded: Python's ``random``, NumPy's and torch's global generators (``ignite.utils.manual_seed``), and
    every ``Randomizable`` of ``dataset`` (``monai.data.utils.set_rnd``, as MONAI's ``DataLoader`` does once).
    With ``num_workers > 0`` the workers are re-seeded from torch's generator when the epoch's iterator starts, so
    they follow too; ``persistent_workers=True`` keeps workers (and their generators) across epochs and is not
    covered. The epoch must start at an epoch boundary (resuming mid-epoch is not reproduced).

    Args:
        seed: the run's seed.
        dataset: the dataset whose random transforms are re-seeded; default the dataset of the engine's data loader.
        rank: the process rank mixed into the seed; default ``torch.distributed``'s rank when initialized, else 0.

    Example:
        >>> trainer = SupervisedTrainer(...)
        >>> EpochSeedHandler(seed=0).attach(trainer)
    """

    def __init__(self, seed: int, dataset: Any = None, rank: int | None = None) -> None:
        self.seed = int(seed)
        self.dataset = dataset
        self.rank = rank

    def attach(self, engine: Engine) -> None:
        if not engine.has_event_handler(self, Events.EPOCH_STARTED):
            engine.add_event_handler(Events.EPOCH_STARTED, self)

    def epoch_seed(self, epoch: int) -> int:
        """The seed of ``epoch`` (a 32-bit integer; distinct inputs give independent streams)."""
        rank = self.rank
        if rank is None:
            dist = torch.distributed
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        return int(np.random.SeedSequence([self.seed, int(epoch), int(rank)]).generate_state(1)[0])

    def __call__(self, engine: Engine) -> None:
        seed = self.epoch_seed(engine.state.epoch)
        manual_seed(seed)
        dataset = self.dataset
        if dataset is None:  # a MONAI workflow's data_loader, else the loader an Ignite engine runs on
            loader = getattr(engine, "data_loader", None) or getattr(engine.state, "dataloader", None)
            dataset = getattr(loader, "dataset", None)
        if dataset is not None:
            set_rnd(dataset, seed)
