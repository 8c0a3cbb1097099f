"""Deep nets of papers 000 (Table 1) and 002: architectures, datasets, training with entropic optimizers."""
