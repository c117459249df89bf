from __future__ import annotations

import pytest
from ignite.engine import Engine
from monai.data import DataLoader, Dataset
from monai.transforms import Randomizable, Transform
from monai.utils import set_determinism

from monai_explain.handlers import EpochSeedHandler

EPOCH_LENGTH = 2  # 8 items, batch 4


class _RandomDraw(Randomizable, Transform):
    """Tags each item with a draw of the transform's own generator (stands for a random augmentation)."""

    def randomize(self, data=None) -> None:
        self._value = int(self.R.randint(1_000_000))

    def __call__(self, data: dict) -> dict:
        self.randomize()
        return {**data, "draw": self._value}


def _epochs(handler: bool, num_workers: int, resume_after: int | None, max_epochs: int = 3) -> dict[int, list]:
    """Per epoch, the (item, draw) pairs in the order seen; a fresh "process" resumed after ``resume_after``."""
    set_determinism(seed=0)
    data = Dataset([{"i": i} for i in range(8)], transform=_RandomDraw())
    loader = DataLoader(data, batch_size=4, shuffle=True, num_workers=num_workers)
    seen: dict[int, list] = {}

    def step(engine, batch):
        pairs = zip(batch["i"].tolist(), batch["draw"].tolist())
        seen.setdefault(engine.state.epoch, []).extend(pairs)

    engine = Engine(step)
    if handler:
        EpochSeedHandler(seed=0).attach(engine)
    if resume_after is not None:  # what CheckpointLoader restores from the checkpoint of epoch `resume_after`
        state = {"iteration": resume_after * EPOCH_LENGTH, "epoch_length": EPOCH_LENGTH, "max_epochs": max_epochs}
        engine.load_state_dict(state)
    engine.run(loader, max_epochs=max_epochs)
    set_determinism(seed=None)
    return seen


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resumed_epochs_see_the_same_order_and_augmentation(num_workers):
    full = _epochs(handler=True, num_workers=num_workers, resume_after=None)
    resumed = _epochs(handler=True, num_workers=num_workers, resume_after=1)
    assert sorted(resumed) == [2, 3]
    assert resumed[2] == full[2] and resumed[3] == full[3]
    assert sorted(i for i, _ in full[2]) == list(range(8)), "every item once per epoch"
    assert [i for i, _ in full[2]] != [i for i, _ in full[3]], "a new order each epoch"
    assert [d for _, d in full[2]] != [d for _, d in full[3]], "new augmentations each epoch"


def test_without_it_a_resumed_epoch_differs():
    """The defect it fixes: set_determinism + shuffle=True replays epoch 1's randomness after a restart."""
    full = _epochs(handler=False, num_workers=0, resume_after=None)
    resumed = _epochs(handler=False, num_workers=0, resume_after=1)
    assert resumed[2] != full[2]


@pytest.mark.parametrize(
    "a, b", [((0, 1, 0), (0, 2, 0)), ((0, 1, 0), (0, 1, 1)), ((0, 1, 0), (1, 1, 0)), ((0, 2, 0), (2, 0, 0))]
)
def test_epoch_seed_depends_on_seed_epoch_and_rank(a, b):
    seed_a = EpochSeedHandler(seed=a[0], rank=a[2]).epoch_seed(a[1])
    seed_b = EpochSeedHandler(seed=b[0], rank=b[2]).epoch_seed(b[1])
    assert seed_a != seed_b
    assert seed_a == EpochSeedHandler(seed=a[0], rank=a[2]).epoch_seed(a[1])
    assert 0 <= seed_a < 2**32
