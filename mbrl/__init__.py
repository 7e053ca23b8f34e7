"""mbrl: model-based offline reinforcement learning on PyTorch."""

from mbrl import resolvers as _resolvers

# Before any config is composed: presets call ``${mbrl.hidden_sizes:...}`` (mbrl/resolvers.py).
_resolvers.register()

__version__ = "0.1.0"
