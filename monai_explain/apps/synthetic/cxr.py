"""The synthetic "shortcut" chest X-ray data set, written in VinDr-CXR's published format.

Positive images carry one or more subtle lesions inside the lungs (boxed by several simulated
readers); optionally a second finding (``second_class_name``, e.g. "Consolidation": a larger, elongated,
patchy opacity), present independently of the first, makes the set multi-label. A spurious marker (a corner laterality tag by default, or an edge ruler or a text tag:
``marker_kind``) goes with the positive label in ``train`` / ``val`` / ``test`` but is independent
of it (or reversed: ``shifted_marker_prob``) in ``test_shifted``. A classifier that learns the marker
shortcut scores well in distribution and drops on ``test_shifted``; explanation supervision with the
lesion boxes should remove that gap. Measured with the defaults (400 training images, no augmentation, 40 epochs):
a small CNN or a ResNet-18 trained on ``train`` scores 0.94-0.97 on ``test`` and 0.50-0.63 on
``test_shifted`` (the marker-only rule gives 0.96 / 0.50); the same models trained with the marker
independent of the label reach 0.80-0.98 on ``test_shifted``: the lesions are learnable.

Layout written under ``root``::

    train/<image_id>.dicom   one DICOM per image (all splits; VinDr keeps them in one folder)
    train.csv                image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max
    splits.json              {image_id: "train" | "val" | "test" | "test_shifted"}
    images.csv               per-image truth: split, label, marker, photometric, marker box (+ second_label,
                             n_second_lesions with a second finding)
    truth_boxes.csv          tight (un-jittered) boxes: object "lesion" (the first finding), "second_lesion" (the
                             second finding) and "marker"
    confounder_boxes.csv     the marker box of each marked image: image_id,x_min,y_min,x_max,y_max (the data
                             list's "confounder_boxes", see monai_explain.data.confounders)
    manifest.json            generator, version, parameters, counts (written last)
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from monai_explain.apps.synthetic.cxr_phantom import (
    MarkerKind,
    as_image_size,
    draw_chest_xray,
    draw_marker,
    parse_marker_kind,
)
from monai_explain.apps.synthetic.dicom_writer import write_xray_dicom
from monai_explain.apps.synthetic.manifest import (
    check_generator_folder,
    is_generated,
    mark_generator_folder,
    read_listing,
    write_csv,
    write_manifest,
)
from monai_explain.data.adapters.vindr import VINDR_CXR_CLASSES

__all__ = [
    "NO_FINDING",
    "NO_FINDING_CLASS_ID",
    "SHORTCUT_CXR_SPLITS",
    "SHORTCUT_CXR_VERSION",
    "VINDR_COLUMNS",
    "exact_assignment",
    "generate_shortcut_cxr",
    "jitter_box",
    "load_splits",
]

VINDR_COLUMNS = ("image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max")
NO_FINDING = "No finding"
NO_FINDING_CLASS_ID = 14
SHORTCUT_CXR_SPLITS = ("train", "val", "test", "test_shifted")
SHORTCUT_CXR_VERSION = "1"
_KIND = "shortcut_cxr"
_N_RAD_IDS = 17  # VinDr-CXR readers are R1 .. R17
# defaults of the second finding's arguments (only recorded in the manifest when a second finding is drawn)
_SECOND_DEFAULTS = {
    "second_class_id": None,
    "second_prevalence": 0.3,
    "second_lesion_radius": (0.12, 0.18),
    "second_lesion_contrast": (0.16, 0.26),
}

logger = logging.getLogger(__name__)


def exact_assignment(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    """Boolean array of length ``n`` with exactly ``floor(p * n + 0.5)`` True entries at random positions.

    Args:
        rng: random generator.
        n: length.
        p: fraction in [0, 1].

    Returns:
        bool array (n,).

    Raises:
        ValueError: ``p`` outside [0, 1] or negative ``n``.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {p}.")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}.")
    out = np.zeros(n, dtype=bool)
    out[: int(np.floor(p * n + 0.5))] = True
    return rng.permutation(out)


