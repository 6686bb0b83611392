"""linearard for PyTorch / transformers / PEFT users: the relation-KL op (relation_kl,
relation_kl_self), LinearARD's distillation loss on a PEFT model (RelationDistillLoss), and the
commands as calls with the flags as keyword arguments (distill, cpt, pretrain, export, report)."""
from .relation_kl import relation_kl, relation_kl_self
from .run import cpt, distill, export, pretrain, report

__all__ = ["relation_kl", "relation_kl_self", "RelationDistillLoss", "DistillLossOutput",
           "distill", "cpt", "pretrain", "export", "report"]


def __getattr__(name):
    # The loss needs transformers; the op alone does not.
    if name in ("RelationDistillLoss", "DistillLossOutput"):
        from . import distill_loss
        return getattr(distill_loss, name)
    raise AttributeError(f"module 'linearard' has no attribute {name!r}")
