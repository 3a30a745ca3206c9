"""Contrastive losses: known values, they fall when optimised, and they agree across processes.

Known values on tiny hand-checked inputs; across two processes they equal the one-process loss
on the global batch.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from pocketear.losses.contrastive import (
    barlow_twins,
    batch_softmax_loss,
    bilinear_logits,
    byol_loss,
    cluster_contrastive,
    cosine_logits,
    info_nce,
    nt_xent,
)

E = math.e
EYE = torch.eye(2)


def test_bilinear_and_cosine_logits_known_values() -> None:
    w = torch.tensor([[0.0, 2.0], [0.0, 0.0]])
    assert float(bilinear_logits(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), w)) == 2
    logits = cosine_logits(torch.tensor([[2.0, 0.0]]), torch.tensor([[3.0, 0.0], [0.0, 1.0]]),
                           temperature=0.5)
    torch.testing.assert_close(logits, torch.tensor([[2.0, 0.0]]))
    assert float(batch_softmax_loss(torch.zeros(2, 2))) == pytest.approx(math.log(2))


def test_info_nce_known_values() -> None:
    assert float(info_nce(EYE, EYE, temperature=1.0)) == pytest.approx(math.log(1 + 1 / E))
    # queue key [-1, 0]: row 0 logits (1, 0, -1), row 1 logits (0, 1, 0)
    want = 0.5 * (-math.log(E / (E + 1 + 1 / E)) - math.log(E / (E + 2)))
    got = info_nce(EYE, 3 * EYE, temperature=1.0, queue=torch.tensor([[-1.0, 0.0]]))
    assert float(got) == pytest.approx(want)
    # without in-batch negatives and an empty queue there is nothing to contrast: loss 0
    assert float(info_nce(EYE, EYE, in_batch=False)) == pytest.approx(0.0)


def test_nt_xent_and_cluster_contrastive_known_values() -> None:
    assert float(nt_xent(EYE, EYE, temperature=1.0)) == pytest.approx(math.log((E + 2) / E))
    loss, entropy = cluster_contrastive(EYE, EYE, temperature=1.0)
    assert float(entropy) == pytest.approx(2 * math.log(2))  # uniform marginals: maximum
    assert float(loss) == pytest.approx(math.log((E + 2) / E))  # entropy gap 0
    # everything in cluster 0: marginal entropy 0, gap 2·log 2 added
    ones = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    loss, entropy = cluster_contrastive(ones, ones, temperature=1.0, entropy_weight=1.0)
    assert float(entropy) == pytest.approx(0.0, abs=1e-6)
    assert float(loss) > 2 * math.log(2)


def test_cluster_contrastive_entropy_term_is_a_flag() -> None:
    """SLICER's official loss computes the entropy but does not add it (add_entropy=False)."""
    g = torch.Generator().manual_seed(0)
    p1, p2 = torch.rand(6, 3, generator=g).softmax(-1), torch.rand(6, 3, generator=g).softmax(-1)
    with_h, h = cluster_contrastive(p1, p2, entropy_weight=0.5)
    without, h_logged = cluster_contrastive(p1, p2, entropy_weight=0.5, add_entropy=False)
    torch.testing.assert_close(without, nt_xent(p1.T, p2.T, 1.0))  # the contrast alone
    torch.testing.assert_close(h_logged, h)  # still computed for the logs
    torch.testing.assert_close(with_h - without, 0.5 * (2 * math.log(3) - h))
    # collapsed assignments: the flag off leaves them unpunished by the entropy term
    ones = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    collapsed, h0 = cluster_contrastive(ones, ones, add_entropy=False)
    assert float(h0) == pytest.approx(0.0, abs=1e-6)
    assert float(collapsed) == pytest.approx(float(nt_xent(ones.T, ones.T)))


def test_byol_loss_known_values() -> None:
    p = torch.tensor([[1.0, 0.0]])
    assert float(byol_loss(p, torch.tensor([[0.0, 3.0]]))) == pytest.approx(2.0)
    assert float(byol_loss(p, 5 * p)) == pytest.approx(0.0)
    assert float(byol_loss(p, -p)) == pytest.approx(4.0)


