import pytest

from mtlib.config import PROFILES, Config, ConfigError


def test_papermill_int_for_float_is_accepted():
    cfg = Config(dropout=0, profile="cpu")
    assert cfg.dropout == 0.0 and isinstance(cfg.dropout, float)


def test_profile_fills_only_what_was_not_set():
    cfg = Config(profile="cpu", lr=3e-5)
    assert cfg.lr == 3e-5 and cfg.batch_size == PROFILES["cpu"]["batch_size"]
    assert cfg.steps_per_epoch == PROFILES["cpu"]["steps_per_epoch"]
    assert Config(profile="paper").steps_per_epoch is None


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("MTLIB_PROFILE", "smoke")
    assert Config().profile == "smoke"


def test_pipeline_decides_head_and_combiner_unless_given():
    assert (Config(profile="cpu").sts_head, Config(profile="cpu").combine) == ("mlp", "sum")
    novel = Config(profile="cpu", pipeline="novel")
    assert (novel.sts_head, novel.combine) == ("cosine", "pcgrad")
    assert Config(profile="cpu", pipeline="novel", combine="sum").combine == "sum"


@pytest.mark.parametrize("name,value,listed", [
    ("pooling", "max", "mean, cls, pooler"), ("combine", "graddrop", "sum, pcgrad, upgrad, mgda, cagrad, imtl_g, aligned_mtl, dualproj, gradvac"),
    ("pipeline", "single", "multitask, novel"), ("profile", "gpu", "smoke, cpu, paper"),
    ("sts_head", "bilinear", "mlp, cosine"), ("reduction", "max", "sum, mean"), ("para_head", "bilinear", "concat, sbert"),
    ("sts_features", "diff", "concat, sbert"), ("sts_loss", "l1", "mse, cosent"), ("schedule", "cosine", "constant, linear"),
    ("merge", "dare", "uniform, task_arithmetic, ties")])
def test_invalid_choices_list_the_valid_ones(name, value, listed):
    with pytest.raises(ConfigError, match=listed):
        Config(**{name: value, "profile": "cpu"} if name != "profile" else {name: value})


@pytest.mark.parametrize("kw", [dict(dropout=1.5), dict(lr=-1), dict(batch_size=0), dict(epochs="two"),
                                dict(batch_size="1.5"), dict(steps_per_epoch=-1), dict(warmup=1.0), dict(warmup=-0.1),
                                dict(merge_density=0), dict(merge_density=1.5), dict(bucket_pool=0)])
def test_invalid_values(kw):
    with pytest.raises(ConfigError):
        Config(profile="cpu", **kw)


def test_bucket_tasks_names_tasks_and_is_spelled_one_way():
    assert Config(profile="cpu", bucket_tasks=" sts,sst").bucket_tasks == "sst,sts"
    cfg = Config(profile="cpu", bucket_tasks="sst,para")
    assert [cfg.bucketed(t) for t in ("sst", "para", "sts")] == [True, True, False]
    assert not Config(profile="cpu", bucket=False).bucketed("sst")
    for bad in ("sst,quora", ""):
        with pytest.raises(ConfigError, match="subset of sst, para, sts"):
            Config(profile="cpu", bucket_tasks=bad)


def test_loss_weights_are_validated_and_spelled_one_way():
    cfg = Config(profile="cpu", loss_weights=" sts=0.50, sst=2,para=1")
    assert cfg.loss_weights == "sst=2,sts=0.5"                        # task order, weights of 1 left out
    assert [cfg.loss_weight(t) for t in ("sst", "para", "sts")] == [2.0, 1.0, 0.5]
    assert Config(profile="cpu").loss_weight("sts") == 1.0
    assert Config(profile="cpu", loss_weights="sts=0.1234567891").loss_weight("sts") == 0.1234567891   # no digit lost
    for bad in ("sts", "quora=2", "sts=0", "sts=-1", "sts=nan", "sts=inf", "sts=half"):
        with pytest.raises(ConfigError, match="task=weight pairs"):
            Config(profile="cpu", loss_weights=bad)


def test_combine_options_are_validated_for_the_chosen_method():
    assert Config(profile="cpu", combine="cagrad", combine_options="c=0.2").combine_options == "c=0.2"
    assert Config.from_dict({"profile": "cpu", "combine": "mgda", "combine_options": "max_iters=50"}).combine == "mgda"
    with pytest.raises(ConfigError, match=r"unknown option\(s\) k for combine=cagrad; valid: c \(default 0.4\)"):
        Config(profile="cpu", combine="cagrad", combine_options="k=1")
    with pytest.raises(ConfigError, match="unknown option.*for combine=sum; valid: none"):
        Config(profile="cpu", combine_options="c=0.4")
    with pytest.raises(ConfigError, match="c must be non-negative"):
        Config(profile="cpu", combine="cagrad", combine_options="c=-0.5")
    with pytest.raises(ConfigError, match="reduction='mean' is not valid with combine='upgrad'"):
        Config(profile="cpu", combine="upgrad", reduction="mean")


def test_unknown_names_list_valid_names():
    with pytest.raises(ConfigError, match="unknown parameter.*learning_rate.*valid names:.*lr"):
        Config.from_dict({"learning_rate": 1e-3})


def test_strings_from_the_cli_are_typed():
    cfg = Config.from_dict({"profile": "cpu", "dropout": "0", "steps_per_epoch": "0", "epochs": "2",
                            "progress": "false", "lr": "2e-5"})
    assert (cfg.dropout, cfg.steps_per_epoch, cfg.epochs, cfg.progress, cfg.lr) == (0.0, None, 2, False, 2e-5)


def test_beyond_the_report_knobs_default_to_the_report():
    cfg = Config(profile="cpu")
    assert (cfg.para_head, cfg.sts_features, cfg.sts_loss, cfg.schedule, cfg.merge) == \
           ("concat", "concat", "mse", "constant", "uniform")


@pytest.mark.parametrize("kw,message", [
    (dict(sts_loss="cosent", sts_head="mlp"), "sts_loss=cosent .* needs sts_head=cosine"),
    (dict(sts_loss="cosent"), "needs sts_head=cosine \\(now mlp\\)"),
    (dict(sts_features="sbert", sts_head="cosine"), "sts_features=sbert .* needs sts_head=mlp")])
def test_head_options_that_do_not_fit_the_sts_head(kw, message):
    with pytest.raises(ConfigError, match=message):
        Config(profile="cpu", **kw)
    assert Config(profile="cpu", pipeline="novel", sts_loss="cosent").sts_loss == "cosent"


def test_combine_methods_are_surgerys():
    """config names the combine methods itself (it must not import surgery, which imports torch): the same ones."""
    from mtlib import config, surgery
    assert config.COMBINE_METHODS == surgery.METHODS and config.WEIGHTINGS == tuple(surgery.WEIGHTINGS)


def test_docs_knobs_has_a_row_for_every_config_field_and_none_other():
    """docs/knobs.md says it lists every Config field: a field added without its row (as noise_batches once was) fails
    here, and so does a row left behind by a field removed."""
    import dataclasses
    import re
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[1] / "docs" / "knobs.md").read_text(encoding="utf-8")
    rows, fields = set(re.findall(r"^\| `(\w+)` \|", doc, re.M)), {f.name for f in dataclasses.fields(Config)}
    assert not fields - rows, f"docs/knobs.md has no row for {sorted(fields - rows)}"
    assert not rows - fields, f"docs/knobs.md has rows for fields Config does not have: {sorted(rows - fields)}"
