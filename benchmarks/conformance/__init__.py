"""Conformance fixtures: the published reference implementations' outputs on fixed inputs.

Each module here builds one reference repository's classes (from a checkout outside this
repository), feeds them small float64 inputs with fixed weights and noise, and records every loss
term, target, gradient and the parameters after one optimiser step under
``tests/golden/conformance/``. The tests in ``tests/test_conformance_*.py`` load those files, build
our classes with the same weights and inputs, and compare. Regenerate with::

    python -m benchmarks.conformance --refs DIR          # DIR holds the reference checkouts

``DIR`` must hold ``OfflineRL-Kit``, ``edge-of-reach``, ``morec`` and ``CORL`` checkouts (any
subset works with ``--only``). Each generator runs in its own process, since OfflineRL-Kit and
polixir/morec both ship a package named ``offlinerlkit``.
"""