def test_barlow_twins_known_values() -> None:
    z = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])  # C(z, z) = I
    assert float(barlow_twins(z, z)) == pytest.approx(0.0, abs=1e-4)
    assert float(barlow_twins(z, -z)) == pytest.approx(8.0, rel=1e-4)  # C = -I: 2 × (−2)²
    # C = [[1, 1], [0, 0]]: on-diagonal (1-1)² + (0-1)² = 1, off-diagonal 1² + 0² = 1
    assert float(barlow_twins(z, z[:, [0, 0]], 0.5)) == pytest.approx(1.5, rel=1e-4)


def _loss_fns():
    w = torch.nn.Parameter(torch.eye(8))
    queue = torch.nn.functional.normalize(torch.randn(16, 8), dim=-1)
    return {
        "bilinear": (lambda a, b: batch_softmax_loss(bilinear_logits(a, b, w)), [w]),
        "cosine": (lambda a, b: batch_softmax_loss(cosine_logits(a, b, 0.1)), []),
        "info_nce": (lambda a, b: info_nce(a, b, 0.1, queue=queue), []),
        "cluster": (lambda a, b: cluster_contrastive(a.softmax(-1), b.softmax(-1))[0], []),
        "byol": (byol_loss, []),
        "barlow_twins": (barlow_twins, []),
    }


@pytest.mark.parametrize("name", list(_loss_fns()))
def test_loss_falls_on_random_tensors(name: str) -> None:
    """Two linear maps of a shared random signal plus independent noise.

    Optimising either loss must make the two views agree (and stay spread), so the loss falls.
    """
    torch.manual_seed(0)
    fn, extra = _loss_fns()[name]
    x = torch.randn(32, 8)
    v1, v2 = x + 0.5 * torch.randn(32, 8), x + 0.5 * torch.randn(32, 8)
    f1, f2 = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)
    opt = torch.optim.Adam([*f1.parameters(), *f2.parameters(), *extra], lr=1e-2)
    losses = []
    for _ in range(60):
        loss = fn(f1(v1), f2(v2))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0], f"{name}: {losses[0]:.3f} -> {losses[-1]:.3f}"


# --- two processes ----------------------------------------------------------------------------

def _losses(q, k, p1, p2):
    w = torch.eye(q.shape[1]) * 0.7
    return {
        "bilinear": batch_softmax_loss(bilinear_logits(q, k, w)),
        "info_nce": info_nce(q, k, 0.5),
        "cluster": cluster_contrastive(p1, p2)[0],
        "barlow_twins": barlow_twins(q, k),
    }


def _data():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    p1, p2 = torch.rand(8, 3, generator=g), torch.rand(8, 3, generator=g)
    return q, k, p1 / p1.sum(1, keepdim=True), p2 / p2.sum(1, keepdim=True)


def _worker(rank: int, world: int, init: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    q, k, p1, p2 = (t.chunk(world)[rank].clone().requires_grad_() for t in _data())
    result = {}
    for name, loss in _losses(q, k, p1, p2).items():
        grad = torch.autograd.grad(loss, q, retain_graph=True, allow_unused=True)[0]
        result[name] = (loss.detach(), grad if grad is not None else torch.zeros_like(q))
    torch.save(result, f"{out}.{rank}")
    dist.barrier()  # neither rank tears gloo down while the other still talks to it
    dist.destroy_process_group()


def test_losses_gather_across_two_processes(tmp_path: Path) -> None:
    """Across ranks the losses equal the one-process loss of the global batch, gradients too.

    Instance losses averaged over ranks, and batch-statistics losses on every rank, equal the
    one-process loss of the global batch; each rank's gradient on its own rows is ``world ×`` the
    global gradient (DDP then averages it back).
    """
    world, out = 2, str(tmp_path / "result")
    mp.spawn(_worker, args=(world, f"file://{tmp_path / 'store'}", out), nprocs=world)
    parts = [torch.load(f"{out}.{r}", weights_only=True) for r in range(world)]
    q, k, p1, p2 = _data()
    q.requires_grad_()
    for name, full in _losses(q, k, p1, p2).items():
        per_rank = torch.stack([p[name][0] for p in parts])
        if name in ("bilinear", "info_nce"):
            torch.testing.assert_close(per_rank.mean(), full.detach())
        else:
            torch.testing.assert_close(per_rank, full.detach().expand(world))
        if name != "cluster":  # q does not enter the cluster loss
            (grad,) = torch.autograd.grad(full, q, retain_graph=True)
            got = torch.cat([p[name][1] for p in parts])
            torch.testing.assert_close(got, world * grad, rtol=1e-4, atol=1e-6)
