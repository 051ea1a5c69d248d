"""PoseFix input-pose error synthesis (posefix_method.md §1.3-1.7), vectorised with numpy.

Every labeled joint of a ground-truth person becomes a synthetic "input pose" joint of one of five error types,
drawn from the reference's probability tables (by joint group, number of visible joints and crowdedness) and
renormalised over the types that can be sampled for this joint:

* good: within KS 0.85 of the joint, closer to it than to any other candidate;
* jitter: KS in [0.50, 0.85] of the joint, closer to it than to any other candidate;
* miss: KS in [0.10, 0.50] of any candidate (the joint, the same/mirrored joint of nearby persons, the mirrored
  joint of this person) and KS < 0.50 of every other candidate;
* inversion: within KS 0.50 of the mirrored joint of this person, closer to it than to any other candidate;
* swap: within KS 0.50 of the same or mirrored joint of a nearby person, closer to it than to this joint and to
  its mirrored joint.

KS radii: d_j(ks) = sqrt(-2 A (2 sigma_j)^2 ln ks), A the ground-truth box area in crop pixels (after
augmentation). "Candidates" and the closest-candidate rules are exactly the reference's (main/gen_batch.py),
including its sample counts (N = 500 for jitter and inversion, N per swap centre, 4N per miss centre with the
non-gt centres' survivors subsampled to a quarter, N/4 for good): a type is possible when at least one of its
samples survives the constraint, and the picked point is uniform among the survivors.

Exactness without paying for 2,000 x candidates x candidates distances per joint: surviving samples are i.i.d.
draws from "sample | survives", so a uniform pick among them has the same law as the first survivor of a
shorter sequence, and "at least one of S survives" can be decided on a first chunk of the S samples, drawing
the rest only for the few joints still undecided. Swap and miss pick their centre in proportion to survivor
counts, so for joints that end up with those types the remaining samples are drawn to complete the counts.
The result has the reference's distribution; only the work is smaller.

Deliberate deviation from the reference: the inversion candidate is the partner joint's ground truth (the
reference, which replaces joints one after the other, uses the partner's already-synthesised value for the
right-side joint of each pair). The reference's index quirk (a missing inversion candidate shifts the swap
step's bookkeeping) is not reproduced either.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from posefix_video.keypoints import KeypointLayout

GOOD, JITTER, MISS, INVERSION, SWAP = 0, 1, 2, 3, 4
ZEROED = -1
ERROR_TYPE_NAMES = ("good", "jitter", "miss", "inversion", "swap")

SAMPLES_N = 500  # the reference's N
_KS_GOOD, _KS_JITTER, _KS_MISS = 0.85, 0.50, 0.10

# Probability tables of the reference (posefix_method.md §1.6), per COCO slot index (both layouts use them).
_FACE = slice(0, 5)
_JITTER_NV_LE_10 = np.array([0.15] + [0.20] * 10 + [0.25] * 2 + [0.15] * 4)
_JITTER_NV_GT_10 = np.array([0.10] + [0.15] * 10 + [0.20] * 2 + [0.10] * 4)
_MISS_BY_BRACKET = np.array(
    [
        [0.15] * 5 + [0.20] * 2 + [0.25] * 8 + [0.20] * 2,  # nv <= 5
        [0.10] * 5 + [0.13] * 2 + [0.15] * 8 + [0.13] * 2,  # 6 <= nv <= 10
        [0.02] * 5 + [0.05] * 2 + [0.10] * 8 + [0.05] * 2,  # nv > 10
    ]
)
_INVERSION = np.array([0.01] * 5 + [0.03] * 6 + [0.06] * 6)
_SWAP_CROWDED = np.array([0.02] * 5 + [0.15] * 6 + [0.10] * 6)
_SWAP_NOT_CROWDED = np.array([0.01] * 5 + [0.06] * 6 + [0.03] * 6)


@dataclass
class SynthesisResult:
    """Synthesised input poses.

    Attributes:
        keypoints: (N, J, 2) float64, crop pixels; zeros where the joint is zeroed.
        valid: (N, J) bool, False where zeroed (no centre, an ignored slot, or no error type possible).
        error_type: (N, J) int8: 0 good, 1 jitter, 2 miss, 3 inversion, 4 swap, -1 zeroed.
    """

    keypoints: np.ndarray
    valid: np.ndarray
    error_type: np.ndarray


def ks_radius(ks: float, area: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """(N, J) radius at which the keypoint similarity exp(-d^2 / (2 A (2 sigma)^2)) equals `ks`.

    Args:
        ks: similarity in (0, 1).
        area: (N,) box areas in (crop) pixels^2.
        sigmas: (J,) OKS sigmas.
    """
    area = np.maximum(np.asarray(area, dtype=np.float64), 0.0)
    return np.sqrt(-2.0 * area[:, None] * (2.0 * np.asarray(sigmas))[None, :] ** 2 * np.log(ks))


def is_crowded(num_visible: np.ndarray, overlap: np.ndarray) -> np.ndarray:
    """(N,) bool: the reference's "crowded": (nv <= 10 and overlap > 0) or (nv <= 15 and overlap >= 3)."""
    nv = np.asarray(num_visible)
    overlap = np.asarray(overlap)
    return ((nv <= 10) & (overlap > 0)) | ((nv <= 15) & (overlap >= 3))


