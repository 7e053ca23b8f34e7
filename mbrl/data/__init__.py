"""Datasets: the ``Transitions``/``DatasetSpec`` contract, loaders, generation and scores."""
