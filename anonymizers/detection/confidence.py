"""How sure a share of matching values lets us be: the Wilson score interval's lower bound.

A raw share overstates small samples: one stray e-mail address among three values is a
share of 1/3, and three e-mails out of three a share of 1.0. The lower bound of the
Wilson interval shrinks a share towards zero by how little evidence stands behind it,
so that a label needs both a high share and enough values.
"""

from __future__ import annotations

import math

#: The normal quantile of a two-sided 95 % interval.
Z_95 = 1.96


def wilson_interval(hits: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of ``hits`` successes in ``n`` trials: ``(lower, upper)``.

    Always within ``[0, 1]`` and around ``hits / n`` (``(0, 1)`` when ``n`` is 0: nothing
    is known). Raises ``ValueError`` on counts that are not a share.
    """
    if n < 0 or not 0 <= hits <= n:
        raise ValueError(f"need 0 <= hits <= n, got hits={hits}, n={n}")
    if not z > 0:
        raise ValueError(f"z must be positive, got {z}")
    if n == 0:
        return 0.0, 1.0
    share = hits / n
    z2 = z * z
    centre = share + z2 / (2 * n)
    margin = z * math.sqrt(share * (1 - share) / n + z2 / (4 * n * n))
    lower = 0.0 if hits == 0 else (centre - margin) / (1 + z2 / n)
    upper = 1.0 if hits == n else (centre + margin) / (1 + z2 / n)
    # clamp rounding error: never above the share, never below it
    return min(max(lower, 0.0), share), max(min(upper, 1.0), share)


def wilson_lower_bound(hits: int, n: int, z: float = Z_95) -> float:
    """The lower bound of the Wilson score interval of ``hits`` successes in ``n`` trials.

    Always in ``[0, hits / n]`` (0 when ``n`` is 0) and approaches ``hits / n`` as
    ``n`` grows. Raises ``ValueError`` on counts that are not a share.
    """
    return wilson_interval(hits, n, z)[0]
