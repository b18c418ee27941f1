"""The shapes world: a procedural, web-like text-to-image dataset with pixel-computable rewards."""
