"""linearard for PyTorch / transformers / PEFT users: the relation-KL op (relation_kl,
relation_kl_self) and LinearARD's distillation loss on a PEFT model (RelationDistillLoss)."""
from .relation_kl import relation_kl, relation_kl_self

__all__ = ["relation_kl", "relation_kl_self", "RelationDistillLoss", "DistillLossOutput"]


def __getattr__(name):
    # The loss needs transformers; the op alone does not.
    if name in ("RelationDistillLoss", "DistillLossOutput"):
        from . import distill_loss
        return getattr(distill_loss, name)
    raise AttributeError(f"module 'linearard' has no attribute {name!r}")
