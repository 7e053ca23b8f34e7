"""mbrl: model-based offline reinforcement learning on PyTorch."""

__version__ = "0.1.0"
