"""Groups in a contact graph: the calling groups' structure, peeled to its core."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def linked_groups(a: np.ndarray, b: np.ndarray, n: int, min_links: int, min_size: int = 1,
                  heard_outside: Callable[[np.ndarray], np.ndarray] | None = None) -> list[np.ndarray]:
    """The connected groups of at least ``min_size`` nodes of the undirected graph on ``n``
    nodes with edges (``a[i]``, ``b[i]``) in which each node has ``min_links`` neighbours (with
    2, the 2-core): nodes with fewer are peeled off until none is left. With ``heard_outside``
    (called with a group's nodes: per node, how many numbers outside that group called it), so
    are nodes called by more outsiders than they have neighbours: a box imitating people keeps
    itself company, people are called by others. Each group is judged on its own: the numbers
    of another group are outsiders to it (one mask of every group's numbers would hide
    everyone's callers)."""
    keep = a != b
    a, b = a[keep], b[keep]
    pair = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), axis=0)
    alive = np.ones(n, bool)
    while True:
        live = pair[alive[pair[:, 0]] & alive[pair[:, 1]]]
        deg = np.bincount(live.ravel(), minlength=n)
        peel = alive & (deg < min_links)
        if not peel.any():
            groups = components(live, alive, n)
            for g in groups:
                if len(g) < min_size:
                    peel[g] = True
                elif heard_outside is not None:
                    peel[g[heard_outside(g) > deg[g]]] = True
            if not peel.any():
                return groups
        alive &= ~peel


def components(pairs: np.ndarray, alive: np.ndarray, n: int) -> list[np.ndarray]:
    """The connected groups of the ``alive`` nodes joined by ``pairs``."""
    if not len(pairs):
        return []
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    return [np.flatnonzero(alive & (label == g)) for g in np.unique(label[alive])]
