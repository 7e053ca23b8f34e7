"""Exact Euclidean nearest-neighbour search over a fixed point set, on the CPU and on a GPU.

PRDC (Ran et al., ICML 2023) looks up, at every actor update, the dataset pair nearest to each
``(beta * s, pi(s))`` of the batch: a few hundred queries against up to ~1M points of dimension
``obs_dim + act_dim`` (~25). Two backends answer that question exactly:

* ``KDTreeSearch``: scipy's KD-tree on the CPU (the official PRDC code's choice). Its cost depends
  on the data: small when the points lie near a low-dimensional set (trajectories), close to a
  full scan on structureless high-dimensional data.
* ``MatmulSearch``: ``|x|^2 - 2 q.x`` for chunks of points as one matrix product on the points'
  device, the few smallest kept as candidates and re-ranked exactly. Always a full scan, but a
  large GEMM, so it is the fast choice on a GPU.

Contract of ``query`` (both backends): ``queries [B, D] -> indices [B]`` (int64, on the queries'
device) of a point at minimal Euclidean distance, the distance computed in float64 from the
float32 inputs; among points at exactly the same distance, the lowest index. So the two backends
return the same indices (barring distances that differ only by float64 rounding, which each sums
in its own order).

Which is faster on a CPU depends on the data (``benchmarks/nn_search.py``, one busy thread, 256
PRDC queries): on this project's 100k-transition datasets the KD-tree took 27 ms on hopper-medium
(14-D keys) against 71 ms for the matmul, but 320 ms against 69 ms on halfcheetah-medium (23-D);
on 1M structureless 23-D points, 7.3 s against 1.1 s.
"""

from __future__ import annotations

from typing import Protocol

import torch

SEARCH_BACKENDS = ("auto", "kdtree", "matmul")

# Unit roundoff of a float32 matrix product for each ``torch.set_float32_matmul_precision`` level:
# full float32, TF32 (10 mantissa bits) and bfloat16 (7 mantissa bits).
_MATMUL_ROUNDOFF = {"highest": 2.0**-24, "high": 2.0**-11, "medium": 2.0**-8}


class NearestNeighbourSearch(Protocol):
    def query(self, queries: torch.Tensor) -> torch.Tensor:
        """``queries [B, D]`` -> indices ``[B]`` of the nearest points (lowest index among ties)."""
        ...


def build_search(points: torch.Tensor, backend: str = "auto") -> NearestNeighbourSearch:
    """An exact search over ``points [N, D]``; ``auto`` is ``matmul``: its cost is a predictable full scan,
    while the KD-tree's grows with the data's dimension (faster on hopper, 4.6x slower on halfcheetah)."""
    if backend == "auto":
        backend = "matmul"
    if backend == "kdtree":
        return KDTreeSearch(points)
    if backend == "matmul":
        return MatmulSearch(points)
    raise ValueError(f"unknown nearest-neighbour backend {backend!r}; choose one of {', '.join(SEARCH_BACKENDS)}")