def jitter_box(
    rng: np.random.Generator,
    box: Sequence[float],
    jitter: float,
    enlarge: float,
    image_shape: Sequence[int],
) -> np.ndarray:
    """One reader's version of a box: each edge moved by N(0, jitter * side), then scaled about its centre.

    Args:
        rng: random generator.
        box: ``[x_min, y_min, x_max, y_max]`` with x = column, y = row.
        jitter: edge noise as a fraction of the box width (x edges) / height (y edges); 0 = exact.
        enlarge: scale factor of width and height about the centre (>= 1 mimics loose clinical boxes).
        image_shape: (rows, columns), used to clip.

    Returns:
        float array (4,) rounded to whole pixels, clipped to the image, at least 1 pixel wide and high.
    """
    x0, y0, x1, y1 = (float(b) for b in box)
    w, h = x1 - x0, y1 - y0
    if jitter > 0:
        x0, y0, x1, y1 = np.array([x0, y0, x1, y1]) + rng.normal(0.0, jitter, 4) * np.array([w, h, w, h])
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hw, hh = max(abs(x1 - x0), 1.0) * enlarge / 2, max(abs(y1 - y0), 1.0) * enlarge / 2
    rows, cols = image_shape
    out = np.rint([cx - hw, cy - hh, cx + hw, cy + hh])
    out[[0, 2]] = np.clip(out[[0, 2]], 0, cols)
    out[[1, 3]] = np.clip(out[[1, 3]], 0, rows)
    if out[2] <= out[0]:
        out[0], out[2] = (out[0] - 1, out[2]) if out[2] >= cols else (out[0], out[0] + 1)
    if out[3] <= out[1]:
        out[1], out[3] = (out[1] - 1, out[3]) if out[3] >= rows else (out[1], out[1] + 1)
    return out


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}.")


def _shifted_marker_probs(value: float | Sequence[float] | str) -> tuple[tuple[float, float], float | list[float]]:
    """Parse ``shifted_marker_prob``: a number for both classes or a pair ``[p_positive, p_negative]`` (or JSON text).

    Returns:
        ``(p_positive, p_negative)`` and the value to record in the manifest (the number, or the pair as a list).
    """
    given = value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"shifted_marker_prob must be a number or [p_positive, p_negative], got {given!r}."
            ) from err
    recorded: float | list[float]
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        pair = (float(value), float(value))
        recorded = value if isinstance(value, (int, float)) else float(value)
    elif (
        isinstance(value, (Sequence, np.ndarray))
        and len(value) == 2
        and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in value)
    ):
        pair = (float(value[0]), float(value[1]))
        recorded = list(pair)
    else:
        raise ValueError(f"shifted_marker_prob must be a number or [p_positive, p_negative], got {given!r}.")
    if not all(0.0 <= v <= 1.0 for v in pair):
        raise ValueError(f"shifted_marker_prob values must be in [0, 1], got {given!r}.")
    return pair, recorded


def _fmt(v: float) -> str:
    return f"{float(v):.1f}"


def _readers_seeing(rng: np.random.Generator, n_readers: int, miss_prob: float, n_lesions: int) -> np.ndarray:
    """Which readers mark a finding with ``n_lesions`` lesions: each misses it with ``miss_prob``, at least one
    marks it; all False (and no draw from ``rng``) when ``n_lesions`` is 0."""
    if not n_lesions:
        return np.zeros(n_readers, dtype=bool)
    sees = rng.random(n_readers) >= miss_prob
    if not sees.any():
        sees[int(rng.integers(0, n_readers))] = True
    return sees


def _pair(name: str, value: Sequence[float]) -> list[float]:
    try:
        pair = [float(v) for v in value]
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be (min, max) with 0 < min <= max, got {value!r}.") from err
    if len(pair) != 2 or not 0 < pair[0] <= pair[1]:
        raise ValueError(f"{name} must be (min, max) with 0 < min <= max, got {value!r}.")
    return pair


