"""Tests for mtlib.data: validation rules on small TSVs, and the real CS224N files."""
from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from mtlib import data
from mtlib.data import FILES, DataError, DataWarning, load_split, load_task, resolve_data_dir

from conftest import SHARED_DATA as REAL
HEADERS = {
    "sst": ["", "id", "sentence", "sentiment"],
    "para": ["", "id", "sentence1", "sentence2", "is_duplicate"],
    "sts": ["", "id", "sentence1", "sentence2", "similarity"],
}


def write(folder: Path, task: str, split: str, rows: list[list[str]], header: list[str] | None = None) -> Path:
    """Write a TSV (header + rows) under the official file name."""
    if header is None:
        header = HEADERS[task] if split != "test" else HEADERS[task][:-1]
    path = folder / FILES[task, split]
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


def sst_rows(n: int) -> list[list[str]]:
    return [[str(i), f"id{i}", f" sentence {i} ", str(i % 5)] for i in range(n)]


def test_files_table():
    assert len(FILES) == 9
    assert FILES["sst", "train"] == "ids-sst-train.csv"
    assert FILES["sst", "test"] == "ids-sst-test-student.csv"
    assert FILES["para", "dev"] == "quora-dev.csv"
    assert FILES["sts", "test"] == "sts-test-student.csv"


def test_basic_load_and_head(tmp_path):
    write(tmp_path, "sst", "train", sst_rows(7))
    sp = load_split("sst", "train", tmp_path)
    assert len(sp) == 7 and sp.ids[0] == "id0" and sp.texts[0] == ("sentence 0",)
    assert sp.labels.dtype == np.int64 and list(sp.labels) == [0, 1, 2, 3, 4, 0, 1]
    assert sp.lines == list(range(2, 9)) and sp.skipped == []
    h = sp.head(3)
    assert len(h) == 3 and h.lines == [2, 3, 4] and list(h.labels) == [0, 1, 2]
    assert sp.head(None) is sp


def test_unknown_task_and_split(tmp_path):
    with pytest.raises(DataError, match="sst, para, sts"):
        load_split("qqp", "train", tmp_path)
    with pytest.raises(DataError, match="train, dev, test"):
        load_split("sst", "valid", tmp_path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError) as e:
        load_split("sts", "dev", tmp_path)
    assert str(tmp_path / "sts-dev.csv") in str(e.value) and "python -m mtlib download" in str(e.value)


@pytest.mark.parametrize("drop", ["id", "sentence1", "similarity"])
def test_missing_column(tmp_path, drop):
    header = [c for c in HEADERS["sts"] if c != drop]
    path = write(tmp_path, "sts", "train", [], header=header)
    with pytest.raises(DataError) as e:
        load_split("sts", "train", tmp_path)
    msg = str(e.value)
    assert f"{path}:1" in msg and repr(drop) in msg and repr(header) in msg


def test_test_split_needs_no_label(tmp_path):
    write(tmp_path, "sts", "test", [["0", "a", "one", "two"], ["1", "b", "three", "four"]])
    sp = load_split("sts", "test", tmp_path)
    assert sp.labels is None and sp.texts == [("one", "two"), ("three", "four")]


def test_sst_test_header_read_by_name(tmp_path):
    header = ["0", "", "id", "sentence"]
    write(tmp_path, "sst", "test", [["1", "0.0", "abc", " Hello ."], ["2", "1.0", "def", " Bye ."]], header=header)
    sp = load_split("sst", "test", tmp_path)
    assert sp.ids == ["abc", "def"] and sp.texts == [("Hello .",), ("Bye .",)]


def test_invalid_utf8(tmp_path):
    path = write(tmp_path, "sst", "train", sst_rows(4))
    raw = path.read_bytes().split(b"\n")
    raw[3] = raw[3].replace(b"sentence", b"sent\xff\xfence")  # physical line 4
    path.write_bytes(b"\n".join(raw))
    with pytest.raises(DataError, match=rf"{path}:4: invalid UTF-8"):
        load_split("sst", "train", tmp_path)


