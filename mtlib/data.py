"""CS224N default-project data: SST-5, Quora paraphrase, STS-B (tab-separated files).

Rows are read by column name with the csv module, so quoted fields may span lines;
every row keeps the physical line where it starts, and every error names file, line and fix.
"""
from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

TASKS = ("sst", "para", "sts")
SPLITS = ("train", "dev", "test")
_STEM = {"sst": "ids-sst", "para": "quora", "sts": "sts"}
FILES: dict[tuple[str, str], str] = {
    (t, s): f"{_STEM[t]}-{'test-student' if s == 'test' else s}.csv" for t in TASKS for s in SPLITS
}
TEXT_COLUMNS = {"sst": ("sentence",), "para": ("sentence1", "sentence2"), "sts": ("sentence1", "sentence2")}
LABEL_COLUMN = {"sst": "sentiment", "para": "is_duplicate", "sts": "similarity"}
DOWNLOAD_URL = "https://raw.githubusercontent.com/gpoesia/minbert-default-final-project/main/data"
_RANGE = {"sst": "an integer 0..4", "para": "0 or 1", "sts": "a number 0.0..5.0"}
_DTYPE = {"sst": np.int64, "para": np.int64, "sts": np.float32}
_HOW_TO_GET = "get the data with `python -m mtlib download --dest <dir>`, or point MTLIB_DATA_DIR / data_dir=... at it"


class DataError(ValueError):
    """Bad or missing data; the message names the file, the line and the fix."""


class DataWarning(UserWarning):
    """A data row was skipped."""


@dataclass
class Split:
    """One task split: ids, stripped text tuples, labels (None for test) and source line numbers."""

    task: str
    split: str
    path: Path
    ids: list[str]
    texts: list[tuple[str, ...]]
    labels: np.ndarray | None
    lines: list[int]
    skipped: list[int]

    def __len__(self) -> int:
        return len(self.ids)

    def head(self, n: int | None) -> Split:
        """The first n rows (all rows when n is None)."""
        if n is None:
            return self
        labels = None if self.labels is None else self.labels[:n]
        return replace(self, ids=self.ids[:n], texts=self.texts[:n], labels=labels, lines=self.lines[:n])


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """Data folder: the argument, else $MTLIB_DATA_DIR, else <repo root>/data/cs224n."""
    if data_dir is not None:
        path, source = Path(data_dir), "the data_dir argument"
    elif os.environ.get("MTLIB_DATA_DIR"):
        path, source = Path(os.environ["MTLIB_DATA_DIR"]), "$MTLIB_DATA_DIR"
    else:
        path, source = Path(__file__).resolve().parent.parent / "data" / "cs224n", "the repo default"
    path = path.expanduser()
    if not path.is_dir():
        raise DataError(f"data folder {path} (from {source}) does not exist; {_HOW_TO_GET}")
    return path


def _check(task: str, split: str) -> None:
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")


def _parse_label(task: str, raw: str, where: str) -> float | None:
    """The label as a number, None when it does not parse; DataError when out of range."""
    try:
        value = float(raw)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    ok = {"sst": value.is_integer() and 0 <= value <= 4, "para": value in (0.0, 1.0), "sts": 0 <= value <= 5}[task]
    if not ok:
        raise DataError(f"{where}: label {raw!r} out of range; {LABEL_COLUMN[task]} must be {_RANGE[task]}; fix the row")
    return value


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}:{line}: invalid UTF-8 ({e.reason}); re-save the file as UTF-8") from None


