"""Fixtures shared by more than one test file."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    """Before any test imports lightning, transformers or timm (each imports torchvision when it
    is installed): let torchvision import beside a CPU build of torch (see pyproject.toml)."""
    from seqrep.doctor.zoo import allow_torchvision_without_ops

    allow_torchvision_without_ops()


@pytest.fixture(scope="session")
def executed_05(tmp_path_factory) -> Path:
    """notebooks/05 executed with quick parameters by the runner behind `make notebooks`, once
    per test session (the sharing tests and the offline browser test read it; none writes)."""
    from seqrep.notebooks import run_notebooks

    out = tmp_path_factory.mktemp("executed")
    run_notebooks(["05_live_training"], {"quick": True}, notebooks_dir=ROOT / "notebooks", out_dir=out,
                  log=lambda line: None)
    return out
