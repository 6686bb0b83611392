"""RelationDistillLoss: LinearARD's attention-relation distillation loss (arXiv 2604.00004, §3 and
§6) on a transformers + PEFT model, the same loss as `linearard distill` (src/train/objective.h).

One copy of the base weights: the student is the PEFT model as it is (adapters on, the model's
own, scaled RoPE); the teacher is the same model with its adapters disabled and the native RoPE,
run under no_grad. Per selected layer l and relation X in {Q, K, V} (post-RoPE Q and K, V as is):

    R_l^X = sum over (b, h, valid rows i) of KL(teacher || student) of the row softmax of
            <x_i, x_j> / sqrt(head_dim), causal with the diagonal, padding keys excluded
    X term = w_X * mean over the layers of R_l^X / (valid tokens x H)   (H_kv for K and V with
             kv_normalization="kv-heads")
    hidden = hidden_weight * mean over the layers of the mean over valid tokens of
             1 - cos(student, teacher) of the layer's output (LongReD, arXiv 2502.07365)
    logits = KL(teacher || student) of log_softmax(logits / temperature) on the last
             logits_kl_last positions (0: all), averaged over those positions
    lm     = the student's next-token cross-entropy
    loss   = Q + K + V + hidden + logits_kl_weight * logits + lm_weight * lm

Keyword arguments are named like `linearard distill`'s flags; the defaults are the paper's loss.
"""
import dataclasses
import math
from typing import Optional

import torch
import torch.nn.functional as F

from . import hf_capture
from .relation_kl import relation_kl_self

_RELATIONS = ("q", "k", "v")
_KV_NORMALIZATIONS = ("query-heads", "kv-heads")


@dataclasses.dataclass
class DistillLossOutput:
    """The loss and its parts as `linearard distill` logs them (metrics.jsonl): q, k, v and hidden
    weighted and averaged over the layers, logits and lm unweighted; None where not computed."""

    loss: torch.Tensor
    q: Optional[torch.Tensor] = None
    k: Optional[torch.Tensor] = None
    v: Optional[torch.Tensor] = None
    hidden: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None
    lm: Optional[torch.Tensor] = None


