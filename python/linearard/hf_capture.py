"""What one forward pass of a transformers LLaMA-family model (llama, mistral, qwen2, qwen3;
transformers 5.x) shows the distillation loss: each selected layer's post-RoPE Q and K and its V,
exactly as the attention function receives them (key and value not repeated for GQA), and each
selected decoder layer's output.

Capture point: the attention modules of these models (modeling_llama.py and its siblings,
`LlamaAttention.forward`) apply RoPE, then call
`ALL_ATTENTION_FUNCTIONS.get_interface(config._attn_implementation, eager_attention_forward)`.
During a capturing pass the config names a registered wrapper of the model's own implementation
(transformers' `AttentionInterface.register`, with the matching `AttentionMaskInterface` entry
so that the masks are built as before), which records its inputs and calls the original.
"""
import contextlib
import copy
import sys

from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")
_WRAPPER_PREFIX = "linearard_capture_"
_active = None  # the Captures of the capturing pass in progress


class Captures:
    """One pass: qkv[layer] = (q (B, H, T, D), k (B, Hk, T, D), v (B, Hk, T, D)), hidden[layer] = (B, T, C)."""

    def __init__(self, layers):
        self.layers = frozenset(layers)
        self.qkv = {}
        self.hidden = {}


def _capturing_attention(implementation):
    def attention(module, query, key, value, attention_mask, **kwargs):
        if _active is not None and module.layer_idx in _active.layers:
            _active.qkv[module.layer_idx] = (query, key, value)
        if implementation == "eager":  # each modeling file has its own eager_attention_forward
            original = sys.modules[type(module).__module__].eager_attention_forward
        else:
            original = ALL_ATTENTION_FUNCTIONS[implementation]
        return original(module, query, key, value, attention_mask, **kwargs)

    return attention


def _wrapper_name(implementation):
    name = _WRAPPER_PREFIX + implementation
    if name not in ALL_ATTENTION_FUNCTIONS:
        AttentionInterface.register(name, _capturing_attention(implementation))
        AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[implementation])
    return name


@contextlib.contextmanager
def capturing(decoder, config, layers, hidden):
    """Within the block, forwards of the model owning `decoder` (its transformers body: `layers`,
    `rotary_emb`) and `config` record the Q/K/V of `layers` (and their outputs when `hidden`)."""
    global _active
    if _active is not None:
        raise RuntimeError("a linearard capturing pass is already running")
    captures = Captures(layers)
    implementation = config._attn_implementation
    wrapper = _wrapper_name(implementation)
    hooks = []
    if hidden:
        for layer in layers:
            def record(module, args, output, layer=layer):
                if _active is captures:
                    captures.hidden[layer] = output[0] if isinstance(output, tuple) else output
            hooks.append(decoder.layers[layer].register_forward_hook(record))
    config._attn_implementation = wrapper
    _active = captures
    try:
        yield captures
    finally:
        _active = None
        config._attn_implementation = implementation
        for h in hooks:
            h.remove()


def rotary_embedding_for(decoder, config, rope_parameters):
    """The model's rotary embedding class built for `rope_parameters` (a transformers 5.x
    rope_parameters dict), on the device of the model's own."""
    teacher_config = copy.deepcopy(config)
    teacher_config.rope_parameters = dict(rope_parameters)
    own = decoder.rotary_emb
    return type(own)(config=teacher_config).to(own.inv_freq.device)


@contextlib.contextmanager
def rotary_embedding(decoder, module):
    """Within the block the model's forward uses `module` for its RoPE cos/sin tables."""
    own = decoder.rotary_emb
    decoder.rotary_emb = module
    try:
        yield
    finally:
        decoder.rotary_emb = own