@pytest.mark.parametrize(
    "bad_row, why",
    [
        (["5", "id5", "too few fields"], "3 fields"),
        (["5", "id5", "text", ""], "empty label"),
        (["5", "id5", "text", "three"], "not a number"),
        (["5", "id5", "text", "nan"], "not a number"),
    ],
)
def test_unparseable_row_skipped_with_warning(tmp_path, bad_row, why):
    rows = sst_rows(9)
    rows.insert(5, bad_row)  # physical line 7
    path = write(tmp_path, "sst", "train", rows)
    with pytest.warns(DataWarning) as rec:
        sp = load_split("sst", "train", tmp_path, max_bad_fraction=0.1)
    assert len(rec) == 1 and f"{path}:7" in str(rec[0].message) and why in str(rec[0].message)
    assert len(sp) == 9 and sp.skipped == [7] and 7 not in sp.lines and sp.lines[5] == 8


def test_too_many_bad_rows(tmp_path):
    rows = sst_rows(10) + [[str(i), f"x{i}", "text", ""] for i in range(3)]  # lines 12..14 bad
    path = write(tmp_path, "sst", "train", rows)
    with pytest.raises(DataError) as e:
        load_split("sst", "train", tmp_path, max_bad_fraction=0.1)  # floor(0.1 * 13) = 1 allowed
    msg = str(e.value)
    assert str(path) in msg and "3 unparseable rows" in msg and "12, 13, 14" in msg and "max_bad_fraction" in msg
    with pytest.warns(DataWarning):
        assert len(load_split("sst", "train", tmp_path, max_bad_fraction=0.25)) == 10


def test_default_limit_is_strict_on_small_files(tmp_path):
    write(tmp_path, "sst", "train", sst_rows(5) + [["9", "x", "text", ""]])
    with pytest.raises(DataError, match="max_bad_fraction"):
        load_split("sst", "train", tmp_path)


@pytest.mark.parametrize(
    "task, value",
    [("sst", "5"), ("sst", "-1"), ("sst", "2.5"), ("para", "2.0"), ("para", "0.5"), ("sts", "5.1"), ("sts", "-0.1")],
)
def test_label_out_of_range(tmp_path, task, value):
    texts = ["a b"] if task == "sst" else ["a", "b"]
    good = "1" if task == "sst" else "1.0"
    path = write(tmp_path, task, "dev", [["0", "x", *texts, good], ["1", "y", *texts, value]])
    with pytest.raises(DataError) as e:
        load_split(task, "dev", tmp_path)
    msg = str(e.value)
    assert f"{path}:3" in msg and repr(value) in msg and data._RANGE[task] in msg


def test_label_dtypes(tmp_path):
    write(tmp_path, "para", "train", [["0", "a", "s", "t", "1.0"], ["1", "b", "s", "t", "0.0"]])
    write(tmp_path, "sts", "train", [["0", "a", "s", "t", "4.6"], ["1", "b", "s", "t", "0"]])
    para, sts = load_split("para", "train", tmp_path), load_split("sts", "train", tmp_path)
    assert para.labels.dtype == np.int64 and list(para.labels) == [1, 0]
    assert sts.labels.dtype == np.float32 and np.allclose(sts.labels, [4.6, 0.0])


@pytest.mark.parametrize("column, index", [("sentence1", 2), ("sentence2", 3), ("id", 1)])
def test_empty_text(tmp_path, column, index):
    bad = ["1", "y", "s", "t", "0.0"]
    bad[index] = "   "
    path = write(tmp_path, "para", "dev", [["0", "x", "s", "t", "1.0"], bad])
    with pytest.raises(DataError) as e:
        load_split("para", "dev", tmp_path)
    assert f"{path}:3" in str(e.value) and repr(column) in str(e.value)


def test_duplicate_id(tmp_path):
    rows = sst_rows(5)
    rows[3][1] = "id1"  # lines 3 and 5
    path = write(tmp_path, "sst", "dev", rows)
    with pytest.raises(DataError) as e:
        load_split("sst", "dev", tmp_path)
    assert str(path) in str(e.value) and "lines 3 and 5" in str(e.value)


