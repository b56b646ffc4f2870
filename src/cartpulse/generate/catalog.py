"""The shop's catalog: products, brands, categories, prices, popularity and seasonality."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cartpulse.generate import calibration as cal
from cartpulse.generate.events import IntArray
from cartpulse.generate.sampling import FloatArray, GuidedCdf, draw, guided

# Brands of the real cosmetics shop; the rest of a large catalog gets invented lower-case names.
_REAL_BRANDS = (
    "runail", "irisk", "masura", "grattol", "estel", "kapous", "ingarden", "jessnail", "uno",
    "bpw.style", "freedecor", "f.o.x", "cnd", "lovely", "igrobeauty", "dartnails", "roubloff",
    "concept", "italwax", "haruyama", "kinetics", "pnb", "yoko", "shik", "milv", "domix",
    "lianail", "marathon", "severina", "beautix", "zinger", "smart", "benovy", "emil", "bluesky",
    "polarus", "strong", "sanoto", "artex", "cosmoprofi", "nagaraku", "de.lux", "ecolab",
    "airnails", "entity", "levissime", "matrix", "staleks", "kaaral", "oniq", "metzger",
    "farmavita", "kiss", "nitrimax", "depilflax", "latinoil", "coifin", "bioaqua", "rosi",
    "mavala", "orly", "essie", "tertio", "cutrin", "lakme", "ollin", "insight", "solomeya",
)  # fmt: skip
_SYLLABLES = (
    "la", "vi", "ro", "ne", "sa", "mi", "ko", "ta", "lu", "be", "ni", "ra", "zo", "el", "ar",
    "is", "on", "ve", "da", "ci",
)  # fmt: skip
# The few category codes the cosmetics shop fills in (98.3 % of rows have none).
_CATEGORY_CODES = (
    "appliances.environment.vacuum", "furniture.bathroom.bath", "appliances.personal.hair_cutter",
    "accessories.bag", "apparel.glove", "stationery.cartrige", "furniture.living_room.cabinet",
    "accessories.cosmetic_bag", "appliances.environment.air_conditioner",
    "furniture.living_room.chair", "sport.diving", "furniture.bathroom.toilet",
)  # fmt: skip
# 19-digit category ids share a few prefixes, as in the real export.
_CATEGORY_ID_BASES = ((0.85, 1_487_580_005_000_000_000), (0.10, 1_602_943_681_000_000_000),
                      (0.05, 2_151_191_071_000_000_000))  # fmt: skip


@dataclass(frozen=True)
class Catalog:
    """Products ordered by category, so each category is one contiguous slice."""

    product_id: IntArray
    category: IntArray  # category index per product
    category_bounds: IntArray  # category c holds products [bounds[c], bounds[c + 1])
    category_id: IntArray  # per category
    category_code: tuple[str | None, ...]  # per category
    brand: IntArray  # index into brand_names, -1 = no brand
    brand_names: tuple[str, ...]
    base_cents: IntArray
    popularity: FloatArray
    weekly_amp: FloatArray
    weekly_phase: FloatArray
    trend_per_day: FloatArray
    launch_day: IntArray
    hour_amp: FloatArray  # per category
    hour_peak: FloatArray  # per category
    change_day: IntArray  # day a product's price changes for good (beyond the range: never)
    change_factor: FloatArray
    sale_item: NDArray[np.bool_]
    buy_affinity: FloatArray  # relative chance a carted item is bought

    @property
    def size(self) -> int:
        """Number of products."""
        return int(self.product_id.shape[0])


@dataclass(frozen=True)
class DayProducts:
    """One day's draw tables and prices."""

    products: GuidedCdf  # the day's product weights (each category is a contiguous range)
    category_cdf: FloatArray  # 24 rows of C + 1 normalised cumulative weights, row h offset by h
    cents: IntArray


