"""Model constants, tuned so a default run matches the published cosmetics-shop statistics.

Every number here is either a published statistic of the REES46 cosmetics dataset or a model
parameter tuned by measuring generated files against those statistics (docs/generator.md has
the table). Keep them together so re-calibrating touches one file.
"""

from __future__ import annotations

from typing import Final

# --- the published full dataset: scale references --------------------------------------------
FULL_ROWS: Final = 20_692_840
FULL_PRODUCTS: Final = 54_571
FULL_BRANDS: Final = 273
FULL_CATEGORIES: Final = 520  # not published: about what the cosmetics export lists

# --- catalog ----------------------------------------------------------------------------------
# A catalog does not grow linearly with traffic: a shop with 1/20 of the traffic still lists a
# good share of the products, so the product count follows a sub-linear power of the size.
PRODUCT_SCALE_EXPONENT: Final = 0.55
BRAND_SCALE_EXPONENT: Final = 0.3
MIN_PRODUCTS: Final = 40
MIN_BRANDS: Final = 8
MIN_CATEGORIES: Final = 6
PRODUCTS_PER_CATEGORY: Final = 105
# Zipf-Mandelbrot popularity (rank + offset) ** -exponent: heavy tail without a single product
# taking several percent of the traffic.
ZIPF_EXPONENT: Final = 1.0
ZIPF_OFFSET: Final = 15.0
BRAND_ZIPF_EXPONENT: Final = 1.1
SHARE_BRAND_MISSING: Final = 0.423
SHARE_CODE_PRESENT: Final = 0.017
SHARE_ZERO_PRICE: Final = 0.005
# Event-weighted price quantiles (u, price): p25 2.06, median 4.05, p75 7.06. The knots sit a
# little above the targets because purchases lean to cheap items; the upper knots set the long
# tail so the mean lands near 8.5 (price changes of up to +20 % lift the top to ~340).
PRICE_KNOTS: Final = (
    (0.0, 0.05),
    (0.02, 0.34),
    (0.10, 1.0),
    (0.25, 2.19),
    (0.50, 4.24),
    (0.75, 7.25),
    (0.90, 16.5),
    (0.95, 29.0),
    (0.99, 88.0),
    (0.999, 210.0),
    (1.0, 300.0),
)
MEDIAN_PRICE: Final = 4.05
# Cheap items convert better: purchases average ~4.9 while all events average ~8.5.
BUY_PRICE_ELASTICITY: Final = 0.6
SHARE_PRICE_CHANGE: Final = 0.06
SHARE_SALE_ITEMS: Final = 0.1
SALE_DISCOUNT: Final = 0.7
SALE_ITEM_BOOST: Final = 2.0
SHARE_LAUNCHED_LATER: Final = 0.03
TREND_SD_PER_DAY: Final = 0.012
TREND_CAP: Final = 1.0
HOUR_AMPLITUDE_MAX: Final = 0.45

# --- users ------------------------------------------------------------------------------------
ROWS_PER_SESSION: Final = 4.56  # 20.69 M rows / 4.54 M sessions
POPULATION_PER_SESSION: Final = 1.43  # with the activity law below: 2.76 sessions per user
ACTIVITY_PARETO_SHAPE: Final = 1.0
ACTIVITY_CAP: Final = 1000.0
# Shoppers (a few % of users) visit more and usually buy; the rest almost never buy. With the
# activity law above this gives 6.7 % buyers, 21 % of them buying again, 3.4 % buy sessions.
SHARE_SHOPPERS: Final = 0.053
SHOPPER_ACTIVITY_BOOST: Final = 3.0
SHOPPER_BUY_P: Final = 0.5
BROWSER_BUY_P: Final = 0.004
# Above the knee, per-session purchase odds fall with activity (heavy visitors browse).
BUY_ACTIVITY_KNEE: Final = 10.0
BUY_ACTIVITY_DECAY: Final = 0.5
USER_ID_KNOTS: Final = (
    (0.0, 150_000_000.0),
    (0.05, 250_800_000.0),
    (0.25, 439_300_000.0),
    (0.50, 514_600_000.0),
    (0.75, 561_200_000.0),
    (1.0, 622_000_000.0),
)