class RelationDistillLoss:
    """loss_fn = RelationDistillLoss(peft_model); out = loss_fn(input_ids, attention_mask); out.loss.backward()

    peft_model: a PEFT model (peft.get_peft_model) over a transformers LlamaForCausalLM,
    MistralForCausalLM, Qwen2ForCausalLM or Qwen3ForCausalLM loaded with the student's (scaled)
    RoPE. teacher_rope: the native RoPE as a transformers rope_parameters dict; default
    {"rope_type": "default", "rope_theta": <the model's>} (pass it for checkpoints whose native RoPE
    is itself scaled, e.g. Llama 3.1's "llama3"). Gradient checkpointing must be non-reentrant
    (gradient_checkpointing_kwargs={"use_reentrant": False}): the captured Q/K/V need their graph.
    """

    def __init__(self, model, *, teacher_rope=None, layers="all", relations="q,k,v", weight_q=1.0,
                 weight_k=1.0, weight_v=1.0, kv_normalization="query-heads", logits_kl_weight=0.0,
                 logits_kl_last=512, temperature=1.0, hidden_weight=0.0, lm_weight=0.0):
        if not hasattr(model, "disable_adapter") or not hasattr(model, "get_base_model"):
            raise ValueError("model must be a PEFT model (peft.get_peft_model): the teacher is the same "
                             f"model with its adapters disabled, got {type(model).__name__}.")
        self.model = model
        base = model.get_base_model()
        self._config = base.config
        self._decoder = base.base_model
        model_type = getattr(self._config, "model_type", None)
        if model_type not in hf_capture.SUPPORTED_MODEL_TYPES:
            raise ValueError(f"model has model_type {model_type!r}; supported: "
                             f"{', '.join(hf_capture.SUPPORTED_MODEL_TYPES)}.")
        self.layers = _parse_layers(layers, self._config.num_hidden_layers)
        self.relations = _parse_relations(relations)
        self.weights = {"q": _number("weight_q", weight_q), "k": _number("weight_k", weight_k),
                        "v": _number("weight_v", weight_v)}
        if kv_normalization not in _KV_NORMALIZATIONS:
            raise ValueError(f"kv_normalization must be 'query-heads' or 'kv-heads', got {kv_normalization!r}.")
        self.kv_normalization = kv_normalization
        self.logits_kl_weight = _number("logits_kl_weight", logits_kl_weight)
        if isinstance(logits_kl_last, bool) or not isinstance(logits_kl_last, int) or logits_kl_last < 0:
            raise ValueError(f"logits_kl_last must be an integer >= 0 (0: every position), got {logits_kl_last!r}.")
        self.logits_kl_last = logits_kl_last
        self.temperature = _number("temperature", temperature)
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}.")
        self.hidden_weight = _number("hidden_weight", hidden_weight)
        self.lm_weight = _number("lm_weight", lm_weight)
        if not self.relations and not (self.hidden_weight or self.logits_kl_weight or self.lm_weight):
            raise ValueError("relations is empty and every other weight is 0: the loss would have no term.")
        self.teacher_rope = _teacher_rope(teacher_rope, self._config.rope_parameters)
        self._teacher_rotary = None  # built on the first call, on the model's device

    def __call__(self, input_ids, attention_mask=None, *, model=None):
        """input_ids (B, T) token ids and attention_mask (B, T) (1 = token, 0 = padding) on the model's
        device. `model`: the module to run the student pass through when the trainer wrapped the
        PEFT model (e.g. DistributedDataParallel); default the PEFT model itself."""
        _check_batch(input_ids, attention_mask, self._decoder.embed_tokens.weight.device)
        B, T = input_ids.shape
        key_mask = None if attention_mask is None else attention_mask.bool()
        valid_tokens = float(B * T) if key_mask is None else float(key_mask.sum())
        if valid_tokens == 0:
            raise ValueError("attention_mask has no valid token.")
        teacher, t_logits = self._teacher_pass(input_ids, attention_mask)
        student, s_logits = self._pass(model or self.model, input_ids, attention_mask)

        out = DistillLossOutput(loss=None)
        config = self._config
        heads = {"q": config.num_attention_heads,
                 "k": config.num_key_value_heads if self.kv_normalization == "kv-heads" else config.num_attention_heads}
        heads["v"] = heads["k"]
        per_layer = 1.0 / len(self.layers)
        if self.relations:
            self._check_student_graph(student.qkv[self.layers[0]][0])
        for index, name in enumerate(_RELATIONS):
            if name not in self.relations:
                continue
            term = None
            for layer in self.layers:
                xs, xt = student.qkv[layer][index], teacher.qkv[layer][index]
                scale = 1.0 / math.sqrt(xs.shape[-1])  # the same on both sides (paper §6.2)
                kl_sum = relation_kl_self(xs, xt, key_mask, causal=True, scale_s=scale, scale_t=scale)
                part = kl_sum * (self.weights[name] * per_layer / (valid_tokens * heads[name]))
                term = part if term is None else term + part
            setattr(out, name, term)
        if self.hidden_weight:
            out.hidden = sum(_one_minus_cos(student.hidden[l], teacher.hidden[l], key_mask) for l in self.layers) * (
                self.hidden_weight * per_layer / valid_tokens)
        if self.logits_kl_weight:
            out.logits = _logits_kl(s_logits, t_logits, key_mask, self.logits_kl_last, self.temperature)
        if self.lm_weight:
            out.lm = _lm_loss(s_logits, input_ids, key_mask)
        terms = [t for t in (out.q, out.k, out.v, out.hidden) if t is not None]
        if out.logits is not None:
            terms.append(out.logits * self.logits_kl_weight)
        if out.lm is not None:
            terms.append(out.lm * self.lm_weight)
        out.loss = sum(terms[1:], terms[0])
        return out

    def _check_student_graph(self, q):
        """Reentrant gradient checkpointing runs the layers under no_grad: the captures would carry
        no gradient and the loss would train nothing (paper §6.11)."""
        if not q.requires_grad and torch.is_grad_enabled() and any(p.requires_grad for p in self.model.parameters()):
            raise ValueError("the student's captured Q/K/V carry no gradient: gradient checkpointing must be "
                             "non-reentrant (gradient_checkpointing_kwargs={'use_reentrant': False}).")

    def _logits_to_keep(self, T):
        """Logits positions the loss reads (transformers' logits_to_keep; 0 = all)."""
        if self.lm_weight:
            return 0
        if self.logits_kl_weight:
            return 0 if self.logits_kl_last == 0 or self.logits_kl_last >= T else self.logits_kl_last
        return 1

    def _pass(self, model, input_ids, attention_mask):
        with hf_capture.capturing(self._decoder, self._config, self.layers, hidden=bool(self.hidden_weight)) as c:
            output = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                           logits_to_keep=self._logits_to_keep(input_ids.shape[1]))
        return c, output.logits

    def _teacher_pass(self, input_ids, attention_mask):
        if self._teacher_rotary is None:
            self._teacher_rotary = hf_capture.rotary_embedding_for(self._decoder, self._config, self.teacher_rope)
        with torch.no_grad(), self.model.disable_adapter(), hf_capture.rotary_embedding(
                self._decoder, self._teacher_rotary):
            return self._pass(self.model, input_ids, attention_mask)


