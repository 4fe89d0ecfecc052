"""Gradient combination from the Gram matrix: PCGrad against closed forms and a direct implementation, every
method against torchjd's own aggregator on the full matrix, and the numerical edge cases."""
import pytest
import torch

from mtlib import surgery
from mtlib.surgery import NonFiniteGradient, combine, gram_matrix, make_weighting, parse_options, weighted_sum, weights


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
    with pytest.raises(ValueError, match="sum, pcgrad, upgrad, mgda, cagrad, imtl_g, aligned_mtl, dualproj, gradvac"):
        combine(torch.zeros(2, 3), "graddrop")
    with pytest.raises(ValueError, match="sum, mean"):
        combine(torch.zeros(2, 3), "pcgrad", "max")
    with pytest.raises(ValueError, match="applies to sum and pcgrad"):
        combine(torch.ones(2, 3), "upgrad", "mean")


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


# ------------------------------------------------------------------ every method against torchjd (the peer)
def peer(method: str, options: dict | None = None):
    """torchjd's own aggregator for `method`: it builds the Gramian of the full matrix itself."""
    from torchjd import aggregation as A
    o = surgery.parse_options(method, options)
    return {"pcgrad": lambda: A.PCGrad(), "upgrad": lambda: A.UPGrad(), "mgda": lambda: A.MGDA(**o),
            "cagrad": lambda: A.CAGrad(**o), "imtl_g": lambda: A.IMTLG(),
            "aligned_mtl": lambda: A.AlignedMTL(**o), "dualproj": lambda: A.DualProj(),
            "gradvac": lambda: A.GradVac(**o)}[method]()


def matrix(kind: str, t: int, seed: int) -> torch.Tensor:
    g = torch.randn(t, 40, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    if kind == "conflicting":            # every task conflicts with task 0
        for i in range(1, t):
            g[i] -= (1.5 + (g[0] @ g[i]) / (g[0] @ g[0])) * g[0]
    elif kind == "parallel":             # all rows are positive multiples of one direction
        g = torch.tensor([1.0, 0.3, 2.5][:t], dtype=torch.float64)[:, None] * g[0]
    elif kind == "zero row":
        g[-1] = 0.0
    return g


PEERED = ("pcgrad", *surgery.WEIGHTINGS)
KINDS = ("random", "conflicting", "parallel", "zero row")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("t", [1, 2, 3])
@pytest.mark.parametrize("method", PEERED)
def test_every_method_equals_torchjds_aggregator_on_the_full_matrix(method, t, kind):
    if kind == "conflicting":
        g0 = matrix(kind, t, t)
        assert all(g0[0] @ g0[i] < 0 for i in range(1, t))
    aggregator = peer(method)     # one each, used for three steps: GradVac's state carries over, as in training
    weighting = make_weighting(method) if method in surgery.WEIGHTINGS else None
    for seed in range(3):
        g = matrix(kind, t, 10 * t + seed)
        torch.manual_seed(seed)              # torchjd's PCGrad/GradVac draw their orders from the global RNG ...
        expected = aggregator(g)
        got, stats = combine(g, method, generator=torch.Generator().manual_seed(seed),   # ... mtlib from its own
                             weighting=weighting)
        scale = g.norm(dim=1).max().item()
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12 * scale)
        assert stats.norm_combined == pytest.approx(expected.norm().item(), rel=1e-9, abs=1e-12 * scale)


def test_gradvac_state_carries_over_steps_and_leaves_the_global_rng_alone():
    """GradVac's EMA target changes the later steps' weights; its random orders come from mtlib's generator."""
    steps = [matrix("conflicting", 3, s) for s in range(4)]
    kept, fresh = make_weighting("gradvac"), []
    gen = torch.Generator().manual_seed(7)
    torch.manual_seed(123)
    global_state = torch.get_rng_state()
    with_state = [weights(g @ g.T, "gradvac", generator=gen, weighting=kept)[0] for g in steps]
    assert torch.equal(torch.get_rng_state(), global_state)
    fresh = [weights(g @ g.T, "gradvac", generator=torch.Generator().manual_seed(7), weighting=make_weighting("gradvac"))[0]
             for g in steps]
    assert torch.equal(with_state[0], fresh[0]) and not torch.allclose(with_state[-1], fresh[-1])


