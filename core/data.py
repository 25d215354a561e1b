"""Small 2-D datasets, each a pure function of its arguments and a seed.

Generators return (xs, ys): xs a list of [x, y] points, ys class indices
0..k-1 (the seed example returns its own +-1 targets). Samples come out
shuffled, so any prefix is a fair mix of the classes."""
import math
import random

SEED_XS = [
    [2.0, 3.0, -1.0],
    [3.0, -1.0, 0.5],
    [0.5, 1.0, 1.0],
    [1.0, 1.0, -1.0],
]
SEED_YS = [1.0, -1.0, -1.0, 1.0]


def seed_example():
    """The seed lecture's four samples with targets +-1."""
    return [list(x) for x in SEED_XS], list(SEED_YS)


def moons(n_samples=100, noise=0.1, seed=0):
    """Two interleaving half circles (like scikit-learn's make_moons)."""
    rng = random.Random(seed)
    n_outer = n_samples // 2
    n_inner = n_samples - n_outer
    points = []
    for i in range(n_outer):
        t = math.pi * i / max(n_outer - 1, 1)
        points.append(([math.cos(t), math.sin(t)], 0))
    for i in range(n_inner):
        t = math.pi * i / max(n_inner - 1, 1)
        points.append(([1 - math.cos(t), 0.5 - math.sin(t)], 1))
    return _jitter_and_shuffle(points, noise, rng)


def circles(n_samples=100, noise=0.1, seed=0, inner_radius=0.5):
    """A circle of class 1 inside a circle of class 0."""
    rng = random.Random(seed)
    n_outer = n_samples // 2
    points = []
    for i in range(n_samples):
        outer = i < n_outer
        count = n_outer if outer else n_samples - n_outer
        t = 2 * math.pi * (i if outer else i - n_outer) / count
        r = 1.0 if outer else inner_radius
        points.append(([r * math.cos(t), r * math.sin(t)], 0 if outer else 1))
    return _jitter_and_shuffle(points, noise, rng)


def xor(n_samples=100, noise=0.1, seed=0):
    """Points in [-1, 1]^2; class 1 where the signs of x and y differ."""
    rng = random.Random(seed)
    points = []
    for _ in range(n_samples):
        x, y = rng.uniform(-1, 1), rng.uniform(-1, 1)
        points.append(([x, y], int((x > 0) != (y > 0))))
    return _jitter_and_shuffle(points, noise, rng)


def spirals(n_samples=100, noise=0.1, seed=0, classes=2):
    """`classes` spiral arms around the origin, one class per arm."""
    rng = random.Random(seed)
    points = []
    for i in range(n_samples):
        arm, k = i % classes, i // classes
        per_arm = (n_samples - arm + classes - 1) // classes
        r = (k + 1) / per_arm
        t = 2 * math.pi * arm / classes + 4.0 * r + rng.gauss(0, noise)
        points.append(([r * math.sin(t), r * math.cos(t)], arm))
    return _jitter_and_shuffle(points, 0.0, rng)


def blobs(n_samples=100, noise=0.1, seed=0, classes=2):
    """Gaussian blobs (standard deviation `noise`) around `classes` centres on a circle of radius 1."""
    rng = random.Random(seed)
    points = []
    for i in range(n_samples):
        c = i % classes
        t = 2 * math.pi * c / classes
        points.append(([math.cos(t), math.sin(t)], c))
    return _jitter_and_shuffle(points, noise, rng)


GENERATORS = {"moons": moons, "circles": circles, "xor": xor, "spirals": spirals, "blobs": blobs}
MULTICLASS = ("spirals", "blobs")  # the others are binary by nature


def generate(kind, n_samples=100, noise=0.1, seed=0, classes=2):
    """Any dataset by name; `seed` ignores the size arguments and returns its four samples."""
    if kind == "seed":
        return seed_example()
    if kind not in GENERATORS:
        raise ValueError(f"unknown dataset {kind!r}; choose from seed, {', '.join(GENERATORS)}")
    if kind in MULTICLASS:
        return GENERATORS[kind](n_samples, noise, seed, classes=classes)
    if classes != 2:
        raise ValueError(f"{kind} has 2 classes, not {classes}")
    return GENERATORS[kind](n_samples, noise, seed)


def train_validation_split(xs, ys, fraction, seed=0):
    """(train_xs, train_ys, val_xs, val_ys): a seeded shuffle, the first
    round(n * fraction) samples for validation; at least one sample trains."""
    if not 0 <= fraction < 1:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    n_val = min(round(len(xs) * fraction), len(xs) - 1)
    if n_val == 0:
        return list(xs), list(ys), [], []
    order = list(range(len(xs)))
    random.Random(seed).shuffle(order)
    val, train = order[:n_val], order[n_val:]
    return [xs[i] for i in train], [ys[i] for i in train], [xs[i] for i in val], [ys[i] for i in val]


def _jitter_and_shuffle(points, noise, rng):
    rng.shuffle(points)
    xs = [[x + rng.gauss(0, noise), y + rng.gauss(0, noise)] if noise else [x, y] for (x, y), _ in points]
    ys = [label for _, label in points]
    return xs, ys