def test_quoted_multiline_field_line_numbers(tmp_path):
    path = tmp_path / FILES["para", "train"]
    path.write_text(
        "\tid\tsentence1\tsentence2\tis_duplicate\n"
        '0\ta\t"""Which is """"the"""" one?"""\tplain\t1.0\n'
        '1\tb\t"spans\ntwo lines"\tx\t0.0\n'
        "2\tc\tlast\ty\t0.0\n",
        encoding="utf-8",
    )
    sp = load_split("para", "train", tmp_path)
    assert sp.texts[0] == ('"Which is ""the"" one?"', "plain")
    assert sp.texts[1] == ("spans\ntwo lines", "x")
    assert sp.lines == [2, 3, 5]


def test_load_task(tmp_path):
    for split in ("train", "dev"):
        write(tmp_path, "sst", split, sst_rows(3))
    out = load_task("sst", tmp_path, splits=("train", "dev"))
    assert set(out) == {"train", "dev"} and all(len(s) == 3 for s in out.values())


# --- resolve_data_dir ---------------------------------------------------------------------------


def test_resolve_precedence(tmp_path, monkeypatch):
    arg, env = tmp_path / "arg", tmp_path / "env"
    arg.mkdir()
    env.mkdir()
    monkeypatch.setenv("MTLIB_DATA_DIR", str(env))
    assert resolve_data_dir(arg) == arg
    assert resolve_data_dir(str(arg)) == arg
    assert resolve_data_dir() == env
    monkeypatch.delenv("MTLIB_DATA_DIR")
    default = Path(data.__file__).resolve().parent.parent / "data" / "cs224n"
    if default.is_dir():
        assert resolve_data_dir() == default
    else:
        with pytest.raises(DataError, match="repo default") as e:
            resolve_data_dir()
        assert str(default) in str(e.value)


def test_resolve_missing_says_where_and_how(tmp_path, monkeypatch):
    missing = tmp_path / "nope"
    with pytest.raises(DataError) as e:
        resolve_data_dir(missing)
    msg = str(e.value)
    assert str(missing) in msg and "data_dir argument" in msg and "python -m mtlib download --dest" in msg
    monkeypatch.setenv("MTLIB_DATA_DIR", str(missing))
    with pytest.raises(DataError, match=r"\$MTLIB_DATA_DIR") as e:
        resolve_data_dir()
    assert str(missing) in str(e.value)


# --- the real data --------------------------------------------------------------------------------

COUNTS = {
    ("sst", "train"): 8544, ("sst", "dev"): 1101, ("sst", "test"): 2210,
    ("para", "train"): 16193, ("para", "dev"): 2032, ("para", "test"): 1987,
    ("sts", "train"): 6040, ("sts", "dev"): 863, ("sts", "test"): 1725,
}
BROKEN = {("para", "train"): (11400, "9054345d02cd6c5642a4904dc"), ("para", "dev"): (244, "ad118c967d683c93883bf072d")}


@pytest.fixture
def real() -> Path:
    if not REAL.is_dir():
        pytest.skip(f"{REAL} not present")
    return REAL


@pytest.mark.parametrize("task, split", list(COUNTS))
def test_real_data(real, task, split):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        sp = load_split(task, split, real)
    dw = [w for w in rec if issubclass(w.category, DataWarning)]
    assert len(sp) == COUNTS[task, split]
    assert len(set(sp.ids)) == len(sp) and all(len(t) == len(data.TEXT_COLUMNS[task]) for t in sp.texts)
    assert all(s and s == s.strip() for t in sp.texts for s in t)
    if (task, split) in BROKEN:
        line, rid = BROKEN[task, split]
        assert len(dw) == 1 and f"{sp.path}:{line}" in str(dw[0].message)
        assert sp.skipped == [line] and rid not in sp.ids
    else:
        assert dw == [] and sp.skipped == []
    if split == "test":
        assert sp.labels is None
        return
    y = sp.labels
    assert len(y) == len(sp)
    if task == "sts":
        assert y.dtype == np.float32 and y.min() == 0.0 and y.max() == 5.0
    else:
        assert y.dtype == np.int64 and set(np.unique(y)) == (set(range(5)) if task == "sst" else {0, 1})


def test_real_data_default_limit_counts(real):
    # the default 0.1% allows floor(0.001 * 2033) = 2 bad rows in quora-dev; it has one
    assert math.floor(0.001 * 2033) >= 1
    with pytest.warns(DataWarning, match="quora-dev.csv:244"):
        load_task("para", real, splits=("dev",))