def _one_minus_cos(hs, ht, key_mask):
    """sum over valid tokens of 1 - cos(hs, ht), float32."""
    cos = F.cosine_similarity(hs.float(), ht.detach().float(), dim=-1, eps=1e-8)  # (B, T)
    gap = 1.0 - cos
    return (gap if key_mask is None else gap * key_mask).sum()


def _logits_kl(s_logits, t_logits, key_mask, last, temperature):
    """KL(teacher || student) of log_softmax(logits / temperature), float32, averaged over the last
    `last` positions (0: all) that are valid."""
    T = key_mask.shape[1] if key_mask is not None else None
    k = s_logits.shape[1] if last == 0 else min(last, s_logits.shape[1])
    log_s = torch.log_softmax(s_logits[:, -k:].float() / temperature, -1)
    log_t = torch.log_softmax(t_logits[:, -k:].detach().float() / temperature, -1)
    rows = (log_t.exp() * (log_t - log_s)).sum(-1)  # (B, k)
    if key_mask is None:
        return rows.mean()
    keep = key_mask[:, T - k:]
    return (rows * keep).sum() / keep.sum().clamp(min=1)


def _lm_loss(s_logits, input_ids, key_mask):
    """Mean next-token cross-entropy of the student over the valid targets, float32."""
    labels = input_ids[:, 1:]
    if key_mask is not None:
        labels = labels.masked_fill(~key_mask[:, 1:], -100)
    V = s_logits.shape[-1]
    return F.cross_entropy(s_logits[:, :-1].float().reshape(-1, V), labels.reshape(-1), ignore_index=-100)


def _parse_layers(layers, num_layers):
    if layers == "all" or layers is None:
        return list(range(num_layers))
    if isinstance(layers, str):
        try:
            layers = [int(x) for x in layers.split(",")]
        except ValueError:
            raise ValueError(f"layers must be 'all', a list of layer indices or a string like '0,1,5', got {layers!r}.") from None
    if isinstance(layers, int) or not all(isinstance(l, int) and not isinstance(l, bool) for l in layers):
        raise ValueError(f"layers must be 'all', a list of layer indices or a string like '0,1,5', got {layers!r}.")
    layers = sorted(set(layers))
    if not layers or layers[0] < 0 or layers[-1] >= num_layers:
        raise ValueError(f"layers must be indices in [0, {num_layers}), got {layers!r}.")
    return layers


def _parse_relations(relations):
    names = relations.split(",") if isinstance(relations, str) else list(relations)
    names = [n.strip() for n in names if n.strip()]
    if any(n not in _RELATIONS for n in names):
        raise ValueError(f"relations must be a subset of q,k,v, got {relations!r}.")
    return set(names)


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    return float(value)


def _teacher_rope(teacher_rope, student_rope):
    native = {"rope_type": "default", "rope_theta": student_rope["rope_theta"]}
    if teacher_rope is None:
        if student_rope.get("rope_type", "default") == "default":
            raise ValueError("teacher_rope is None but the model's own RoPE is already native (rope_type "
                             "'default'): load the student with a scaled RoPE (rope_parameters such as "
                             "{'rope_type': 'linear', 'factor': 4.0}) or pass teacher_rope.")
        return native
    if not isinstance(teacher_rope, dict) or "rope_type" not in teacher_rope:
        raise ValueError(f"teacher_rope must be a transformers rope_parameters dict with 'rope_type', got {teacher_rope!r}.")
    return {**native, **teacher_rope}


def _check_batch(input_ids, attention_mask, device):
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
        raise ValueError(f"input_ids must be a (B, T) tensor of token ids, got "
                         f"{getattr(input_ids, 'shape', type(input_ids).__name__)}.")
    if input_ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"input_ids must hold integer token ids, got {input_ids.dtype}.")
    if input_ids.device != device:
        raise ValueError(f"input_ids is on {input_ids.device} but the model is on {device}.")
    if attention_mask is None:
        return
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask must have input_ids' shape {tuple(input_ids.shape)}, got "
                         f"{getattr(attention_mask, 'shape', type(attention_mask).__name__)}.")
    if attention_mask.device != device:
        raise ValueError(f"attention_mask is on {attention_mask.device} but the model is on {device}.")
