"""IsolationForest scoring over flat arrays: the same numbers as scikit-learn, without its
per-tree Python overhead on small batches.

scikit-learn scores a batch tree by tree (about 0.15 ms of overhead per tree and call), which
dominates when the daemon scores a few hundred SIMs every tick. Here all trees are walked at
once, level by level, over an (rows × trees) matrix of node indices; past a few thousand rows
scikit-learn's compiled loop is faster again, so large batches go to it. Both give the same
``score_samples`` (checked in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import IsolationForest


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): the mean path length of an unsuccessful search in a binary search tree
    (Liu et al. 2008), as scikit-learn computes it."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


SMALL_BATCH = 2000  # rows; above this scikit-learn's own loop is faster


@dataclass(frozen=True, slots=True, eq=False)
class FlatForest:
    left: np.ndarray        # int64 global child index; a leaf points to itself
    right: np.ndarray
    feature: np.ndarray     # int64 column of X tested at each node
    threshold: np.ndarray   # float64
    leaf_depth: np.ndarray  # float64 path length credited at a leaf (depth + c(samples))
    roots: np.ndarray       # int64 root node of each tree
    normaliser: float       # c(max_samples) * number of trees
    max_depth: int
    forest: IsolationForest

    @classmethod
    def from_iforest(cls, forest: IsolationForest) -> FlatForest:
        lefts, rights, feats, thrs, depths, roots = [], [], [], [], [], []
        offset = max_depth = 0
        for est, cols in zip(forest.estimators_, forest.estimators_features_):
            t = est.tree_
            n = t.node_count
            depth = np.zeros(n)
            for node in range(n):  # children always come after their parent
                for child in (t.children_left[node], t.children_right[node]):
                    if child >= 0:
                        depth[child] = depth[node] + 1
            leaf = t.children_left == -1
            me = np.arange(n) + offset
            left = np.where(leaf, me, t.children_left + offset)    # leaves loop onto themselves
            right = np.where(leaf, me, t.children_right + offset)
            lefts.append(left)
            rights.append(right)
            feats.append(np.where(leaf, 0, np.asarray(cols)[np.maximum(t.feature, 0)]))
            thrs.append(np.where(leaf, np.inf, t.threshold))
            max_depth = max(max_depth, int(depth.max()))
            depths.append(np.where(leaf, depth + average_path_length(t.n_node_samples), 0.0))
            roots.append(offset)
            offset += n
        return cls(np.concatenate(lefts).astype(np.int64), np.concatenate(rights).astype(np.int64),
                   np.concatenate(feats).astype(np.int64), np.concatenate(thrs),
                   np.concatenate(depths), np.array(roots, np.int64),
                   float(average_path_length(np.array([forest.max_samples_]))[0] * len(roots)),
                   max_depth, forest)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Like ``IsolationForest.score_samples``: lower is more abnormal."""
        if len(X) > SMALL_BATCH:
            return self.forest.score_samples(X)
        X = np.asarray(X, dtype=np.float32)  # scikit-learn's trees compare float32 values
        out = np.empty(len(X))
        for start in range(0, len(X), 1024):  # bounded (rows × trees) work matrices
            x = X[start:start + 1024]
            flat = x.ravel()
            base = (np.arange(len(x)) * x.shape[1])[:, None]
            node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
            for _ in range(self.max_depth):
                go_left = flat[base + self.feature[node]] <= self.threshold[node]
                node = np.where(go_left, self.left[node], self.right[node])
            out[start:start + len(x)] = -(2.0 ** (-self.leaf_depth[node].sum(axis=1) / self.normaliser))
        return out
