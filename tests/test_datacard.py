"""The data card (mtlib.report.datacard, notebooks/00_data): the majority-class level, the skipped rows, the Quora caveat."""
from pathlib import Path

import numpy as np

from mtlib.report import datacard
from mtlib.data import Split


def _split(task, split, labels, skipped=(), path=Path("x.csv")):
    n = len(labels) if labels is not None else 3
    return Split(task, split, path, [str(i) for i in range(n)], [("a",)] * n,
                 None if labels is None else np.array(labels), list(range(2, n + 2)), list(skipped))


def test_majority_table_scores_always_answering_the_train_split_s_most_common_label():
    splits = {"sst": {"train": _split("sst", "train", [2, 2, 1, 0]), "dev": _split("sst", "dev", [2, 1, 1, 1, 2]),
                      "test": _split("sst", "test", None)},
              "para": {"train": _split("para", "train", [0, 0, 1]), "dev": _split("para", "dev", [1, 1, 0, 1])}}
    t = datacard.majority_table(splits)
    assert t.loc["SST", "majority label (train)"] == "2 neutral"
    assert t.loc["SST", "dev accuracy"] == 0.4 and t.loc["SST", "train accuracy"] == 0.5
    assert "test accuracy" not in t.columns                     # unlabelled: no level
    assert t.loc["Quora", "dev accuracy"] == 0.25


def test_skipped_table_shows_each_skipped_row_where_and_as_written(tmp_path):
    f = tmp_path / "quora-dev.csv"
    f.write_text("id\tsentence1\tsentence2\tis_duplicate\n1\ta\tb\t1\n2\tc\td\t\n")
    splits = {"para": {"dev": _split("para", "dev", [1], skipped=[3], path=f)}}
    t = datacard.skipped_table(splits)
    assert len(t) == 1 and t.iloc[0]["where"].endswith("quora-dev.csv:3") and t.iloc[0]["row as written"] == "2\tc\td\t"


def test_quora_caveat_says_re_split_only_when_the_rows_add_up_to_the_official_dev_file():
    def para(n_train, n_skipped):
        return {"train": _split("para", "train", [0] * n_train, skipped=range(n_skipped)),
                "dev": _split("para", "dev", [0] * 14)}
    official = datacard.OFFICIAL_QUORA_DEV_ROWS
    assert "a re-split of the official dev file" in datacard.quora_caveat(para(official - 14 - 2, 2))
    assert "not a re-split" in datacard.quora_caveat(para(official - 14 - 2, 0))
