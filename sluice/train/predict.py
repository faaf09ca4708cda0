"""Turn a model's logits into predictions a caller can use, without gradients.

Example::

    model = load_model("out/model")
    predict(model, dense, sparse, "binary")       # np.ndarray [B]: P(label = 1)
    predict(model, dense, sparse, "multiclass")   # np.ndarray [B, C]: class probabilities
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["predict"]


def predict(model: nn.Module, dense: np.ndarray | torch.Tensor, sparse: np.ndarray | torch.Tensor, task: str) -> np.ndarray:
    """binary -> probability of class 1 [B]; multiclass -> probabilities [B, C]; regression -> value [B].

    Inputs are cast to float32 / int64 and moved to the model's device. The model's mode is
    left as is: :func:`load_model` and ``fit`` return models in eval mode.
    """
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    with torch.inference_mode():
        x = torch.as_tensor(dense, dtype=torch.float32, device=device)
        ids = torch.as_tensor(sparse, dtype=torch.int64, device=device)
        logits = model(x, ids).float()
        if task == "binary":
            out = torch.sigmoid(logits)
        elif task == "multiclass":
            out = torch.softmax(logits, dim=-1)
        elif task == "regression":
            out = logits
        else:
            raise ValueError(f"unknown task {task!r}")
        return out.cpu().numpy()
