"""The data card of notebooks/00_data.ipynb: labels, the majority-class level every accuracy is read against,
sentence lengths in the encoder's tokens, the rows skipped as unparseable, and the Quora caveat. Tables only: it
trains nothing and reads no run."""
from __future__ import annotations

import pandas as pd

from ..data import TASK_NAMES
from ..notebook import shown

OFFICIAL_QUORA_DEV_ROWS = 20_214     # pairs in the official quora-dev.csv of the default project
SPLIT_ORDER = ("train", "dev", "test")


def label_table(splits: dict[str, dict]) -> pd.DataFrame:
    """Rows per label and split (SST and Quora by label name), with each label's share of its split."""
    from ..data import LABEL_NAMES
    rows = []
    for task in ("sst", "para"):
        for split, sp in splits[task].items():
            if sp.labels is None:
                continue
            counts = pd.Series(sp.labels).value_counts()
            for label, name in enumerate(LABEL_NAMES[task]):
                n = int(counts.get(label, 0))
                rows.append({"task": TASK_NAMES[task], "split": split, "label": f"{label} {name}", "rows": n,
                             "share": n / len(sp)})
    table = pd.DataFrame(rows).pivot_table(index=["task", "label"], columns="split", values=["rows", "share"],
                                           sort=False)
    return table.reindex(columns=[c for c in table.columns if c[1] in SPLIT_ORDER]).round(3)


def majority_table(splits: dict[str, dict]) -> pd.DataFrame:
    """Per task: the train split's most frequent label and the accuracy of always predicting it on each labelled
    split: the level every accuracy in this project is read against."""
    from ..data import LABEL_NAMES, majority_class
    rows = []
    for task in ("sst", "para"):
        by_split = splits[task]
        label, _ = majority_class(by_split["train"], by_split["train"])
        row = {"task": TASK_NAMES[task], "majority label (train)": f"{label} {LABEL_NAMES[task][label]}"}
        for split, sp in by_split.items():
            if sp.labels is not None:
                row[f"{split} accuracy"] = majority_class(by_split["train"], sp)[1]
        rows.append(row)
    return pd.DataFrame(rows).set_index("task").round(3)


def token_lengths(dsets: dict, tokenizer, max_train: int | None = None, max_eval: int | None = None) -> pd.DataFrame:
    """Tokens per sentence (the encoder's tokenizer, [CLS] and [SEP] included, no truncation), computed with
    `datasets.Dataset.map` on the first max_train / max_eval rows of each split: one row per sentence."""
    import datasets

    from ..data import TEXT_COLUMNS
    frames, bars_were_off = [], datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()            # nine short bars: noise in an executed notebook
    for task, dd in dsets.items():
        columns = TEXT_COLUMNS[task]
        for split, ds in dd.items():
            n = max_train if split == "train" else max_eval
            ds = ds.select(range(min(n, len(ds)))) if n else ds
            counted = ds.map(lambda batch: {f"tokens_{c}": [len(ids) for ids in tokenizer(batch[c])["input_ids"]]
                                            for c in columns},
                             batched=True, remove_columns=ds.column_names)
            for c in columns:
                frames.append(pd.DataFrame({"task": TASK_NAMES[task], "split": split, "column": c,
                                            "tokens": counted[f"tokens_{c}"]}))
    if not bars_were_off:
        datasets.enable_progress_bars()
    return pd.concat(frames, ignore_index=True)


def length_table(lengths: pd.DataFrame, max_lengths: dict[str, int]) -> pd.DataFrame:
    """Per task, split and sentence column: sentences, median / 95th percentile / longest in tokens, and how many
    are cut at each max_length given ({label: max_length})."""
    def summary(g):
        row = {"sentences": len(g), "median": g.median(), "95th pct": round(g.quantile(0.95), 1), "longest": g.max()}
        for label, length in sorted(max_lengths.items(), key=lambda kv: kv[1]):
            row[f"cut at {length} ({label})"] = f"{int((g > length).sum())} ({(g > length).mean():.1%})"
        return pd.Series(row, dtype=object)
    return lengths.groupby(["task", "split", "column"], sort=False)["tokens"].apply(summary).unstack()


def skipped_table(splits: dict[str, dict]) -> pd.DataFrame:
    """The rows skipped as unparseable: file:line (relative to the repository root) and the line as written."""
    rows = []
    for task, by_split in splits.items():
        for split, sp in by_split.items():
            if not sp.skipped:
                continue
            lines = sp.path.read_text(encoding="utf-8").splitlines()
            for line in sp.skipped:
                rows.append({"task": TASK_NAMES[task], "split": split, "where": f"{shown(sp.path)}:{line}",
                             "row as written": lines[line - 1] if line <= len(lines) else ""})
    return pd.DataFrame(rows, columns=["task", "split", "where", "row as written"])


def quora_caveat(para: dict) -> str:
    """The Quora caveat with its numbers (markdown): whether these files are a re-split of the official dev file."""
    rows = {split: len(sp) + len(sp.skipped) for split, sp in para.items()}
    total = sum(rows.values())
    sizes = ", ".join(f"{split} {n:,}" for split, n in rows.items())
    resplit = total == OFFICIAL_QUORA_DEV_ROWS
    return (f"**Quora.** Rows in the files (skipped ones included): {sizes}; together **{total:,}**. The official "
            f"`quora-dev.csv` has {OFFICIAL_QUORA_DEV_ROWS:,} pairs (the official train file: about 141k). " + (
                "These files are therefore a re-split of the official dev file: train, dev and test here come from "
                "one 20k-pair pool, and Quora numbers are not comparable with the report's, which trained on the "
                "official train set." if resplit else
                "These files are not a re-split of the official dev file, so that caveat does not apply here."))