def load_split(task: str, split: str, data_dir: str | Path | None = None, max_bad_fraction: float = 0.001) -> Split:
    """Load one split, skipping (with a DataWarning) at most floor(max_bad_fraction * rows) unparseable rows."""
    _check(task, split)
    path = resolve_data_dir(data_dir) / FILES[task, split]
    if not path.is_file():
        raise DataError(f"missing data file {path}; {_HOW_TO_GET}")
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), delimiter="\t")
    try:
        header = next(reader, [])
    except csv.Error as e:
        raise DataError(f"{path}:1: unreadable header ({e}); fix the file") from None
    needed = ("id", *TEXT_COLUMNS[task]) + ((LABEL_COLUMN[task],) if split != "test" else ())
    missing = [c for c in needed if c not in header]
    if missing:
        raise DataError(f"{path}:1: missing column(s) {missing}; found {header}; the header needs {list(needed)}")
    col = {name: header.index(name) for name in needed}
    ids: list[str] = []
    texts: list[tuple[str, ...]] = []
    labels: list[float] = []
    lines: list[int] = []
    bad: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    n_rows, end = 0, reader.line_num
    while True:
        start = end + 1
        try:
            row = next(reader, None)
        except csv.Error as e:
            raise DataError(f"{path}:{start}: csv error ({e}); fix the quoting in the file") from None
        end = reader.line_num
        if row is None:
            break
        if not row:  # blank line
            continue
        n_rows += 1
        where = f"{path}:{start}"
        if len(row) != len(header):
            bad.append((start, f"{len(row)} fields, header has {len(header)}"))
            continue
        label = None
        if split != "test":
            raw = row[col[LABEL_COLUMN[task]]].strip()
            label = _parse_label(task, raw, where)
            if label is None:
                bad.append((start, f"label {raw!r} is not a number" if raw else "empty label"))
                continue
        for name in ("id", *TEXT_COLUMNS[task]):
            if not row[col[name]].strip():
                raise DataError(f"{where}: empty {name!r}; fill it in or delete the row")
        rid = row[col["id"]].strip()
        if rid in seen:
            raise DataError(f"{path}: duplicate id {rid!r} on lines {seen[rid]} and {start}; remove one of them")
        seen[rid] = start
        ids.append(rid)
        texts.append(tuple(row[col[c]].strip() for c in TEXT_COLUMNS[task]))
        lines.append(start)
        if label is not None:
            labels.append(label)
    allowed = math.floor(max_bad_fraction * n_rows)
    if len(bad) > allowed:
        first = ", ".join(str(line) for line, _ in bad[:5])
        raise DataError(
            f"{path}: {len(bad)} unparseable rows of {n_rows} (lines {first}{', ...' if len(bad) > 5 else ''}), "
            f"more than the {allowed} allowed; fix the file or raise max_bad_fraction (now {max_bad_fraction})"
        )
    for line, why in bad:
        warnings.warn(f"{path}:{line}: skipped unparseable row ({why})", DataWarning, stacklevel=2)
    y = None if split == "test" else np.asarray(labels, dtype=_DTYPE[task])
    return Split(task, split, path, ids, texts, y, lines, [line for line, _ in bad])


def load_task(
    task: str, data_dir: str | Path | None = None, splits: tuple[str, ...] = SPLITS, max_bad_fraction: float = 0.001
) -> dict[str, Split]:
    """Load several splits of one task, keyed by split name."""
    return {s: load_split(task, s, data_dir, max_bad_fraction) for s in splits}


# Label names for the DatasetDict view (SST-5's five classes; Quora's two).
TASK_NAMES = {"sst": "SST", "para": "Quora", "sts": "STS"}     # as tables and figures name them
LABEL_NAMES = {"sst": ("negative", "somewhat negative", "neutral", "somewhat positive", "positive"),
               "para": ("not duplicate", "duplicate")}


def to_dataset_dict(splits: dict[str, Split]):
    """One task's validated splits (`load_task`) as a `datasets.DatasetDict`: columns `id`, `line` (where the row
    starts in its file), the sentence column(s) and, but for test, the label (a ClassLabel for SST and Quora)."""
    import datasets
    out = {}
    for name, sp in splits.items():
        columns: dict[str, list] = {"id": sp.ids, "line": sp.lines}
        features = {"id": datasets.Value("string"), "line": datasets.Value("int64")}
        for i, column in enumerate(TEXT_COLUMNS[sp.task]):
            columns[column] = [row[i] for row in sp.texts]
            features[column] = datasets.Value("string")
        if sp.labels is not None:
            label = LABEL_COLUMN[sp.task]
            columns[label] = sp.labels.tolist()
            features[label] = (datasets.ClassLabel(names=list(LABEL_NAMES[sp.task])) if sp.task in LABEL_NAMES
                               else datasets.Value("float32"))
        out[name] = datasets.Dataset.from_dict(columns, features=datasets.Features(features), split=name)
    return datasets.DatasetDict(out)