def catalog_sizes(events: int) -> tuple[int, int, int]:
    """Products, brands and categories for a file of `events` rows."""
    ratio = min(1.0, events / cal.FULL_ROWS)
    products = max(cal.MIN_PRODUCTS, round(cal.FULL_PRODUCTS * ratio**cal.PRODUCT_SCALE_EXPONENT))
    brands = max(cal.MIN_BRANDS, round(cal.FULL_BRANDS * ratio**cal.BRAND_SCALE_EXPONENT))
    categories = max(
        cal.MIN_CATEGORIES, min(cal.FULL_CATEGORIES, products // cal.PRODUCTS_PER_CATEGORY)
    )
    return products, brands, categories


def build_catalog(rng: np.random.Generator, events: int, days: int) -> Catalog:
    """A catalog sized for `events` rows over `days` days."""
    n, n_brands, n_cat = catalog_sizes(events)
    rank = rng.permutation(n).astype(np.float64)
    popularity = (rank + cal.ZIPF_OFFSET) ** -cal.ZIPF_EXPONENT
    popularity /= popularity.sum()
    cat_weights = (np.arange(n_cat) + 5.0) ** -0.9
    per_cat = rng.multinomial(n - n_cat, cat_weights / cat_weights.sum()) + 1
    category = np.repeat(np.arange(n_cat, dtype=np.int64), per_cat)
    bounds = np.concatenate([[0], np.cumsum(per_cat)]).astype(np.int64)
    zero = _pick_weighted_share(rng, popularity, cal.SHARE_ZERO_PRICE, skip_top=100)
    base_cents = _assign_prices(rng, popularity, category, zero)
    change = rng.random(n) < (cal.SHARE_PRICE_CHANGE if days > 1 else 0.0)
    launched_later = rng.random(n) < (cal.SHARE_LAUNCHED_LATER if days > 1 else 0.0)
    amp = np.where(rng.random(n) < 0.6, rng.uniform(0.1, 0.5, n), rng.uniform(0.0, 0.1, n))
    return Catalog(
        product_id=_product_ids(rng, n),
        category=category,
        category_bounds=bounds,
        category_id=_category_ids(rng, n_cat),
        category_code=_category_codes(rng, popularity, bounds),
        brand=_brands(rng, popularity, n_brands),
        brand_names=brand_names(rng, n_brands),
        base_cents=base_cents,
        popularity=popularity,
        weekly_amp=amp,
        weekly_phase=rng.uniform(0.0, 7.0, n),
        trend_per_day=rng.normal(0.0, cal.TREND_SD_PER_DAY, n),
        launch_day=np.where(launched_later, rng.integers(1, max(days, 2), n), 0),
        hour_amp=rng.uniform(0.0, cal.HOUR_AMPLITUDE_MAX, n_cat),
        hour_peak=rng.uniform(0.0, 24.0, n_cat),
        change_day=np.where(change, rng.integers(1, max(days, 2), n), days + 1),
        change_factor=rng.uniform(0.8, 1.2, n),
        sale_item=rng.random(n) < cal.SHARE_SALE_ITEMS,
        buy_affinity=_buy_affinity(base_cents),
    )


def day_products(catalog: Catalog, day: int, weekday: int, sale: bool) -> DayProducts:
    """Draw tables and prices of one day: weekly cycle, trend, launches, sales, hour of day."""
    weight = catalog.popularity * (
        1.0 + catalog.weekly_amp * np.cos(2 * np.pi * (weekday - catalog.weekly_phase) / 7.0)
    )
    # Trends saturate (at most e-fold up or down), so no product takes over a long range.
    trend = cal.TREND_CAP * np.tanh(catalog.trend_per_day * day / cal.TREND_CAP)
    weight *= np.exp(trend) * (catalog.launch_day <= day)
    factor = np.where(catalog.change_day <= day, catalog.change_factor, 1.0)
    if sale:
        weight *= np.where(catalog.sale_item, cal.SALE_ITEM_BOOST, 1.0)
        factor *= np.where(catalog.sale_item, cal.SALE_DISCOUNT, 1.0)
    products = guided(weight)
    cdf = products.cdf
    # Categories peak at different hours (make-up in the morning, nail care at night...).
    hours = np.arange(24, dtype=np.float64)[:, None]
    by_cat = np.diff(cdf[catalog.category_bounds])[None, :] * (
        1.0 + catalog.hour_amp[None, :] * np.cos(2 * np.pi * (hours - catalog.hour_peak) / 24.0)
    )
    cat_cdf = np.zeros((24, by_cat.shape[1] + 1))
    np.cumsum(by_cat, axis=1, out=cat_cdf[:, 1:])
    cat_cdf = cat_cdf / cat_cdf[:, -1:] + hours
    cents = np.round(catalog.base_cents * factor).astype(np.int64)
    return DayProducts(products, cat_cdf.reshape(-1), cents)


def sample_categories(table: DayProducts, rng: np.random.Generator, hours: IntArray) -> IntArray:
    """Categories drawn by their weight at each hour of day."""
    row = table.category_cdf.shape[0] // 24
    u = hours + rng.random(hours.shape[0])
    index = np.searchsorted(table.category_cdf, u, side="right") - 1 - hours * row
    picked: IntArray = np.clip(index, 0, row - 2).astype(np.int64)
    return picked


def sample_products(
    table: DayProducts, rng: np.random.Generator, focus: IntArray, bounds: IntArray
) -> IntArray:
    """Products drawn by popularity; rows with focus >= 0 stay in that category."""
    n = int(focus.shape[0])
    cdf = table.products.cdf
    u = rng.random(n)
    has = focus >= 0
    if has.any():
        lo = cdf[bounds[focus[has]]]
        hi = cdf[bounds[focus[has] + 1]]
        # A category with no launched product yet falls back to the whole shop.
        u[has] = np.where(hi > lo, lo + u[has] * (hi - lo), u[has])
    return draw(table.products, u)


def brand_names(rng: np.random.Generator, n: int) -> tuple[str, ...]:
    """`n` distinct lower-case brand names, real ones first."""
    names = list(_REAL_BRANDS[:n])
    seen = set(names)
    while len(names) < n:  # one loop turn per brand, a few hundred at most
        parts = rng.choice(len(_SYLLABLES), size=int(rng.integers(2, 4)))
        name = "".join(_SYLLABLES[p] for p in parts)
        if name not in seen:
            seen.add(name)
            names.append(name)
    return tuple(names)


def _pick_weighted_share(
    rng: np.random.Generator, weight: FloatArray, share: float, skip_top: int = 0
) -> NDArray[np.bool_]:
    """Random items whose weights add up to about `share` of the total."""
    order = rng.permutation(weight.shape[0])
    if skip_top:
        top = np.zeros(weight.shape[0], dtype=bool)
        top[np.argsort(-weight, kind="stable")[:skip_top]] = True
        order = order[~top[order]]
    if order.shape[0] == 0:
        return np.zeros(weight.shape[0], dtype=bool)
    cum = np.cumsum(weight[order]) - weight[order] / 2
    chosen = np.zeros(weight.shape[0], dtype=bool)
    chosen[order[cum < share * weight.sum()]] = True
    return chosen


def _assign_prices(
    rng: np.random.Generator, popularity: FloatArray, category: IntArray, zero: NDArray[np.bool_]
) -> IntArray:
    """Prices whose popularity-weighted quantiles follow PRICE_KNOTS; categories share a level."""
    level = rng.normal(0.0, 1.0, int(category.max()) + 1)
    key = level[category] + rng.normal(0.0, 0.8, category.shape[0])
    order = np.argsort(key, kind="stable")
    weight = np.where(zero, 0.0, popularity)[order]
    u = (np.cumsum(weight) - weight / 2) / weight.sum()
    knots_u, knots_p = np.array(cal.PRICE_KNOTS).T
    price = np.exp(np.interp(u, knots_u, np.log(knots_p)))
    cents = np.zeros(category.shape[0], dtype=np.int64)
    cents[order] = np.maximum(np.round(price * 100), 1).astype(np.int64)
    cents[zero] = 0
    return cents


def _buy_affinity(cents: IntArray) -> FloatArray:
    """Cheap items convert better; free samples are (almost) never bought."""
    price = np.maximum(cents, 1) / 100.0
    affinity = np.clip((price / cal.MEDIAN_PRICE) ** -cal.BUY_PRICE_ELASTICITY, 0.25, 3.0)
    return np.where(cents > 0, affinity, 0.0)


def _product_ids(rng: np.random.Generator, n: int) -> IntArray:
    """Unique ids: a few old low ids, most in the 5.5 M - 5.93 M range like the real shop."""
    old = round(n * 0.07)
    low = 3_700 + rng.choice(56_300, size=min(old, 56_300), replace=False)
    high = 5_500_000 + rng.choice(433_000, size=n - low.shape[0], replace=False)
    return rng.permutation(np.concatenate([low, high])).astype(np.int64)


def _category_ids(rng: np.random.Generator, n: int) -> IntArray:
    """Unique 19-digit category ids."""
    shares, bases = zip(*_CATEGORY_ID_BASES, strict=True)
    base = np.asarray(bases, dtype=np.int64)[rng.choice(len(bases), size=n, p=shares)]
    return base + rng.choice(100_000_000_000, size=n, replace=False).astype(np.int64)


def _category_codes(
    rng: np.random.Generator, popularity: FloatArray, bounds: IntArray
) -> tuple[str | None, ...]:
    """Codes for a few categories holding ~1.7 % of the traffic."""
    weight = np.add.reduceat(popularity, bounds[:-1])
    chosen = _pick_weighted_share(rng, weight, cal.SHARE_CODE_PRESENT)
    codes: list[str | None] = [None] * weight.shape[0]
    for k, c in enumerate(np.flatnonzero(chosen).tolist()):
        codes[c] = _CATEGORY_CODES[k % len(_CATEGORY_CODES)]
    return tuple(codes)


def _brands(rng: np.random.Generator, popularity: FloatArray, n_brands: int) -> IntArray:
    """A Zipf-distributed brand per product; ~42 % of the traffic is on unbranded products."""
    weights = (np.arange(n_brands) + 1.0) ** -cal.BRAND_ZIPF_EXPONENT
    brand = rng.choice(n_brands, size=popularity.shape[0], p=weights / weights.sum())
    missing = _pick_weighted_share(rng, popularity, cal.SHARE_BRAND_MISSING)
    return np.where(missing, -1, brand).astype(np.int64)