def nominal_probabilities(num_visible: np.ndarray, overlap: np.ndarray) -> np.ndarray:
    """(N, 17, 5) nominal probabilities of [good, jitter, miss, inversion, swap] before renormalisation.

    Args:
        num_visible: (N,) number of labeled ground-truth joints inside the crop.
        overlap: (N,) number of other persons whose box IoU with this person's box is >= 0.1.
    """
    nv = np.asarray(num_visible).reshape(-1)
    crowded = is_crowded(nv, np.asarray(overlap).reshape(-1))
    jitter = np.where((nv <= 10)[:, None], _JITTER_NV_LE_10, _JITTER_NV_GT_10)
    bracket = np.where(nv <= 5, 0, np.where(nv <= 10, 1, 2))
    miss = _MISS_BY_BRACKET[bracket]
    inversion = np.broadcast_to(_INVERSION, jitter.shape)
    swap = np.where(crowded[:, None], _SWAP_CROWDED, _SWAP_NOT_CROWDED)
    good = 1.0 - (jitter + miss + inversion + swap)
    return np.stack([good, jitter, miss, inversion, swap], axis=-1)


_SAMPLE_COUNT = {GOOD: SAMPLES_N // 4, JITTER: SAMPLES_N, MISS: 4 * SAMPLES_N, INVERSION: SAMPLES_N, SWAP: SAMPLES_N}
_PROPOSALS = 16  # rejection-sampling proposals per row and round (swap and miss points)
_REJECTION_ROUNDS = 4
_CHUNK = 8  # samples drawn first for every constrained centre; the rest only when needed


@dataclass
class _Pairs:
    """Flat list of (joint row, error type, centre) pairs, sorted by (row, type)."""

    row: np.ndarray  # (Q,) index into the joint rows
    etype: np.ndarray  # (Q,) error type
    centre: np.ndarray  # (Q, 2) centre point
    lo: np.ndarray  # (Q,) radius band
    hi: np.ndarray
    threshold: np.ndarray  # (Q,) fixed threshold (miss: d50); NaN = the sample's own radius
    quarter: np.ndarray  # (Q,) bool, miss around a non-gt centre: survivors count // 4
    active: np.ndarray  # (Q, K) bool, constraint candidates within reach
    count: np.ndarray  # (Q,) survivors so far
    point: np.ndarray  # (Q, 2) first survivor
    complete: np.ndarray  # (Q,) bool, all of the reference's samples drawn


@functools.lru_cache(maxsize=64)
def _pair_layout(num_near: int) -> tuple[np.ndarray, ...]:
    """Static description of the (type, centre) pairs of a row, in ascending type order.

    Returns etype (T,), centre candidate (T,), constraint masks (T, K), fixed-threshold flags (T,), quarter
    flags (T,), for candidates [gt, near joint (M), inversion, near partner joint (M)].
    """
    K = 2 + 2 * num_near
    inv = num_near + 1
    others = ~np.eye(K, dtype=bool)
    swap_cons = np.zeros(K, dtype=bool)
    swap_cons[[0, inv]] = True
    rows = [(GOOD, 0, others[0], False, False), (JITTER, 0, others[0], False, False)]
    rows += [(MISS, k, others[k], True, k > 0) for k in range(K)]
    rows += [(INVERSION, inv, others[inv], False, False)]
    rows += [(SWAP, k, swap_cons, False, False) for k in range(K) if k not in (0, inv)]
    out = (np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), np.stack([r[2] for r in rows]),
           np.array([r[3] for r in rows]), np.array([r[4] for r in rows]))  # fmt: skip
    for a in out:
        a.flags.writeable = False
    return out


