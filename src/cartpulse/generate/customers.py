"""The customer directory: which users have an account, their email, name, locale and consent."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cartpulse.generate.arrow import bool_array, int_array, repeated_string, string_array
from cartpulse.generate.events import IntArray
from cartpulse.generate.population import BOUGHT, CARTED, SEEN

# Shoppers who carted or bought usually have an account; a few browsers signed up too.
P_ACCOUNT_SHOPPER = 0.85
P_ACCOUNT_BROWSER = 0.15
P_NO_CONSENT = 0.25
P_INVALID_EMAIL = 0.005
_DOMAINS = ("example.com", "example.org", "example.net")

# locale: (share, first names as (display, ascii for the email), last names in ascii)
_LOCALES: dict[str, tuple[float, tuple[tuple[str, str], ...], tuple[str, ...]]] = {
    "ru_RU": (0.40, (
        ("Анна", "anna"), ("Мария", "maria"), ("Елена", "elena"), ("Ольга", "olga"),
        ("Наталья", "natalya"), ("Екатерина", "ekaterina"), ("Татьяна", "tatyana"),
        ("Ирина", "irina"), ("Светлана", "svetlana"), ("Юлия", "yulia"), ("Ксения", "ksenia"),
        ("Дарья", "darya"), ("Дмитрий", "dmitry"), ("Алексей", "aleksey"),
    ), ("ivanova", "smirnova", "kuznetsova", "popova", "petrova", "sokolova", "volkova",
        "novikova", "morozova", "lebedeva")),
    "en_US": (0.22, (
        ("Jennifer", "jennifer"), ("Jessica", "jessica"), ("Ashley", "ashley"),
        ("Emily", "emily"), ("Sarah", "sarah"), ("Mary", "mary"), ("Linda", "linda"),
        ("Madison", "madison"), ("Michael", "michael"), ("David", "david"),
    ), ("smith", "johnson", "williams", "brown", "jones", "miller", "davis", "garcia",
        "wilson", "taylor")),
    "de_DE": (0.14, (
        ("Anna", "anna"), ("Lena", "lena"), ("Hannah", "hannah"), ("Käthe", "kaethe"),
        ("Sophie", "sophie"), ("Marie", "marie"), ("Jürgen", "juergen"), ("Björn", "bjoern"),
        ("Lukas", "lukas"), ("Lea", "lea"),
    ), ("mueller", "schmidt", "schneider", "fischer", "weber", "meyer", "wagner", "becker",
        "schulz", "hoffmann")),
    "en_GB": (0.12, (
        ("Olivia", "olivia"), ("Amelia", "amelia"), ("Isla", "isla"), ("Ava", "ava"),
        ("Charlotte", "charlotte"), ("Sophie", "sophie"), ("Harry", "harry"),
        ("George", "george"), ("Oliver", "oliver"), ("Poppy", "poppy"),
    ), ("smith", "jones", "taylor", "brown", "williams", "evans", "thomas", "roberts",
        "walker", "wright")),
    "fr_FR": (0.12, (
        ("Camille", "camille"), ("Léa", "lea"), ("Chloé", "chloe"), ("Manon", "manon"),
        ("Inès", "ines"), ("Zoé", "zoe"), ("Élodie", "elodie"), ("Jade", "jade"),
        ("Théo", "theo"), ("Hugo", "hugo"),
    ), ("martin", "bernard", "dubois", "thomas", "robert", "richard", "petit", "durand",
        "leroy", "moreau")),
}  # fmt: skip


def build_customers(rng: np.random.Generator, user_ids: IntArray, flags: np.ndarray) -> pa.Table:
    """`user_id,email,first_name,locale,consent` for the users who have an account."""
    shopper = (flags & (CARTED | BOUGHT)) > 0
    seen = (flags & SEEN) > 0
    p = np.where(shopper, P_ACCOUNT_SHOPPER, np.where(seen, P_ACCOUNT_BROWSER, 0.0))
    rows = np.flatnonzero(rng.random(user_ids.shape[0]) < p)
    rows = rows[np.argsort(user_ids[rows], kind="stable")]
    n = int(rows.shape[0])
    names = list(_LOCALES)
    shares = np.array([_LOCALES[k][0] for k in names])
    locale = rng.choice(len(names), size=n, p=shares / shares.sum())
    display, first, last = _names(rng, locale, names)
    return pa.table({
        "user_id": int_array(user_ids[rows]),
        "email": _emails(rng, first, last, n),
        "first_name": display,
        "locale": pc.take(string_array(names), int_array(locale)),
        "consent": bool_array(rng.random(n) >= P_NO_CONSENT),
    })  # fmt: skip


def _names(
    rng: np.random.Generator, locale: IntArray, names: list[str]
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """First name (display and ascii) and ascii last name fitting each customer's locale."""
    display: list[str] = []
    ascii_first: list[str] = []
    last: list[str] = []
    first_at, last_at = [], []
    for name in names:  # one turn per locale: flat lookup tables with per-locale offsets
        _, firsts, lasts = _LOCALES[name]
        first_at.append((len(display), len(firsts)))
        last_at.append((len(last), len(lasts)))
        display += [d for d, _ in firsts]
        ascii_first += [a for _, a in firsts]
        last += list(lasts)
    f_base, f_len = np.array(first_at).T
    l_base, l_len = np.array(last_at).T
    fi = int_array(f_base[locale] + np.floor(rng.random(locale.shape[0]) * f_len[locale]))
    li = int_array(l_base[locale] + np.floor(rng.random(locale.shape[0]) * l_len[locale]))
    return (
        pc.take(string_array(display), fi),
        pc.take(string_array(ascii_first), fi),
        pc.take(string_array(last), li),
    )


def _emails(rng: np.random.Generator, first: pa.Array, last: pa.Array, n: int) -> pa.Array:
    """Unique addresses on example domains (the customer number keeps them unique), a few broken."""
    number = int_array(np.arange(1, n + 1) * 7 + rng.integers(0, 7, n)).cast(pa.string())
    style = rng.integers(0, 3, n)
    dot = pc.take(string_array([".", "_", ""]), int_array(style))
    last_part = pc.if_else(bool_array(style == 2), repeated_string("", n), last)
    local = pc.binary_join_element_wise(first, dot, last_part, number, repeated_string("", n))
    domain = pc.take(string_array(_DOMAINS), int_array(rng.choice(3, size=n, p=[0.6, 0.25, 0.15])))
    # Broken addresses as sign-up forms let them through: no domain, no at sign, no TLD.
    broken = rng.random(n) < P_INVALID_EMAIL
    how = rng.integers(0, 3, n)
    at = pc.take(string_array(["@", "."]), int_array(broken & (how == 1)))
    domain = pc.if_else(bool_array(broken & (how == 0)), repeated_string("", n), domain)
    domain = pc.if_else(bool_array(broken & (how == 2)), repeated_string("example", n), domain)
    return pc.binary_join_element_wise(local, at, domain, repeated_string("", n))