# ---------------------------------------------------------------------------------------------------
# The DatasetDict view, the majority class, the content-keyed token cache
# ---------------------------------------------------------------------------------------------------

def test_to_dataset_dict_holds_the_validated_rows(tmp_path):
    write(tmp_path, "para", "train", [["0", "a", " first? ", "second?", "1.0"], ["1", "b", "x", "y", "0"],
                                      ["2", "c", "skipped", "row", ""], ["3", "d", "u", "v", "0.0"]])
    write(tmp_path, "para", "test", [["0", "t", "one", "two"]])
    with pytest.warns(DataWarning):
        splits = load_task("para", tmp_path, splits=("train", "test"), max_bad_fraction=0.5)
    dd = data.to_dataset_dict(splits)
    assert set(dd) == {"train", "test"}
    train = dd["train"]
    assert train.column_names == ["id", "line", "sentence1", "sentence2", "is_duplicate"]
    assert train["id"] == ["a", "b", "d"] and train["line"] == [2, 3, 5] and train["sentence1"][0] == "first?"
    assert train["is_duplicate"] == [1, 0, 0]
    assert train.features["is_duplicate"].names == ["not duplicate", "duplicate"]
    assert dd["test"].column_names == ["id", "line", "sentence1", "sentence2"]


def test_majority_class_known_answer(tmp_path):
    write(tmp_path, "sst", "train", [[str(i), f"t{i}", "s", y] for i, y in enumerate("11203")])
    write(tmp_path, "sst", "dev", [[str(i), f"d{i}", "s", y] for i, y in enumerate("122")])
    sp = load_task("sst", tmp_path, splits=("train", "dev"))
    assert data.majority_class(sp["train"], sp["dev"]) == (1, pytest.approx(1 / 3))
    assert data.majority_class(sp["train"], sp["train"]) == (1, pytest.approx(2 / 5))
    with pytest.raises(DataError, match="sst or para"):
        data.majority_class(dataclasses.replace(sp["train"], task="sts"), sp["dev"])


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from mtlib.models import resolve_encoder
    return AutoTokenizer.from_pretrained(resolve_encoder("all-MiniLM-L6-v2"))


def test_token_cache_is_keyed_on_the_sentences_not_the_file(tmp_path, tokenizer, monkeypatch):
    monkeypatch.setattr(data, "_TOKEN_CACHE", type(data._TOKEN_CACHE)())
    write(tmp_path, "sst", "train", [["0", "a", "good film", "3"], ["1", "b", "bad film", "1"]])
    first = data.encode(load_split("sst", "train", tmp_path), tokenizer, 16)
    again = data.encode(load_split("sst", "train", tmp_path), tokenizer, 16)
    assert again.tokens is first.tokens                      # same sentences: tokenized once
    # same file, same ids, same row count: only a sentence changed (the old cache returned stale tokens)
    write(tmp_path, "sst", "train", [["0", "a", "good film", "3"], ["1", "b", "a dreadful film", "1"]])
    changed = data.encode(load_split("sst", "train", tmp_path), tokenizer, 16)
    assert changed.tokens[1][0] == tokenizer("a dreadful film")["input_ids"] != first.tokens[1][0]
    # other ids and labels with the same sentences share the tokens, but keep their own ids and labels
    write(tmp_path, "sst", "dev", [["0", "x", "good film", "0"], ["1", "y", "a dreadful film", "4"]])
    dev = data.encode(load_split("sst", "dev", tmp_path), tokenizer, 16)
    assert dev.tokens is changed.tokens and dev.ids == ["x", "y"] and list(dev.labels) == [0, 4]
    assert data.encode(load_split("sst", "dev", tmp_path), tokenizer, 4).tokens[1][0] == \
        tokenizer("a dreadful film", truncation=True, max_length=4)["input_ids"]