def _build_pairs(P: np.ndarray, O: np.ndarray, bands: dict, d50: np.ndarray, num_near: int) -> _Pairs:
    """Enumerates every centre of every error type for every joint row, with its constraint candidates.

    Candidate layout per row (K = 2 + 2M): [gt, near joint (M), inversion, near partner joint (M)].
    """
    R, K = O.shape
    etype, cand, cons, fixed, quarter = _pair_layout(num_near)
    exists = O[:, cand]  # (R, T)
    ri, ti = np.nonzero(exists)  # row-major: sorted by row, then by type (the layout is in type order)
    lo = np.stack([bands[t][0] for t in etype], axis=1)[ri, ti]
    hi = np.stack([bands[t][1] for t in etype], axis=1)[ri, ti]
    threshold = np.where(fixed[ti], d50[ri], np.nan)
    centre = P[ri, cand[ti]]
    active = O[ri] & cons[ti]
    # A candidate farther than (band + threshold) from the centre can never reject a sample.
    reach = hi + np.where(fixed[ti], threshold, hi)
    gap = np.linalg.norm(P[ri] - centre[:, None, :], axis=-1)
    active &= gap <= reach[:, None]
    Q = ri.size
    return _Pairs(
        row=ri, etype=etype[ti], centre=centre, lo=lo, hi=hi, threshold=threshold, quarter=quarter[ti],
        active=active, count=np.zeros(Q, dtype=np.int64), point=np.zeros((Q, 2)), complete=np.zeros(Q, dtype=bool),
    )  # fmt: skip