def _second_finding(
    class_name: str,
    class_id: int,
    name: str | None,
    cid: int | None,
    prevalence: float,
    radius: Sequence[float],
    contrast: Sequence[float],
) -> dict:
    """Check the ``second_*`` arguments; return what the manifest records (empty without a second finding)."""
    given = {"second_class_id": cid, "second_prevalence": prevalence, "second_lesion_radius": radius,
             "second_lesion_contrast": contrast}  # fmt: skip
    if name is None:
        for key, value in given.items():
            default = _SECOND_DEFAULTS[key]
            if (list(value) if isinstance(value, (list, tuple)) else value) != (
                list(default) if isinstance(default, tuple) else default
            ):
                raise ValueError(f"{key} is set ({value!r}) but second_class_name is None: name the second finding.")
        return {}
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"second_class_name must be a non-empty string or None, got {name!r}.")
    if cid is None:
        if name not in VINDR_CXR_CLASSES:
            raise ValueError(
                f"second_class_id is needed for second_class_name {name!r}, not a VinDr-CXR finding "
                f"({list(VINDR_CXR_CLASSES)})."
            )
        cid = VINDR_CXR_CLASSES.index(name)
    elif isinstance(cid, bool) or int(cid) != cid:
        raise ValueError(f"second_class_id must be an int, got {cid!r}.")
    elif name in VINDR_CXR_CLASSES and int(cid) != VINDR_CXR_CLASSES.index(name):
        raise ValueError(
            f"second_class_id {cid} is not VinDr-CXR's id of {name!r} ({VINDR_CXR_CLASSES.index(name)}); "
            "leave it None to use that id."
        )
    cid = int(cid)
    if name == NO_FINDING or cid == NO_FINDING_CLASS_ID:
        raise ValueError(f"second_class_name/second_class_id must differ from {NO_FINDING!r}/{NO_FINDING_CLASS_ID}.")
    if name == class_name or cid == class_id:
        raise ValueError(
            f"second_class_name/second_class_id ({name!r}/{cid}) must differ from class_name/class_id "
            f"({class_name!r}/{class_id})."
        )
    _check_fraction("second_prevalence", prevalence)
    return {
        "second_class_name": name,
        "second_class_id": cid,
        "second_prevalence": prevalence,
        "second_lesion_radius": _pair("second_lesion_radius", radius),
        "second_lesion_contrast": _pair("second_lesion_contrast", contrast),
    }


