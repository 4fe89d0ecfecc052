"""PCGrad (Yu et al., 2020) from the Gram matrix, checked against closed forms and a direct implementation."""
import pytest
import torch

from mtlib.surgery import combine, gram_matrix, weighted_sum, weights


def reference_pcgrad(grads: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Yu et al.'s algorithm written directly on the vectors (same random order as mtlib)."""
    projected = []
    for i in range(len(grads)):
        g = grads[i].clone()
        for j in torch.randperm(len(grads), generator=generator).tolist():
            if j != i and g @ grads[j] < 0:
                g = g - (g @ grads[j]) / (grads[j] @ grads[j]) * grads[j]
        projected.append(g)
    return torch.stack(projected)


def test_closed_form_two_conflicting_tasks():
    grads = torch.tensor([[-4.0, 1, 1], [6.0, 1, 1]])
    combined, stats = combine(grads, "pcgrad")
    assert torch.allclose(combined, torch.tensor([0.5848, 3.8012, 3.8012]), atol=1e-4)
    assert stats.conflicts == 1 and stats.projections == 2
    assert stats.cosine[0, 1].item() == pytest.approx(-22 / (18 ** 0.5 * 38 ** 0.5))
    # |g1 - (g1.g2/|g2|^2) g2|^2 = |g1|^2 - (g1.g2)^2/|g2|^2
    assert stats.norm_after[0].item() == pytest.approx((18 - 22 ** 2 / 38) ** 0.5)


def test_mean_reduction_is_sum_over_tasks():
    grads = torch.tensor([[-4.0, 1, 1], [6.0, 1, 1]])
    total, _ = combine(grads, "pcgrad", "sum")
    mean, _ = combine(grads, "pcgrad", "mean")
    assert torch.allclose(mean, total / 2)


def test_non_conflicting_gradients_sum_plainly():
    grads = torch.tensor([[1.0, 2, 0], [0.5, 0, 3], [2.0, 1, 1]])
    combined, stats = combine(grads, "pcgrad")
    assert torch.allclose(combined, grads.sum(0))
    assert stats.conflicts == 0 and stats.projections == 0
    assert torch.allclose(stats.norm_after, stats.norm_before.to(stats.norm_after.dtype))


def test_sum_ignores_conflicts_but_reports_them():
    grads = torch.tensor([[-4.0, 1, 1], [6.0, 1, 1]])
    combined, stats = combine(grads, "sum")
    assert torch.allclose(combined, grads.sum(0)) and stats.conflicts == 1 and stats.projections == 0


@pytest.mark.parametrize("seed", range(20))
def test_projected_gradients_never_conflict_with_the_other_original(seed):
    g = torch.Generator().manual_seed(seed)
    grads = torch.randn(2, 50, generator=g, dtype=torch.float64)
    grads[1] -= 2 * (grads[0] @ grads[1]).abs() / (grads[0] @ grads[0]) * grads[0]   # force a conflict
    proj = reference_pcgrad(grads, torch.Generator().manual_seed(seed))
    assert proj[0] @ grads[1] >= -1e-9 and proj[1] @ grads[0] >= -1e-9
    combined, _ = combine(grads, "pcgrad", generator=torch.Generator().manual_seed(seed))
    assert torch.allclose(combined, proj.sum(0))


@pytest.mark.parametrize("seed", range(10))
def test_three_tasks_match_the_direct_algorithm(seed):
    g = torch.Generator().manual_seed(100 + seed)
    grads = torch.randn(3, 40, generator=g, dtype=torch.float64)
    expected = reference_pcgrad(grads, torch.Generator().manual_seed(seed)).sum(0)
    combined, stats = combine(grads, "pcgrad", generator=torch.Generator().manual_seed(seed))
    assert torch.allclose(combined, expected, atol=1e-10)
    assert stats.conflicts == int(((grads @ grads.T).triu(1) < 0).sum())


def test_zero_gradient_is_safe():
    grads = torch.tensor([[0.0, 0, 0], [1.0, -1, 2]])
    combined, stats = combine(grads, "pcgrad")
    assert torch.isfinite(combined).all() and torch.allclose(combined, grads.sum(0))
    assert torch.isfinite(stats.cosine).all()


def test_invalid_choices_are_listed():
    with pytest.raises(ValueError, match="sum, pcgrad"):
        combine(torch.zeros(2, 3), "graddrop")
    with pytest.raises(ValueError, match="sum, mean"):
        combine(torch.zeros(2, 3), "pcgrad", "max")


def test_column_blocks_give_the_same_gram_weights_and_update():
    """G split into column blocks (as the training loop keeps the embedding rows apart) changes nothing."""
    g = torch.randn(3, 11, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.allclose(gram_matrix([g[:, :4], g[:, 4:]]), g @ g.T)
    w, stats = weights(gram_matrix([g[:, :4], g[:, 4:]]), "pcgrad", generator=torch.Generator().manual_seed(0))
    update = torch.cat([weighted_sum(g[:, :4], w), weighted_sum(g[:, 4:], w)])
    expected, _ = combine(g, "pcgrad", generator=torch.Generator().manual_seed(0))
    assert torch.allclose(update, expected) and stats.norm_combined == pytest.approx(expected.norm().item())
    out = torch.empty(11, dtype=torch.float64)
    assert weighted_sum(g, torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64), out=out) is out
    assert torch.allclose(out, g[0] - 2 * g[1] + 0.5 * g[2])