def _sample(rng: np.random.Generator, pairs: _Pairs, idx: np.ndarray, P: np.ndarray, n: int) -> None:
    """Draws `n` more samples around the centres of pairs `idx`, counts survivors and keeps a first survivor."""
    if idx.size == 0 or n <= 0:
        return
    active = pairs.active[idx]
    free = ~active.any(-1)
    # Unconstrained centres keep every sample: count n, and one draw stands for the first survivor.
    f = idx[free]
    if f.size:
        angle = rng.uniform(0.0, 2.0 * np.pi, f.size)
        radius = pairs.lo[f] + (pairs.hi[f] - pairs.lo[f]) * rng.random(f.size)
        new = pairs.centre[f] + radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], -1)
        pairs.point[f] = np.where((pairs.count[f] > 0)[:, None], pairs.point[f], new)
        pairs.count[f] += n
    c_idx = idx[~free]
    if c_idx.size == 0:
        return
    # Keep only the constraint candidates in use (at most A per pair) to shrink the (pairs, n, A) work.
    act = pairs.active[c_idx]
    A = int(act.sum(-1).max())
    col = np.argsort(~act, axis=-1, kind="stable")[:, :A]
    cons_on = np.take_along_axis(act, col, -1)
    cons_pts = np.take_along_axis(P[pairs.row[c_idx]], col[..., None], 1)  # (q, A, 2)
    block = max(1, int(2_000_000 // (n * A)))  # bounds the (q, n, A) temporaries to ~16 MB
    for start in range(0, c_idx.size, block):
        sl = slice(start, start + block)
        i = c_idx[sl]
        q = i.size
        angle = rng.uniform(0.0, 2.0 * np.pi, (q, n))
        radius = pairs.lo[i, None] + (pairs.hi[i] - pairs.lo[i])[:, None] * rng.random((q, n))
        x = pairs.centre[i, 0, None] + radius * np.cos(angle)
        y = pairs.centre[i, 1, None] + radius * np.sin(angle)
        dx = x[..., None] - cons_pts[sl, None, :, 0]
        dy = y[..., None] - cons_pts[sl, None, :, 1]
        thr = np.where(np.isnan(pairs.threshold[i, None]), radius, pairs.threshold[i, None])
        blocked = ((dx * dx + dy * dy <= (thr * thr)[..., None]) & cons_on[sl, None, :]).any(-1)  # (q, n)
        survive = ~blocked
        got = survive.sum(-1)
        first = survive.argmax(-1)
        new = np.stack([x[np.arange(q), first], y[np.arange(q), first]], -1)
        keep_old = (pairs.count[i] > 0)[:, None]
        pairs.point[i] = np.where(keep_old, pairs.point[i], new)
        pairs.count[i] += got


def _draw_more(rng: np.random.Generator, pairs: _Pairs, select: np.ndarray, P: np.ndarray) -> None:
    """Completes pairs `select` (bool (Q,)) to the reference's sample count of their type."""
    select = select & ~pairs.complete
    idx = np.flatnonzero(select)
    if idx.size == 0:
        return
    types = pairs.etype[idx]
    for t in np.unique(types):
        n = _SAMPLE_COUNT[int(t)]
        _sample(rng, pairs, idx[types == t], P, n - min(_CHUNK, n))
    pairs.complete |= select


def _propose(
    rng: np.random.Generator, pairs: _Pairs, member: np.ndarray, pending: np.ndarray, out: np.ndarray, P: np.ndarray
) -> None:
    """One rejection round: _PROPOSALS proposals per pending row; accepted rows get `out` and leave `pending`.

    Args:
        member: (Q,) bool, the pairs of each pending row's chosen type; pending: (R,) bool; out: (R, 2).
    """
    q = np.where(member, np.where(pairs.quarter, 0.25, 1.0), 0.0)
    cum = np.cumsum(q)
    R = pending.size
    group_end = np.zeros(R)
    np.maximum.at(group_end, pairs.row, np.where(member, cum, 0.0))
    group_total = np.bincount(pairs.row, weights=q, minlength=R)
    rows = np.flatnonzero(pending)
    B = _PROPOSALS
    target = group_end[rows, None] - group_total[rows, None] * rng.random((rows.size, B))
    pick = np.searchsorted(cum, target.ravel(), side="left")
    Qp = pick.size
    prop = _Pairs(
        row=pairs.row[pick], etype=pairs.etype[pick], centre=pairs.centre[pick], lo=pairs.lo[pick],
        hi=pairs.hi[pick], threshold=pairs.threshold[pick], quarter=pairs.quarter[pick], active=pairs.active[pick],
        count=np.zeros(Qp, dtype=np.int64), point=np.zeros((Qp, 2)), complete=np.zeros(Qp, dtype=bool),
    )  # fmt: skip
    _sample(rng, prop, np.arange(Qp), P, 1)
    ok = (prop.count > 0).reshape(-1, B)
    done = ok.any(-1)
    first = ok.argmax(-1)
    points = prop.point.reshape(-1, B, 2)[np.arange(rows.size), first]
    out[rows[done]] = points[done]
    pending[rows[done]] = False


def _group_weights(pairs: _Pairs, R: int) -> np.ndarray:
    """(R, 5) pooled survivor count per joint row and type (miss: non-gt centres count // 4)."""
    w = np.where(pairs.quarter, pairs.count // 4, pairs.count)
    return np.bincount(pairs.row * 5 + pairs.etype, weights=w, minlength=R * 5).reshape(R, 5)


def synthesize_poses(
    gt: np.ndarray,
    gt_valid: np.ndarray,
    near: np.ndarray,
    near_valid: np.ndarray,
    area: np.ndarray,
    overlap: np.ndarray,
    layout: KeypointLayout,
    rng: np.random.Generator,
    estimated: np.ndarray | None = None,
    estimated_valid: np.ndarray | None = None,
) -> SynthesisResult:
    """Synthesises PoseFix training input poses from ground truth, batched over persons.

    Args:
        gt: (N, J, 2) ground-truth joints, crop pixels.
        gt_valid: (N, J) bool, labeled and inside the crop (this also defines the visible count nv).
        near: (N, M, J, 2) joints of nearby persons (box IoU >= 0.1), same crop pixels; M may be 0.
        near_valid: (N, M, J) bool, labeled and inside the crop.
        area: (N,) ground-truth box area in crop pixels^2 (after augmentation).
        overlap: (N,) number of persons with box IoU >= 0.1 (the crowdedness input; may exceed M).
        layout: keypoint layout (OKS sigmas, flip pairs, ignored slots).
        rng: numpy Generator; the result is a deterministic function of its state.
        estimated: optional (N, J, 2) another estimator's joints, used as the centre of joints the ground truth
            does not label (the reference's test_on_trainset); without it those joints are zeroed.
        estimated_valid: (N, J) bool, which estimated joints exist.

    Returns:
        SynthesisResult with keypoints (N, J, 2), valid (N, J) and error_type (N, J).
    """
    gt = np.asarray(gt, dtype=np.float64)
    N, J = gt.shape[:2]
    used = layout.used_mask
    gt_valid = np.asarray(gt_valid, dtype=bool) & used
    near = np.asarray(near, dtype=np.float64)
    M = near.shape[1]
    near = near.reshape(N, M, J, 2)
    near_valid = np.asarray(near_valid, dtype=bool).reshape(N, M, J) & used
    area = np.asarray(area, dtype=np.float64).reshape(N)
    overlap = np.asarray(overlap).reshape(N)

    centre = gt.copy()
    centre_ok = gt_valid.copy()
    if estimated is not None:
        est_ok = np.asarray(estimated_valid, dtype=bool) & used & ~gt_valid
        centre = np.where(est_ok[..., None], np.asarray(estimated, dtype=np.float64), centre)
        centre_ok |= est_ok

    partner = layout.flip_permutation
    has_partner = partner != np.arange(J)

    # Candidates, (N, J, K): [gt, near joint j (M), inversion (1), near partner joint (M)].
    K = 2 + 2 * M
    pts = np.zeros((N, J, K, 2))
    ok = np.zeros((N, J, K), dtype=bool)
    pts[:, :, 0] = centre
    ok[:, :, 0] = centre_ok
    pts[:, :, 1 : M + 1] = near.transpose(0, 2, 1, 3)
    ok[:, :, 1 : M + 1] = near_valid.transpose(0, 2, 1)
    pts[:, :, M + 1] = gt[:, partner]  # deviation: partner's ground truth, not its synthesised value
    ok[:, :, M + 1] = gt_valid[:, partner] & has_partner
    pts[:, :, M + 2 :] = near[:, :, partner].transpose(0, 2, 1, 3)
    ok[:, :, M + 2 :] = near_valid[:, :, partner].transpose(0, 2, 1) & has_partner[None, :, None]
    ok &= centre_ok[..., None]  # a joint without a centre is zeroed, nothing to sample
    pts = np.where(ok[..., None], pts, 0.0)

    nv = gt_valid.sum(-1)
    nominal = nominal_probabilities(nv, overlap)  # (N, J, 5)

    sigmas = layout.sigma_array
    d85 = ks_radius(_KS_GOOD, area, sigmas)
    d50 = ks_radius(_KS_JITTER, area, sigmas)
    d10 = ks_radius(_KS_MISS, area, sigmas)
    zero = np.zeros_like(d85)
    bands = {GOOD: (zero, d85), JITTER: (d85, d50), INVERSION: (zero, d50), SWAP: (zero, d50), MISS: (d50, d10)}

    # Work on rows = (person, joint) pairs that have a centre.
    rows = np.flatnonzero(centre_ok.reshape(-1))
    R = rows.size
    P = pts.reshape(N * J, K, 2)[rows]
    O = ok.reshape(N * J, K)[rows]
    row_bands = {t: (lo.reshape(-1)[rows], hi.reshape(-1)[rows]) for t, (lo, hi) in bands.items()}
    pairs = _build_pairs(P, O, row_bands, d50.reshape(-1)[rows], M)

    # 1. Is each type possible? Decide on a first chunk; complete the undecided (rare) groups.
    _sample(rng, pairs, np.arange(pairs.row.size), P, _CHUNK)
    n_first = np.array([_SAMPLE_COUNT[t] for t in range(5)])[pairs.etype]
    pairs.complete |= n_first <= _CHUNK
    weights = _group_weights(pairs, R)
    undecided = weights[pairs.row, pairs.etype] == 0
    if undecided.any():
        _draw_more(rng, pairs, undecided, P)
    weights = _group_weights(pairs, R)
    possible = weights > 0

    # 2. Draw the type from the renormalised table.
    prob = nominal.reshape(N * J, 5)[rows] * possible
    total = prob.sum(-1)
    u = rng.random(R) * total
    chosen = np.minimum((np.cumsum(prob, axis=-1) <= u[:, None]).sum(-1), 4)
    chosen = np.where(total > 0, chosen, ZEROED)

    # 3. The point. Single-centre types: the first survivor already drawn. Swap and miss: a uniform pick among
    # the pooled survivors of all their centres (miss: non-gt centres weighted 1/4) is the first accepted
    # proposal of "centre by weight, then a sample around it" (rejection sampling), which avoids drawing the
    # 4N samples of every miss centre. It equals the reference's finite-pool pick up to O(1/N) in the centre
    # probabilities; rows still unaccepted after a few rounds fall back to the exact pooled counts.
    in_chosen = chosen[pairs.row] == pairs.etype
    out = np.zeros((R, 2))
    pending = np.isin(chosen, (SWAP, MISS))
    for _ in range(_REJECTION_ROUNDS):
        if not pending.any():
            break
        _propose(rng, pairs, in_chosen & pending[pairs.row], pending, out, P)
    exact = in_chosen & ~np.isin(chosen, (SWAP, MISS))[pairs.row] | in_chosen & pending[pairs.row]
    _draw_more(rng, pairs, exact & np.isin(pairs.etype, (SWAP, MISS)), P)
    w = np.where(exact, np.where(pairs.quarter, pairs.count // 4, pairs.count), 0).astype(np.float64)
    # Pairs are sorted by (row, type), so each row's chosen group is contiguous: a weighted pick by search.
    cum = np.cumsum(w)
    group_end = np.zeros(R)
    np.maximum.at(group_end, pairs.row, np.where(exact, cum, 0.0))
    group_total = np.bincount(pairs.row, weights=w, minlength=R)
    has = (chosen >= 0) & ~np.isin(chosen, (SWAP, MISS)) | pending
    target = group_end[has] - group_total[has] * rng.random(int(has.sum()))
    out[has] = pairs.point[np.searchsorted(cum, target, side="left")]

    keypoints = np.zeros((N * J, 2))
    error_type = np.full(N * J, ZEROED, dtype=np.int8)
    keypoints[rows] = out
    error_type[rows] = chosen
    error_type = error_type.reshape(N, J)
    return SynthesisResult(keypoints.reshape(N, J, 2), error_type >= 0, error_type)
