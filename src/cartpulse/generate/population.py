"""Users: 9-digit ids, how often they visit, how likely they buy, and what they did so far."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cartpulse.generate import calibration as cal
from cartpulse.generate.events import CART, PURCHASE, EventBlock, IntArray
from cartpulse.generate.sampling import FloatArray, GuidedCdf, draw, guided

SEEN, CARTED, BOUGHT = 1, 2, 4  # UserState.flags bits


@dataclass(frozen=True)
class Population:
    """Everyone who may visit; bots are members too, with no organic visits."""

    user_id: IntArray
    visits: GuidedCdf  # organic visit weights (bots have none)
    buy_p: FloatArray  # chance one of the user's sessions ends in a purchase
    bots: IntArray  # rows of the population that are bots

    @property
    def size(self) -> int:
        """Number of users."""
        return int(self.user_id.shape[0])


@dataclass(frozen=True)
class UserState:
    """What users did in the windows generated so far (arrays updated in place)."""

    flags: NDArray[np.uint8]
    last_cart: IntArray  # last product left in a cart, -1 = none

    def record(self, block: EventBlock) -> None:
        """Remember who showed up, carted and bought, and what they left in carts."""
        self.flags[block.user] |= SEEN
        carts = block.kind == CART
        self.flags[block.user[carts]] |= CARTED
        self.flags[block.user[block.kind == PURCHASE]] |= BOUGHT
        # Fancy assignment keeps the last write for repeated users: the latest cart wins.
        self.last_cart[block.user[carts]] = block.product[carts]


def new_state(size: int) -> UserState:
    """Nobody has done anything yet."""
    return UserState(np.zeros(size, dtype=np.uint8), np.full(size, -1, dtype=np.int64))


def build_population(rng: np.random.Generator, sessions: float, n_bots: int) -> Population:
    """Enough users for `sessions` sessions at 2.76 sessions per visiting user."""
    n = max(int(sessions * cal.POPULATION_PER_SESSION), n_bots + 16)
    activity = np.minimum(rng.pareto(cal.ACTIVITY_PARETO_SHAPE, n) + 1.0, cal.ACTIVITY_CAP)
    # Shoppers come back to buy (more visits); very heavy visitors are browsers, not buyers.
    shopper = rng.random(n) < cal.SHARE_SHOPPERS
    activity = np.where(shopper, activity * cal.SHOPPER_ACTIVITY_BOOST, activity)
    damping = np.minimum(1.0, cal.BUY_ACTIVITY_KNEE / activity) ** cal.BUY_ACTIVITY_DECAY
    buy_p = np.where(shopper, cal.SHOPPER_BUY_P * damping, cal.BROWSER_BUY_P)
    # Bots are ordinary-looking members of the same id space, with no organic visits.
    bots = rng.choice(n, size=n_bots, replace=False).astype(np.int64)
    activity[bots] = 0.0
    return Population(_user_ids(rng, n), guided(activity), buy_p, bots)


def sample_users(population: Population, rng: np.random.Generator, n: int) -> IntArray:
    """Visitors of `n` sessions, drawn by activity (heavy users come back often)."""
    return draw(population.visits, rng.random(n))


def _user_ids(rng: np.random.Generator, n: int) -> IntArray:
    """Unique 9-digit ids spread like the real ones (newer accounts have higher ids)."""
    knots_u, knots_id = np.array(cal.USER_ID_KNOTS).T
    # Sorted uniforms without a sort: normalised running sums of exponential gaps.
    gaps = np.cumsum(rng.standard_exponential(n + 1))
    ids = np.interp(gaps[:-1] / gaps[-1], knots_u, knots_id).astype(np.int64)
    # Sorted ids minus their rank never decrease once made monotone: adding the rank back
    # gives strictly increasing, hence unique, ids with the same spread.
    rank = np.arange(n, dtype=np.int64)
    ids = np.maximum.accumulate(ids - rank) + rank
    return rng.permutation(ids)
