"""Dataset generators: shapes, classes, determinism, splits."""
import pytest

from core.data import MULTICLASS, generate, seed_example, train_validation_split

KINDS = ["moons", "circles", "xor", "spirals", "blobs"]


@pytest.mark.parametrize("kind", KINDS)
def test_generators_are_deterministic_by_seed(kind):
    classes = 3 if kind in MULTICLASS else 2
    xs, ys = generate(kind, 60, 0.1, seed=4, classes=classes)
    assert (xs, ys) == generate(kind, 60, 0.1, seed=4, classes=classes)
    assert xs != generate(kind, 60, 0.1, seed=5, classes=classes)[0]
    assert len(xs) == len(ys) == 60 and all(len(x) == 2 for x in xs)
    assert sorted(set(ys)) == list(range(classes))
    assert max(ys.count(c) for c in range(classes)) - min(ys.count(c) for c in range(classes)) <= 1 or kind == "xor"


def test_moons_without_noise_lie_on_two_half_circles():
    xs, ys = generate("moons", 40, 0.0, seed=0)
    for (x, y), label in zip(xs, ys):
        cx, cy = (0.0, 0.0) if label == 0 else (1.0, 0.5)
        assert (x - cx) ** 2 + (y - cy) ** 2 == pytest.approx(1.0)
        assert (y >= -1e-12) if label == 0 else (y <= 0.5 + 1e-12)


def test_the_seed_example():
    xs, ys = seed_example()
    assert xs[0] == [2.0, 3.0, -1.0] and ys == [1.0, -1.0, -1.0, 1.0]
    assert generate("seed", 999) == (xs, ys)


def test_binary_generators_refuse_other_class_counts():
    with pytest.raises(ValueError, match="2 classes"):
        generate("moons", 10, classes=3)
    with pytest.raises(ValueError, match="unknown dataset"):
        generate("mnist", 10)


def test_train_validation_split_is_deterministic_and_disjoint():
    xs = [[float(i), 0.0] for i in range(20)]
    ys = list(range(20))
    train_xs, train_ys, val_xs, val_ys = train_validation_split(xs, ys, 0.25, seed=3)
    assert len(val_xs) == 5 and len(train_xs) == 15
    assert sorted(train_ys + val_ys) == ys
    assert all(x[0] == y for x, y in zip(train_xs + val_xs, train_ys + val_ys))
    assert (train_xs, val_xs) == train_validation_split(xs, ys, 0.25, seed=3)[::2]
    assert val_ys != train_validation_split(xs, ys, 0.25, seed=4)[3]
    assert train_validation_split(xs, ys, 0.0)[2] == []
    assert len(train_validation_split(xs[:2], ys[:2], 0.9)[0]) == 1  # at least one sample trains