def majority_class(train: Split | Encoded, other: Split | Encoded) -> tuple[int, float]:
    """The most frequent label of `train`, and the accuracy on `other` of always predicting it: the level an
    accuracy has to beat. SST and Quora only (a constant prediction has no Pearson r). Raw or encoded splits."""
    if train.task not in LABEL_NAMES or train.labels is None or other.labels is None or not len(train):
        raise DataError(f"majority class: needs labelled sst or para splits, got {train.task} {train.split}/{other.split}")
    label = int(np.bincount(train.labels.astype(np.int64)).argmax())
    return label, float(np.mean(other.labels == label)) if len(other) else float("nan")


def download(dest: str | Path, base_url: str = DOWNLOAD_URL, force: bool = False, timeout: float = 60) -> list[Path]:
    """Fetch the nine FILES into dest (atomically; present files are kept unless force); returns their paths."""
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in FILES.values():
        target = dest / name
        paths.append(target)
        if target.exists() and not force:
            continue
        url = f"{base_url.rstrip('/')}/{name}"
        fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                shutil.copyfileobj(resp, out)
            os.replace(tmp, target)
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            raise DataError(f"download of {url} failed ({e}); check the network or pass another base_url") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return paths


# ---------------------------------------------------------------------------------------------------
# Tokenization (once per split, cached) and batching (length-bucketed, dynamic padding)
# ---------------------------------------------------------------------------------------------------

@dataclass
class Encoded:
    """A split tokenized once: per row, one token-id list per sentence (1 for sst, 2 for pairs), or for a pair
    encoded jointly one list holding both sentences, with its token types (0: first sentence, 1: second)."""
    task: str
    split: str
    ids: list[str]
    tokens: list[list[list[int]]]
    labels: np.ndarray | None
    lengths: np.ndarray          # longest sequence of each row, for bucketing
    pad_id: int
    types: list[list[int]] | None = None   # joint pairs: token type ids per row (None: the tokenizer has none)
    texts_digest: str = ""                 # `texts_digest` of the split's sentences: part of a run's data fingerprint

    def __len__(self) -> int:
        return len(self.ids)


# Token ids per (tokenizer, max_length, joint, texts), least recently used first. Keyed on a hash of the sentences
# themselves, so a file edited during a kernel session is tokenized again; bounded, so a long session does not
# keep every split it ever saw. An on-disk cache is not used: see the README ("Data").
_TOKEN_CACHE: OrderedDict[tuple, tuple[list[list[list[int]]], np.ndarray, list[list[int]] | None]] = OrderedDict()
TOKEN_CACHE_SIZE = 16          # splits (one run uses 9)


def texts_digest(texts: list[tuple[str, ...]]) -> str:
    """A hash of the sentences, in order (field and row separators included, so no two splits collide by joining)."""
    h = hashlib.blake2b(digest_size=20)
    for row in texts:
        h.update("\x1f".join(row).encode("utf-8"))
        h.update(b"\x1e")
    return h.hexdigest()


def _tokenize(split: Split, tokenizer, max_length: int, joint: bool):
    """(tokens, lengths, types) of `split`: each sentence on its own, truncated to `max_length`; or with `joint`,
    each pair as the tokenizer's pair sequence ([CLS] a [SEP] b [SEP] for BERT), truncated longest-first to
    2 * max_length so that it holds as much as the two sentences encoded apart."""
    n, k = len(split), (len(split.texts[0]) if split.texts else 1)
    if joint:
        if k != 2:
            raise ValueError(f"joint encoding needs sentence pairs; {split.task} has {k} sentence(s) per row")
        out = tokenizer([r[0] for r in split.texts], [r[1] for r in split.texts], truncation="longest_first",
                        max_length=2 * max_length) if n else {"input_ids": []}
        tokens = [[ids] for ids in out["input_ids"]]
        types = out.get("token_type_ids")
    else:
        flat = [row[i] for i in range(k) for row in split.texts]
        ids = tokenizer(flat, truncation=True, max_length=max_length)["input_ids"] if flat else []
        tokens, types = [[ids[i * n + r] for i in range(k)] for r in range(n)], None
    lengths = np.array([max(len(s) for s in row) for row in tokens], dtype=np.int64)
    return tokens, lengths, types