@pytest.mark.parametrize("method", surgery.WEIGHTINGS)
def test_weightings_report_each_tasks_share_of_the_update(method):
    g = matrix("conflicting", 3, 5)
    w, stats = weights(g @ g.T, method, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(stats.norm_after, w.abs() * g.norm(dim=1))
    assert stats.projections == 0 and stats.conflicts == 2


# ------------------------------------------------------------------ options
def test_options_have_paper_defaults_and_can_be_set():
    assert parse_options("cagrad") == {"c": 0.4} and make_weighting("cagrad").c == 0.4
    assert make_weighting("cagrad", "c=0.25").c == 0.25
    assert parse_options("mgda", "max_iters=20, epsilon=1e-4") == {"epsilon": 1e-4, "max_iters": 20}
    assert make_weighting("gradvac", {"beta": 0.01}).beta == 0.01
    g = matrix("conflicting", 3, 2)
    got, _ = combine(g, "cagrad", weighting=make_weighting("cagrad", "c=0.9"))
    torch.testing.assert_close(got, peer("cagrad", {"c": 0.9})(g), rtol=1e-9, atol=1e-12)
    assert not torch.allclose(got, combine(g, "cagrad")[0])


@pytest.mark.parametrize("method,options,message", [
    ("cagrad", "alpha=0.4", r"unknown option\(s\) alpha for combine=cagrad; valid: c \(default 0.4\)"),
    ("upgrad", "c=1", "unknown option.*valid: none"),
    ("sum", "c=1", "unknown option.*valid: none"),
    ("mgda", "max_iters=2.5", "max_iters='2.5'.*expected int"),
    ("cagrad", "c=big", "c='big'.*expected float"),
    ("cagrad", "c", "not name=value"),
    ("cagrad", "c=-1", "c must be non-negative"),
    ("gradvac", "beta=2", "beta"),
    ("aligned_mtl", "scale_mode=max", "choose one of min, median, rmse")])
def test_bad_options_fail_naming_the_valid_ones(method, options, message):
    with pytest.raises(ValueError, match=message):
        make_weighting(method, options) if method in surgery.WEIGHTINGS else parse_options(method, options)


# ------------------------------------------------------------------ numerical edge cases, every method
def test_gram_is_fp64_from_fp64_inputs_so_fp16_cannot_overflow():
    g16 = torch.tensor([[-200.0, 10, 10], [300.0, 10, 10]], dtype=torch.float16)
    assert torch.isinf(g16 @ g16.T).any()                       # the product in fp16 overflows (300^2 > 65504)
    exact = torch.tensor([[40200.0, -59800], [-59800, 90200]], dtype=torch.float64)
    assert torch.equal(gram_matrix([g16]), exact) and torch.equal(gram_matrix([g16.bfloat16()]), exact)
    for method in surgery.METHODS:
        w16, _ = weights(gram_matrix([g16]), method, generator=torch.Generator().manual_seed(0))
        w64, _ = weights(gram_matrix([g16.double()]), method, generator=torch.Generator().manual_seed(0))
        assert torch.equal(w16, w64), method
        got, _ = combine(g16, method, generator=torch.Generator().manual_seed(0))
        assert got.dtype == torch.float16 and torch.isfinite(got).all(), method    # the weighted sum stays in fp16
        torch.testing.assert_close(got.double(), weighted_sum(g16.double(), w64), rtol=0, atol=1e-3 * 300)


def test_gram_in_chunks_equals_one_product(monkeypatch):
    g = torch.randn(3, 1000, generator=torch.Generator().manual_seed(1))
    whole = gram_matrix([g])
    monkeypatch.setattr(surgery, "GRAM_CHUNK", 64)
    torch.testing.assert_close(gram_matrix([g[:, :300], g[:, 300:]]), whole, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(whole, g.double() @ g.double().T, rtol=1e-12, atol=1e-12)


def test_cosines_from_column_blocks_are_the_flat_gradients_cosines():
    """02's noise floor: a Gram matrix built parameter by parameter gives the cosines of the concatenated gradients,
    by hand for (1, 0), (0, 1), (1, 1) and (0, 0) (a zero gradient: cosine 0, not nan), and on random blocks."""
    g = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    cos = surgery.cosines(gram_matrix([g[:, :1], g[:, 1:]]))
    h = 2 ** -0.5
    assert torch.allclose(cos, torch.tensor([[1, 0, h, 0], [0, 1, h, 0], [h, h, 1, 0], [0, 0, 0, 0]], dtype=torch.float64))
    blocks = [torch.randn(3, n, generator=torch.Generator().manual_seed(n)) for n in (5, 7000, 1)]
    flat = torch.cat(blocks, dim=1).double()
    expected = flat @ flat.T / flat.norm(dim=1).outer(flat.norm(dim=1))
    assert torch.allclose(surgery.cosines(gram_matrix(blocks)), expected, atol=1e-12)


def test_pcgrad_clamp_is_relative_to_the_gradients_scale():
    """|g_2|^2 = 2e-14 is tiny, but g_2 is a valid gradient: the projection of g_1 must be complete."""
    g = torch.tensor([[1.0, 0], [-1e-7, 1e-7]], dtype=torch.float64)
    coef, projections = surgery.pcgrad_coefficients(g @ g.T, torch.Generator().manual_seed(0))
    torch.testing.assert_close(coef[0] @ g, torch.tensor([0.5, 0.5], dtype=torch.float64), rtol=1e-12, atol=0)
    combined, stats = combine(g, "pcgrad")
    torch.testing.assert_close(combined, torch.tensor([0.5, 0.5 + 1e-7], dtype=torch.float64), rtol=1e-12, atol=0)
    assert projections == 2 and stats.cosine[0, 1].item() == pytest.approx(-2 ** -0.5)
    torch.manual_seed(0)
    torch.testing.assert_close(combined, peer("pcgrad")(g), rtol=1e-12, atol=0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("method", surgery.METHODS)
def test_a_non_finite_task_gradient_is_an_error_naming_the_task(method, bad):
    g = torch.tensor([[1.0, 2, 3], [0.5, bad, 1], [1.0, 0, -1]])
    with pytest.raises(NonFiniteGradient, match="task 1's gradient has a nan or inf entry") as err:
        combine(g, method, generator=torch.Generator().manual_seed(0))
    assert err.value.task == 1
