"""check_training on the stock architectures people train (seqrep.doctor.zoo: transformers,
timm, plain torch; built from configs, no downloads): no crash, no finding on a clean model,
and every injected bug named with its kind and culprit, for every position of the unpadded
sample in the batch. The fast set checks each architecture once; the slow set every seed and
batch order, every bug with the unpadded sample first and the padding bugs in every order
(benchmarks/doctor.py runs every bug in every order)."""

from __future__ import annotations

import importlib.util
import os
import warnings

import pytest

from seqrep.doctor import check_training
from seqrep.doctor.zoo import ORDERS, ZOO, named

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("transformers")


def _available(arch) -> bool:
    return arch.family != "timm" or importlib.util.find_spec("timm") is not None


def _check(case):
    args, kwargs = case.arguments()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return check_training(case.model, *args, **kwargs)


def _no_crash(report) -> None:
    crashed = {k: v for k, v in report.skipped.items() if "raised" in v}
    assert not crashed, crashed


def _arch(arch):
    if not _available(arch):
        pytest.skip("timm is not installed (pip install seqrep[test])")
    return arch


def test_the_zoo_covers_the_stock_families():
    assert len(ZOO) >= 25 and len({a.name for a in ZOO}) == len(ZOO)
    assert {a.family for a in ZOO} == {"transformers", "timm", "torch"}
    assert sum(bool(a.padding_bugs) for a in ZOO) >= 12


@pytest.mark.parametrize("arch", ZOO, ids=lambda a: a.name)
def test_clean_stock_model_gets_no_finding(arch):
    report = _check(_arch(arch).case(None, seed=0, order="first"))
    _no_crash(report)
    assert report.ok, report.verdict()


@pytest.mark.parametrize("arch", [pytest.param(a, marks=[] if a.name.startswith("BERT sequence") else pytest.mark.slow)
                                  for a in ZOO if a.padding_bugs], ids=lambda a: a.name)
def test_padding_leak_named_with_the_unpadded_sample_first(arch):
    """The order that crashed the padding check (IndexError in doctor/mixing.py); fast on BERT."""
    for bug in arch.padding_bugs:
        case = arch.case(bug, seed=0, order="first")
        report = _check(case)
        _no_crash(report)
        assert named(arch, case, bug, report.findings), f"{bug}: {report.verdict()}"


@pytest.mark.slow
@pytest.mark.parametrize("arch", ZOO, ids=lambda a: a.name)
def test_every_seed_order_and_bug(arch):
    _arch(arch)
    assert len(arch.bug_names()) >= 7
    for order in ORDERS:
        for seed in (0, 1, 2):
            report = _check(arch.case(None, seed=seed, order=order))
            _no_crash(report)
            assert report.ok, f"seed {seed}, {order}: {report.verdict()}"
        for bug in arch.bug_names():
            if order != "first" and bug not in arch.padding_bugs:
                continue  # the order moves only the padding probes (benchmarks/doctor.py runs all)
            case = arch.case(bug, seed=0, order=order)
            report = _check(case)
            _no_crash(report)
            assert named(arch, case, bug, report.findings), f"{bug}, {order}: {report.verdict()}"
