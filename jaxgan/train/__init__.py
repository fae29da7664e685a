"""Training: the shared loop, the compiled steps of each family, and the experiment runner."""
