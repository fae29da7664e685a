"""Speed and memory of jaxgan's training steps against PyTorch references (``benchmarks.run``)."""
