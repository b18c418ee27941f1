"""Training: the loop, checkpoints, optimizers, EMA, metrics and distributed helpers."""