# --- sessions ---------------------------------------------------------------------------------
P_CART_GIVEN_BUY: Final = 0.811  # 18.9 % of purchase sessions have no cart event
P_CART_GIVEN_NO_BUY: Final = 0.196  # (21.7 % - 0.811 x 3.43 %) / (1 - 3.43 %)
P_REMOVE_ONLY: Final = 0.028
P_BROWSE_WITH_OLD_REMOVE: Final = 0.09
P_VIEW_GIVEN_CART: Final = 0.85
P_VIEW_GIVEN_BUY_ONLY: Final = 0.8
P_SINGLE_VIEW: Final = 0.74
# Counts above the minimum are 1 + floor(lognormal(mu, sigma)).
BROWSE_VIEWS_LN: Final = (0.3, 1.0)
CART_SESSION_VIEWS_LN: Final = (0.7, 1.0)
CARTS_NO_BUY_LN: Final = (0.72, 1.0)
CARTS_BUY_LN: Final = (2.5, 0.8)
BUY_ONLY_ITEMS_LN: Final = (1.7, 0.9)
OLD_REMOVES_LN: Final = (0.0, 0.8)
FOCUS_SHARE: Final = 0.6
P_CART_FROM_VIEW: Final = 0.35
P_ITEM_BOUGHT: Final = 0.75
P_REMOVE_NO_BUY: Final = 0.58
P_REMOVE_IN_BUY: Final = 0.25
SALE_BUY_BOOST: Final = 1.25
# Gaps between a session's events (seconds): lognormal, with occasional pauses.
GAP_LN: Final = (2.7, 1.1)
PAUSE_P: Final = 0.06
PAUSE_LN: Final = (6.8, 1.0)
CHECKOUT_LN: Final = (4.0, 0.8)
SESSION_SPEED_SD: Final = 0.6
P_LONG_SESSION: Final = 0.021  # of multi-event sessions: ~0.8 % of all sessions last > 1 day
LONG_GAP_DAYS: Final = (1.0, 3.0)

# --- dirty data -------------------------------------------------------------------------------
P_REMOVE_REPEAT: Final = 0.2  # with a mean of 1.67 extra copies: 25 % of removes repeat
REMOVE_REPEAT_GEOMETRIC_P: Final = 0.6
P_EXACT_DUPLICATE: Final = 0.001  # with repeated removes and replayer bots: 5.4 % duplicates
P_RESEND: Final = 0.0185  # plus coincidences: ~2 % of rows re-sent a second later
P_MISSING_SESSION: Final = 4_598 / FULL_ROWS
NEGATIVE_PRICE_RATE: Final = 131 / FULL_ROWS
MIN_NEGATIVE_PRICES: Final = 3
NEGATIVE_PRICE_PURCHASE_SHARE: Final = 126 / 131
SHARED_SESSION_RATE: Final = 272 / 4_535_941  # per session
MIN_SHARED_SESSIONS: Final = 2

# --- bots -------------------------------------------------------------------------------------
BOT_MIN_EVENTS: Final = 20_000
BOT_MIN_ROWS_PER_DAY: Final = 60.0
BOT_SHARE: Final = 0.03
BOTS_PER_KIND_AT_1M: Final = 2.0
MAX_BOTS_PER_KIND: Final = 12

# --- traffic over time ------------------------------------------------------------------------
# Monday .. Sunday.
WEEKDAY_WEIGHTS: Final = (1.05, 1.08, 1.04, 1.0, 0.95, 0.88, 0.96)
SALE_DAY_TRAFFIC: Final = 1.8
DAY_NOISE_SD: Final = 0.03
MAX_WINDOW_ROWS: Final = 1_500_000
