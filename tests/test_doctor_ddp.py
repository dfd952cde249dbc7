"""check_training and watch on a DistributedDataParallel model: gloo, two processes on CPU.
(Kept apart from the Lightning test so the spawned processes do not import Lightning.)"""

from __future__ import annotations

import json
import socket
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from seqrep.doctor import check_training, watch
from seqrep.doctor.gallery import REPORTED_BUGS
from seqrep.doctor.toy import make_toy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        results = {}
        case = next(c for c in REPORTED_BUGS if c.name == "softmax_into_cross_entropy")
        for fixed in (False, True):
            setup = case.build(fixed)
            model = torch.nn.parallel.DistributedDataParallel(setup.model)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            toy = make_toy(16, full=True, seed=rank)
            report = check_training(model, (toy.x, toy.y), optimizer=optimizer)
            results[str(fixed)] = [f.kind for f in report.findings]
            with warnings.catch_warnings(), watch(model, optimizer, on_finding="record") as w:
                warnings.simplefilter("ignore")
                for _ in range(3):  # a real DDP step: gradients all-reduced across the two processes
                    optimizer.zero_grad()
                    torch.nn.functional.cross_entropy(model(toy.x), toy.y).backward()
                    optimizer.step()
            results[f"watch {fixed}"] = [f.kind for f in w.findings]
        with open(f"{out}/{rank}.json", "w") as f:
            json.dump(results, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_model_on_two_gloo_processes(tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        results = json.loads((tmp_path / f"{rank}.json").read_text())
        assert results["False"] == ["loss_input"] and results["True"] == []
        assert results["watch True"] == []