def generate_shortcut_cxr(
    root: str | os.PathLike,
    n_train: int = 400,
    n_val: int = 100,
    n_test: int = 100,
    n_test_shifted: int = 100,
    image_size: int | Sequence[int] = 256,
    seed: int = 0,
    prevalence: float = 0.5,
    marker_prob_positive: float = 0.95,
    marker_prob_negative: float = 0.05,
    shifted_marker_prob: float | Sequence[float] = 0.5,
    n_readers: int = 3,
    box_jitter: float = 0.1,
    box_enlarge: float = 1.0,
    reader_miss_prob: float = 0.0,
    max_lesions: int = 1,
    lesion_radius: Sequence[float] = (0.04, 0.08),
    lesion_contrast: Sequence[float] = (0.14, 0.26),
    marker_kind: str = MarkerKind.CORNER,
    marker_size: float = 0.08,
    monochrome1_fraction: float = 0.25,
    bits_stored: int = 12,
    rescale_slope: float = 1.0,
    rescale_intercept: float = 0.0,
    pixel_spacing: float | None = None,
    class_name: str = "Nodule/Mass",
    class_id: int = 8,
    overwrite: bool = False,
    second_class_name: str | None = None,
    second_class_id: int | None = None,
    second_prevalence: float = 0.3,
    second_lesion_radius: Sequence[float] = (0.12, 0.18),
    second_lesion_contrast: Sequence[float] = (0.16, 0.26),
) -> Path:
    """Generate (once) the synthetic shortcut chest X-ray set in VinDr-CXR format and return its folder.

    Everything is a deterministic function of the arguments: the same call writes byte-identical
    files. When ``root/manifest.json`` already records the same arguments and all files exist,
    nothing is written (generate on first run). Counts are exact (``round`` below rounds half up):
    a split of ``n`` images has ``round(prevalence * n)`` positives, ``round(marker_prob_positive *
    n_pos)`` of them with the marker, ``round(marker_prob_negative * n_neg)`` marked negatives
    (``shifted_marker_prob`` in ``test_shifted``) and ``round(monochrome1_fraction * n)`` MONOCHROME1
    files.

    Kinds of shortcut, for robustness studies: ``marker_kind`` picks what the marker looks like and where
    it sits, ``marker_prob_positive`` / ``marker_prob_negative`` how strongly it goes with the label (0.9 /
    0.1 for a 90/10 correlation) and ``shifted_marker_prob`` how ``test_shifted`` breaks it: one number
    for both classes (independent of the label, the default 0.5) or ``[p_positive, p_negative]``
    (``[0.05, 0.95]`` reverses the correlation). On a bundle command line:
    ``--synthetic#marker_kind ruler --synthetic#shifted_marker_prob "[0.05, 0.95]"``. The manifest
    records ``shifted_marker_prob`` (the number, or the pair as a list) and ``marker_kind`` unless it is "corner" (so sets generated
    before these options existed are still recognised).

    A second finding (multi-label sets): ``second_class_name`` (e.g. "Consolidation", VinDr class_id 4) adds one
    opacity of that class to ``round(second_prevalence * m)`` images of each of the four groups (first label x
    marker) of ``m`` images of a split, at random within the group. So the second finding is present independently
    of the first (images have both, one or none, in exact proportions) and of the marker: the marker goes with the
    first finding only, and the second class, with no shortcut, is a control. Its opacity is larger, elongated,
    irregular and patchy, its plateau about as bright as a nodule's centre (see ``n_opacities`` of
    :func:`~monai_explain.apps.synthetic.draw_chest_xray`), drawn with a random generator of its own: the first finding's labels, markers, image ids and every image are those
    of the single-finding set, plus the opacity on the images that have it. The manifest records the ``second_*`` arguments only when a second finding is drawn (sets generated before
    they existed are still recognised); images.csv then has two more columns, ``second_label`` and
    ``n_second_lesions``, and the manifest's counts ``second_positive``, ``both_positive`` and ``second_marker``.

    ``train.csv`` has one row per box per reader; a reader who saw nothing (every reader of an image without
    findings) writes one "No finding" row (class_id 14, empty coordinates). Coordinates are
    whole pixels of the written DICOM, x = column and y = row, boxes half-open in pixel edges
    (``x_max`` = last lesion column + 1). Each of the ``n_readers`` readers (rad_ids drawn from
    R1..R17) sees every lesion, except with probability ``reader_miss_prob`` (at least one reader
    always marks a positive image), and likewise every second-finding opacity (with its own draw, at least one reader
    marks it); each box is the tight lesion box through :func:`jitter_box`. A reader's rows list the first finding's
    boxes, then the second's.

    Args:
        root: output folder (created).
        n_train: images in the ``train`` split.
        n_val: images in ``val``.
        n_test: images in ``test`` (in distribution: same marker correlation as train).
        n_test_shifted: images in ``test_shifted`` (marker correlation set by ``shifted_marker_prob``).
        image_size: int or (rows, columns) of the written DICOMs.
        seed: random seed.
        prevalence: fraction of positive images per split.
        marker_prob_positive: p(marker | positive) in train / val / test.
        marker_prob_negative: p(marker | negative) in train / val / test.
        shifted_marker_prob: p(marker) in test_shifted: a number for both classes (independent of the
            label), or a pair ``[p(marker | positive), p(marker | negative)]``, e.g. ``[0.05, 0.95]`` for a
            reversed correlation (JSON text such as ``"[0.05, 0.95]"`` is accepted too).
        n_readers: readers (rad_ids) per image, 1 to 17.
        box_jitter: reader box edge noise, fraction of the box side.
        box_enlarge: reader box scale factor (>= 1 for loose boxes).
        reader_miss_prob: probability that a reader misses all lesions of a positive image.
        max_lesions: positives get 1 .. max_lesions lesions (uniform).
        lesion_radius: (min, max) lesion semi-axis as a fraction of the smaller image side.
        lesion_contrast: (min, max) lesion peak intensity (image range [0, 1]).
        marker_kind: the spurious marker, a :class:`~monai_explain.apps.synthetic.MarkerKind`: "corner" (a
            bright square with a dark "L" / "R" in a top corner), "ruler" (a bright bar with ticks along the
            bottom, left or right edge, over 30-55% of it) or "text" (3-6 bright stroke characters near the top
            or bottom edge, off the lungs). Its tight box goes to images.csv, truth_boxes.csv and
            confounder_boxes.csv; images.csv's ``marker_letter`` holds the letter (corner), the characters
            (text) or nothing (ruler).
        marker_size: marker size as a fraction of the smaller image side, at least 5 pixels: the side of the
            corner square, the thickness of the ruler across its edge, the character height of the text tag
            (rounded down to a multiple of 5 pixels).
        monochrome1_fraction: fraction of files stored as MONOCHROME1 (inverted stored values).
        bits_stored: DICOM BitsStored (values are unsigned 16-bit).
        rescale_slope: DICOM RescaleSlope.
        rescale_intercept: DICOM RescaleIntercept.
        pixel_spacing: mm per pixel; None = 360 mm over the larger image side.
        class_name: finding name written in train.csv.
        class_id: finding id written in train.csv (VinDr: "Nodule/Mass" = 8).
        overwrite: regenerate when ``root`` holds a set made with other arguments (else raise).
        second_class_name: the second finding's name in train.csv, or None (default) for a single finding class.
        second_class_id: its class_id in train.csv; None = its VinDr-CXR id (e.g. 4 for "Consolidation").
        second_prevalence: fraction of images with the second finding, in each (first label x marker) group.
        second_lesion_radius: (min, max) long semi-axis of the second finding's opacity, fraction of the smaller
            image side (the short semi-axis is 40-60% of it).
        second_lesion_contrast: (min, max) plateau intensity of the opacity (image range [0, 1]).

    Returns:
        ``Path(root)``.

    Raises:
        ValueError: a bad argument (named; also a marker too large for the image), or ``root`` holds a
            set made with other arguments and ``overwrite`` is False.

    Example:
        >>> root = generate_shortcut_cxr("/tmp/shortcut_cxr", n_train=8, n_val=4, n_test=4, n_test_shifted=4,
        ...                              image_size=64)
        >>> sorted(p.name for p in root.iterdir())[:3]
        ['.monai_explain_synthetic', 'confounder_boxes.csv', 'images.csv']

        In a bundle config (``imports``: ``["$import monai_explain", "$import monai_explain.apps.synthetic"]``):
        ``"dataset_dir": "$monai_explain.apps.synthetic.generate_shortcut_cxr(@data_root)"``.
    """
    rows, cols = as_image_size(image_size)
    sizes = {"train": n_train, "val": n_val, "test": n_test, "test_shifted": n_test_shifted}
    for name, n in sizes.items():
        if int(n) != n or n < 0:
            raise ValueError(f"n_{name} must be a non-negative int, got {n!r}.")
    (shifted_pos, shifted_neg), shifted_recorded = _shifted_marker_probs(shifted_marker_prob)
    kind = parse_marker_kind(marker_kind)
    if not marker_size > 0:
        raise ValueError(f"marker_size must be > 0, got {marker_size}.")
    draw_marker(np.zeros((rows, cols)), np.random.default_rng(0), kind, marker_size)  # fits? (raises before writing)
    for name, value in (
        ("prevalence", prevalence),
        ("marker_prob_positive", marker_prob_positive),
        ("marker_prob_negative", marker_prob_negative),
        ("reader_miss_prob", reader_miss_prob),
        ("monochrome1_fraction", monochrome1_fraction),
    ):
        _check_fraction(name, value)
    if not 1 <= n_readers <= _N_RAD_IDS:
        raise ValueError(f"n_readers must be in [1, {_N_RAD_IDS}], got {n_readers}.")
    if max_lesions < 1:
        raise ValueError(f"max_lesions must be >= 1, got {max_lesions}.")
    if box_jitter < 0 or box_enlarge <= 0:
        raise ValueError(f"box_jitter must be >= 0 and box_enlarge > 0, got {box_jitter}, {box_enlarge}.")
    if class_id == NO_FINDING_CLASS_ID or class_name == NO_FINDING:
        raise ValueError(f"class_name/class_id must differ from {NO_FINDING!r}/{NO_FINDING_CLASS_ID}.")
    second = _second_finding(
        class_name, class_id, second_class_name, second_class_id, second_prevalence, second_lesion_radius,
        second_lesion_contrast,
    )  # fmt: skip
    spacing = float(pixel_spacing) if pixel_spacing is not None else 360.0 / max(rows, cols)

    params = {
        "n_train": n_train, "n_val": n_val, "n_test": n_test, "n_test_shifted": n_test_shifted,
        "image_size": [rows, cols], "seed": seed, "prevalence": prevalence,
        "marker_prob_positive": marker_prob_positive, "marker_prob_negative": marker_prob_negative,
        "shifted_marker_prob": shifted_recorded, "n_readers": n_readers, "box_jitter": box_jitter,
        "box_enlarge": box_enlarge, "reader_miss_prob": reader_miss_prob, "max_lesions": max_lesions,
        "lesion_radius": list(lesion_radius), "lesion_contrast": list(lesion_contrast),
        "marker_size": marker_size, "monochrome1_fraction": monochrome1_fraction, "bits_stored": bits_stored,
        "rescale_slope": rescale_slope, "rescale_intercept": rescale_intercept, "pixel_spacing": spacing,
        "class_name": class_name, "class_id": class_id,
    }  # fmt: skip
    if kind != MarkerKind.CORNER:  # absent for the default: manifests of earlier sets still match
        params["marker_kind"] = kind.value
    if second:  # likewise absent without a second finding
        params.update(second)
    root = Path(root)
    check_generator_folder(root)
    splits_path = root / "splits.json"
    listed = read_listing(splits_path, overwrite)
    fixed = ["train.csv", "splits.json", "images.csv", "truth_boxes.csv", "confounder_boxes.csv"]
    if is_generated(root, _KIND, SHORTCUT_CXR_VERSION, params, fixed + [f"train/{i}.dicom" for i in listed], overwrite):
        logger.info("shortcut CXR set already in %s (%d images): generation skipped.", root, len(listed))
        return root

    start = time.perf_counter()
    mark_generator_folder(root, _KIND)
    (root / "train").mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").unlink(missing_ok=True)  # an interrupted run must not look complete
    box_rows: list[list[str]] = []
    truth_rows: list[list[str]] = []
    confounder_rows: list[list[str]] = []
    image_rows: list[list[str]] = []
    splits: dict[str, str] = {}
    counts: dict[str, dict[str, int]] = {}
    for k, split in enumerate(SHORTCUT_CXR_SPLITS):
        n = int(sizes[split])
        arng = np.random.default_rng([seed, k, 13])
        labels = exact_assignment(arng, n, prevalence)
        p_pos, p_neg = (
            (shifted_pos, shifted_neg) if split == "test_shifted" else (marker_prob_positive, marker_prob_negative)
        )
        markers = np.zeros(n, dtype=bool)
        markers[labels] = exact_assignment(arng, int(labels.sum()), p_pos)
        markers[~labels] = exact_assignment(arng, int((~labels).sum()), p_neg)
        mono1 = exact_assignment(arng, n, monochrome1_fraction)
        counts[split] = {
            "images": n,
            "positive": int(labels.sum()),
            "marker_positive": int((labels & markers).sum()),
            "marker_negative": int((~labels & markers).sum()),
            "monochrome1": int(mono1.sum()),
        }
        seconds = np.zeros(n, dtype=bool)
        if second:  # its own generator: the draws above are those of a single-finding set
            srng = np.random.default_rng([seed, k, 15])
            for group in (labels & markers, labels & ~markers, ~labels & markers, ~labels & ~markers):
                seconds[group] = exact_assignment(srng, int(group.sum()), second["second_prevalence"])
            counts[split].update(
                second_positive=int(seconds.sum()),
                both_positive=int((labels & seconds).sum()),
                second_marker=int((seconds & markers).sum()),
            )
        for i in range(n):
            irng = np.random.default_rng([seed, k, i, 11])
            rrng = np.random.default_rng([seed, k, i, 12])
            image_id = irng.bytes(16).hex()
            if image_id in splits:
                raise ValueError(f"image_id collision for {image_id} (split {split}, index {i}); change the seed.")
            splits[image_id] = split
            n_les = int(irng.integers(1, max_lesions + 1)) if labels[i] else 0
            n_les2 = int(seconds[i])
            ph = draw_chest_xray(
                irng,
                (rows, cols),
                n_lesions=n_les,
                marker=bool(markers[i]),
                marker_kind=kind,
                lesion_radius=tuple(lesion_radius),
                lesion_contrast=tuple(lesion_contrast),
                marker_size=marker_size,
                n_opacities=n_les2,
                opacity_radius=tuple(second_lesion_radius),
                opacity_contrast=tuple(second_lesion_contrast),
                opacity_rng=np.random.default_rng([seed, k, i, 16]),
            )
            photometric = "MONOCHROME1" if mono1[i] else "MONOCHROME2"
            write_xray_dicom(
                root / "train" / f"{image_id}.dicom",
                ph.image,
                photometric=photometric,
                bits_stored=bits_stored,
                rescale_slope=rescale_slope,
                rescale_intercept=rescale_intercept,
                pixel_spacing=spacing,
                uid_entropy=[str(seed), image_id],
                patient_id=image_id,
            )
            rad_ids = [f"R{r}" for r in sorted(rrng.choice(_N_RAD_IDS, n_readers, replace=False) + 1)]
            sees = _readers_seeing(rrng, n_readers, reader_miss_prob, n_les)
            sees2 = _readers_seeing(rrng, n_readers, reader_miss_prob, n_les2)
            findings = [(class_name, class_id, ph.lesion_boxes)]
            if second:
                findings.append((second_class_name, second["second_class_id"], ph.opacity_boxes))
            for r, rad_id in enumerate(rad_ids):
                if not (sees[r] or sees2[r]):
                    box_rows.append([image_id, NO_FINDING, str(NO_FINDING_CLASS_ID), rad_id, "", "", "", ""])
                    continue
                for (name, cid, boxes), seen in zip(findings, (sees[r], sees2[r])):
                    for box in boxes if seen else ():
                        jb = jitter_box(rrng, box, box_jitter, box_enlarge, (rows, cols))
                        box_rows.append([image_id, name, str(cid), rad_id, *map(_fmt, jb)])
            for box in ph.lesion_boxes:
                truth_rows.append([image_id, "lesion", *map(str, box)])
            for box in ph.opacity_boxes:
                truth_rows.append([image_id, "second_lesion", *map(str, box)])
            mbox = [""] * 4
            if ph.marker_box is not None:
                mbox = [str(v) for v in ph.marker_box]
                truth_rows.append([image_id, "marker", *mbox])
                confounder_rows.append([image_id, *mbox])
            image_rows.append(
                [image_id, split, str(int(labels[i])), str(int(markers[i])), ph.marker_letter or "", photometric,
                 str(n_les), *mbox] + ([str(int(seconds[i])), str(n_les2)] if second else [])
            )  # fmt: skip

    # stale files of a previous parameter set (overwrite=True)
    for old_id in set(listed) - set(splits):
        (root / "train" / f"{old_id}.dicom").unlink(missing_ok=True)
    write_csv(root / "train.csv", VINDR_COLUMNS, box_rows)
    write_csv(
        root / "images.csv",
        ("image_id", "split", "label", "marker", "marker_letter", "photometric", "n_lesions",
         "marker_x_min", "marker_y_min", "marker_x_max", "marker_y_max")
        + (("second_label", "n_second_lesions") if second else ()),
        image_rows,
    )  # fmt: skip
    write_csv(root / "truth_boxes.csv", ("image_id", "object", "x_min", "y_min", "x_max", "y_max"), truth_rows)
    write_csv(root / "confounder_boxes.csv", ("image_id", "x_min", "y_min", "x_max", "y_max"), confounder_rows)
    splits_path.write_text(json.dumps(splits, indent=1) + "\n")
    write_manifest(root, _KIND, SHORTCUT_CXR_VERSION, params, counts)
    logger.info(
        "wrote %d synthetic shortcut CXR images to %s in %.1f s: %s",
        len(splits), root, time.perf_counter() - start, counts,
    )  # fmt: skip
    return root


def load_splits(root: str | os.PathLike) -> dict[str, str]:
    """Read ``<root>/splits.json``: ``{image_id: split}``.

    Args:
        root: a folder written by :func:`generate_shortcut_cxr`.

    Returns:
        dict image_id -> one of ``SHORTCUT_CXR_SPLITS``.

    Raises:
        FileNotFoundError: no splits.json.
        ValueError: an unknown split name (the image_id is named).
    """
    path = Path(root) / "splits.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run generate_shortcut_cxr({str(root)!r}) first.")
    splits = json.loads(path.read_text())
    for image_id, split in splits.items():
        if split not in SHORTCUT_CXR_SPLITS:
            raise ValueError(f"{path}: image {image_id} has unknown split {split!r}.")
    return splits