def test_token_cache_is_bounded(tmp_path, tokenizer, monkeypatch):
    monkeypatch.setattr(data, "_TOKEN_CACHE", type(data._TOKEN_CACHE)())
    monkeypatch.setattr(data, "TOKEN_CACHE_SIZE", 3)
    write(tmp_path, "sst", "train", [[str(i), f"id{i}", f"sentence number {i}", "0"] for i in range(6)])
    sp = load_split("sst", "train", tmp_path)
    for n in range(1, 7):
        data.encode(sp.head(n), tokenizer, 16)
    assert len(data._TOKEN_CACHE) == 3
    assert [len(tokens) for tokens, *_ in data._TOKEN_CACHE.values()] == [4, 5, 6]     # the most recent ones


def _lengths_only(n, seed=0):
    """An Encoded whose rows have random lengths (the sampler reads nothing else)."""
    from mtlib.data import Encoded
    lengths = np.random.default_rng(seed).integers(3, 60, n)
    return Encoded("sst", "train", [str(i) for i in range(n)], [[[0] * k] for k in lengths], np.zeros(n), lengths, 0)


def test_bucketing_sorts_lengths_within_each_window_of_pool_batches():
    from mtlib.data import TaskSampler
    enc = _lengths_only(96)
    plain = TaskSampler(enc, 8, 0, bucket=False)
    one = TaskSampler(enc, 8, 0, bucket=True, pool=1)            # a window of one batch groups nothing
    assert sorted(map(sorted, map(list, one.batches))) == sorted(map(sorted, map(list, plain.batches)))
    for pool in (3, 12):                                         # 12 batches a pass: 4 windows of 3, or one of 12
        s = TaskSampler(enc, 8, 0, bucket=True, pool=pool)
        order = np.random.default_rng(0).permutation(96)         # the pass's permutation, as the sampler draws it
        for w in range(0, 96, 8 * pool):
            window = set(order[w: w + 8 * pool].tolist())
            batches = sorted((b for b in s.batches if set(b.tolist()) <= window), key=lambda b: enc.lengths[b].min())
            assert sum(len(b) for b in batches) == len(window)   # every batch lies inside one window
            runs = np.concatenate([np.sort(enc.lengths[b]) for b in batches])
            assert np.all(np.diff(runs) >= 0)                   # and the window's lengths are cut in sorted order


def test_joint_pairs_are_one_sequence_with_token_types(tmp_path, tokenizer, monkeypatch):
    """A cross head's input: [CLS] a [SEP] b [SEP], types 0 through the first [SEP] and 1 after, 0 on padding;
    truncated longest-first to twice max_length; cached apart from the same split encoded sentence by sentence."""
    monkeypatch.setattr(data, "_TOKEN_CACHE", type(data._TOKEN_CACHE)())
    long = "one two three four five six seven eight nine ten"
    write(tmp_path, "para", "train", [["0", "a", "a short one", long, "1.0"], ["1", "b", "tiny", "also tiny", "0.0"]])
    split = load_split("para", "train", tmp_path)
    joint = data.encode(split, tokenizer, 6, joint=True)
    apart = data.encode(split, tokenizer, 6)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    words = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]
    # row 0: 3 + 10 words, 3 special tokens, 12 in all: the longer sentence gives up its last words
    assert joint.tokens[0] == [[cls, *words("a short one"), sep, *words(long)[:6], sep]]
    assert joint.tokens[1] == [[cls, *words("tiny"), sep, *words("also tiny"), sep]]
    assert list(joint.lengths) == [12, 6]
    assert apart.tokens[1] == [[cls, *words("tiny"), sep], [cls, *words("also tiny"), sep]]
    batch = data.collate(joint, np.array([1, 0]))
    assert batch["input_ids"].shape == (2, 12)                        # one sequence per pair
    assert batch["token_type_ids"][0].tolist() == [0, 0, 0, 1, 1, 1] + [0] * 6
    assert batch["token_type_ids"][1].tolist() == [0] * 5 + [1] * 7
    assert batch["attention_mask"].sum(1).tolist() == [6, 12]
    assert "token_type_ids" not in data.collate(apart, np.array([1, 0]))
    assert data.collate(apart, np.array([1, 0]))["input_ids"].shape[0] == 4   # u rows, then v rows
    write(tmp_path, "sst", "train", sst_rows(2))
    with pytest.raises(ValueError, match="sentence pairs; sst has 1"):
        data.encode(load_split("sst", "train", tmp_path), tokenizer, 6, joint=True)