def encode(split: Split, tokenizer, max_length: int, joint: bool = False) -> Encoded:
    """Tokenize every sentence of `split` with the (fast) tokenizer, truncating to `max_length`; with `joint`, each
    pair as one sequence (a cross-encoder's input).

    The token ids are cached in memory on (tokenizer name and size, max_length, joint, a hash of the sentences), so
    the stages and runs of one process tokenize a split once, and changed sentences are tokenized again.
    """
    key = (type(tokenizer).__name__, getattr(tokenizer, "name_or_path", ""), len(tokenizer), max_length, joint,
           texts_digest(split.texts))
    if key in _TOKEN_CACHE:
        _TOKEN_CACHE.move_to_end(key)
    else:
        _TOKEN_CACHE[key] = _tokenize(split, tokenizer, max_length, joint)
        while len(_TOKEN_CACHE) > TOKEN_CACHE_SIZE:
            _TOKEN_CACHE.popitem(last=False)
    tokens, lengths, types = _TOKEN_CACHE[key]
    return Encoded(split.task, split.split, split.ids, tokens, split.labels, lengths, tokenizer.pad_token_id or 0,
                   types, key[-1])


def collate(enc: Encoded, rows: np.ndarray) -> dict[str, torch.Tensor]:
    """Pad the chosen rows to their own longest sequence. Pairs: sentence 1 rows first, then sentence 2 (joint
    pairs: one sequence per row, with `token_type_ids` where the tokenizer gives them)."""
    k = len(enc.tokens[rows[0]])
    seqs = [enc.tokens[r][i] for i in range(k) for r in rows]
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), enc.pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for j, s in enumerate(seqs):
        input_ids[j, : len(s)] = torch.tensor(s)
        mask[j, : len(s)] = 1
    batch = {"input_ids": input_ids, "attention_mask": mask}
    if enc.types is not None:
        types = torch.zeros((len(seqs), width), dtype=torch.long)
        for j, r in enumerate(rows):
            types[j, : len(enc.types[r])] = torch.tensor(enc.types[r])
        batch["token_type_ids"] = types
    if enc.labels is not None:
        batch["labels"] = torch.from_numpy(enc.labels[rows])
    return batch


class TaskSampler:
    """Endless row-index batches of one task: each pass is a fresh permutation, so smaller datasets cycle.

    With `bucket`, each window of `pool` batches is sorted by length before it is cut, so a batch holds
    sentences of similar length (little padding); the batches' order is shuffled again. The position
    (the generator's state at the start of the pass, and the batch index in it) can be saved and
    restored exactly, for resuming a run.
    """

    def __init__(self, enc: Encoded, batch_size: int, seed: list[int] | int, bucket: bool = True, pool: int = 64):
        self.enc, self.batch_size, self.bucket, self.pool = enc, batch_size, bucket, pool
        self.rng = np.random.default_rng(seed)
        self._new_pass()

    def _new_pass(self) -> None:
        self.pass_state = self.rng.bit_generator.state
        order = self.rng.permutation(len(self.enc))
        batches = []
        for start in range(0, len(order), self.batch_size * self.pool):
            window = order[start: start + self.batch_size * self.pool]
            if self.bucket:
                window = window[np.argsort(self.enc.lengths[window], kind="stable")]
            batches += [window[i: i + self.batch_size] for i in range(0, len(window), self.batch_size)]
        self.batches = [batches[b] for b in self.rng.permutation(len(batches))]
        self.pos = 0

    def __iter__(self) -> "TaskSampler":
        return self

    def __next__(self) -> np.ndarray:
        if self.pos == len(self.batches):
            self._new_pass()
        self.pos += 1
        return self.batches[self.pos - 1]

    def state_dict(self) -> dict:
        return {"pass_state": self.pass_state, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["pass_state"]
        self._new_pass()
        self.pos = state["pos"]


def eval_batches(enc: Encoded, batch_size: int) -> Iterator[np.ndarray]:
    """Row-index batches over the whole split, sorted by length (callers scatter results back by index)."""
    order = np.argsort(enc.lengths, kind="stable")
    for i in range(0, len(order), batch_size):
        yield order[i: i + batch_size]
