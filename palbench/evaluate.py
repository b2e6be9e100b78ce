"""Evaluation of a trained model on a split.

:func:`predict` gives the logits of a split in order; the metrics of ``palbench evaluate`` build on it.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from palbench.data.dataset import FaceDataset


@torch.no_grad()
def predict(
    model: torch.nn.Module, dataset: FaceDataset, device: torch.device | str = "cpu", batch_size: int = 64, workers: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``[N, K]`` (float32, CPU) and labels ``[N]`` of every sample of ``dataset``, in order (eval mode)."""
    was_training = model.training
    model.eval()
    logits, labels = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers):
        logits.append(model(batch["image"].to(device)).float().cpu())
        labels.append(batch["label"])
    model.train(was_training)
    return torch.cat(logits), torch.cat(labels)