def exact_nearest(points: torch.Tensor, queries: torch.Tensor, block_elements: int = 2**24) -> torch.Tensor:
    """Brute force: ``points [N, D]``, ``queries [B, D]`` -> indices ``[B]`` into ``points``.

    Squared distances are summed from float64 differences (no ``|x|^2 - 2 q.x`` cancellation),
    ``block_elements`` at a time. ``min`` returns the first of equal minima and a later block
    must be strictly closer to win, so ties go to the lowest index.
    """
    points64 = points.to(torch.float64)
    queries64 = queries.to(points.device, torch.float64)
    best_d = torch.full((len(queries64),), torch.inf, dtype=torch.float64, device=points.device)
    best_i = torch.zeros(len(queries64), dtype=torch.long, device=points.device)
    chunk = max(1, block_elements // max(1, queries64.numel()))
    for start in range(0, len(points64), chunk):
        d = (queries64[:, None, :] - points64[None, start : start + chunk, :]).pow(2).sum(-1)  # [B, chunk]
        d_min, i_min = d.min(dim=1)
        closer = d_min < best_d
        best_d = torch.where(closer, d_min, best_d)
        best_i = torch.where(closer, i_min + start, best_i)
    return best_i


def _unique_rows(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``points [N, D]`` -> (distinct rows ``[U, D]`` in order of first occurrence, that index ``[U]``).

    Duplicates would be exact ties on every query that lands on them; removing them up front keeps
    the tie handling below (a second KD-tree neighbour, the matmul certificate) off the slow path.
    """
    if len(points) == 0:
        raise ValueError("cannot search an empty point set")
    if not torch.isfinite(points).all():
        raise ValueError("the points to search contain NaN or inf")
    unique, inverse = torch.unique(points, dim=0, return_inverse=True)
    n = len(points)
    first = torch.full((len(unique),), n, device=points.device)
    first.scatter_reduce_(0, inverse, torch.arange(n, device=points.device), reduce="amin")
    order = first.argsort()
    return unique[order], first[order]


class KDTreeSearch:
    """Exact search with ``scipy.spatial.KDTree`` (float64) on the CPU.

    Each query asks for its two nearest points: when they are equally far the tie is resolved by
    brute force, so the lowest index wins as in ``MatmulSearch``. The tree uses
    ``torch.get_num_threads()`` workers, so it follows the run's thread setting.
    ``exact_fallbacks`` counts the query rows that took the brute-force path.
    """

    def __init__(self, points: torch.Tensor) -> None:
        # Imported here: scipy.spatial costs every training process ~0.6 s at start, and only PRDC uses it.
        from scipy.spatial import KDTree

        unique, self.original_index = _unique_rows(points.detach().cpu().to(torch.float32))
        self.points = unique.to(torch.float64)
        self.tree = KDTree(self.points.numpy())
        self.exact_fallbacks = 0

    def query(self, queries: torch.Tensor) -> torch.Tensor:
        q = queries.detach().cpu().to(torch.float32).to(torch.float64)
        ranks = [1, 2] if len(self.points) > 1 else [1]
        dist, pos = self.tree.query(q.numpy(), k=ranks, workers=torch.get_num_threads())
        best = torch.from_numpy(pos[:, 0]).long()
        if len(ranks) == 2:
            tied = torch.from_numpy(dist[:, 0] == dist[:, 1])
            if tied.any():
                best[tied] = exact_nearest(self.points, q[tied])
                self.exact_fallbacks += int(tied.sum())
        return self.original_index[best].to(queries.device)


class MatmulSearch:
    """Exact search by chunked matrix products on the points' device, with a certificate.

    For each chunk, ``r_j = |x_j|^2 - 2 q.x_j`` (``= |q - x_j|^2 - |q|^2``, so it ranks points like
    the distance) comes from one ``addmm`` on centred float32 coordinates, and the ``candidates``
    smallest ``r`` survive. Their distances are recomputed exactly (float64 differences) and the
    nearest taken, lowest index among ties.

    Rounding makes ``r`` inexact, so the answer is certified: every point left out has
    ``r_j >= r_(k)`` (the largest kept value), hence ``|q - x_j|^2 >= r_(k) + |q|^2 - err`` with
    ``err = 2 (D + 4) u (max_j |x_j| + |q|)^2`` bounding the rounding of the centring, the norms
    and the product (``u`` the unit roundoff of the current float32 matmul precision). Rows whose
    best candidate is not strictly closer than that are redone by brute force and counted in
    ``exact_fallbacks``. Working memory is about ``block_elements`` floats per chunk.
    """

    def __init__(self, points: torch.Tensor, candidates: int = 8, block_elements: int = 2**24) -> None:
        self.points, self.original_index = _unique_rows(points.detach().to(torch.float32))
        self.centre = self.points.mean(dim=0)
        self.centred = self.points - self.centre  # small coordinates keep the cancellation error small
        self.sq_norms = self.centred.pow(2).sum(dim=1)
        self.max_norm = float(self.sq_norms.max().sqrt())
        self.candidates = candidates
        self.block_elements = block_elements
        self.exact_fallbacks = 0

    def query(self, queries: torch.Tensor) -> torch.Tensor:
        q = queries.detach().to(self.points.device, torch.float32)
        q_centred = q - self.centre
        n, k = len(self.points), min(self.candidates, len(self.points))
        chunk = max(k, self.block_elements // max(1, len(q)))
        kept_r = kept_i = None
        for start in range(0, n, chunk):
            part = slice(start, start + chunk)
            r = torch.addmm(self.sq_norms[part], q_centred, self.centred[part].T, alpha=-2)  # [B, chunk]
            r, i = r.topk(min(k, r.shape[1]), dim=1, largest=False)
            i = i + start
            if kept_r is not None:
                r, j = torch.cat([kept_r, r], dim=1).topk(k, dim=1, largest=False)
                i = torch.cat([kept_i, i], dim=1).gather(1, j)
            kept_r, kept_i = r, i

        d = (self.points[kept_i].to(torch.float64) - q.to(torch.float64)[:, None, :]).pow(2).sum(-1)  # [B, k]
        d_best = d.min(dim=1).values
        best = torch.where(d == d_best[:, None], kept_i, n).min(dim=1).values
        if k < n:
            u = _MATMUL_ROUNDOFF[torch.get_float32_matmul_precision()]
            q_norm = q_centred.to(torch.float64).norm(dim=1)
            err = 2 * (q.shape[1] + 4) * u * (self.max_norm + q_norm).pow(2)
            unsure = ~(d_best < kept_r.max(dim=1).values.to(torch.float64) + q_norm.pow(2) - err)
            if unsure.any():
                best[unsure] = exact_nearest(self.points, q[unsure])
                self.exact_fallbacks += int(unsure.sum())
        return self.original_index[best].to(queries.device)
