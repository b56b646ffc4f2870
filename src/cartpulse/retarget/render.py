"""Render one abandoned-cart email: plain text + HTML alternatives, signed links, RFC 8058 headers.

Templates are Jinja2: `email.txt.j2` and `email.html.j2` (HTML autoescaped). Files of those
names in `retarget.template_dir` replace the built-in ones. Templates see:

- `shop_name`, `base_url`, `first_name` (or "there"), `locale` (e.g. `de_DE`)
- `items`: `name`, `brand`, `category` (last part of `category_code`), `category_code`,
  `product_id`, `count`, `price` and `line_total` (money, already formatted)
- `item_count`, `cart_value` (formatted)
- `offer`: `kind` (`free_shipping` | `percent_coupon`), `free_shipping`, `percent`, `code`,
  `expires` (formatted date), `expires_at` (datetime, UTC)
- `cart_url`, `unsubscribe_url`
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email import headerregistry, policy
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from importlib import resources
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import jinja2
from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency

from cartpulse.retarget.offers import Offer
from cartpulse.retarget.tokens import require_secret, sign
from cartpulse.settings import RetargetSettings

TEXT_TEMPLATE: Final = "email.txt.j2"
HTML_TEMPLATE: Final = "email.html.j2"
DEFAULT_LOCALE: Final = "en_US"
NAME_FALLBACK: Final = "there"
ONE_CLICK: Final = "List-Unsubscribe=One-Click"


class _OneLineHeader(headerregistry.BaseHeader):
    """A header kept on one line: folding a long URL would RFC 2047-encode it and hide it."""

    max_count = 1

    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        """Parse as unstructured text (the value is written verbatim anyway)."""
        headerregistry.UnstructuredHeader.parse(value, kwds)

    def fold(self, *, policy: policy.Policy) -> str:
        """`Name: value` unfolded; RFC 5322 allows lines up to 998 characters."""
        line = f"{self.name}: {self}"
        if not line.isascii() or len(line) > 998:
            return super().fold(policy=policy)
        return line + policy.linesep


_HEADERS = headerregistry.HeaderRegistry()
_HEADERS.map_to_type("list-unsubscribe", _OneLineHeader)
EMAIL_POLICY: Final = policy.default.clone(header_factory=_HEADERS)
"""Policy of rendered messages; parse stored ones with it so List-Unsubscribe stays intact."""


class EmailTemplateError(Exception):
    """An email template is missing, does not parse, or fails while rendering."""


def render_email(
    cart_row: Mapping[str, Any],
    customer: Mapping[str, Any],
    offer: Offer,
    settings: RetargetSettings,
    sender: str,
    now: datetime,
) -> EmailMessage:
    """The email for one abandoned cart (ABANDONED_CARTS_SCHEMA row) and its customer."""
    if now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware (UTC)")
    address = customer.get("email")
    if not address:
        raise ValueError(f"customer {customer.get('user_id')} has no email address")
    context = email_context(cart_row, customer, offer, settings)
    msg = EmailMessage(policy=EMAIL_POLICY)
    msg["From"] = sender
    msg["To"] = address
    msg["Subject"] = _subject(settings.shop_name, offer)
    msg["Date"] = format_datetime(now.astimezone(UTC))
    msg["Message-ID"] = message_id(cart_row, sender)
    msg["List-Unsubscribe"] = f"<{context['unsubscribe_url']}>"
    msg["List-Unsubscribe-Post"] = ONE_CLICK
    environment = _environment(settings.template_dir)
    msg.set_content(_render(environment, TEXT_TEMPLATE, context))
    msg.add_alternative(_render(environment, HTML_TEMPLATE, context), subtype="html")
    return msg


def message_id(cart_row: Mapping[str, Any], sender: str) -> str:
    """`<sha256(user_session|session_start ISO UTC)[:32]@sender domain>`: stable per cart."""
    _, at, domain = parseaddr(sender)[1].rpartition("@")
    if not at or not domain:
        raise ValueError(f"sender {sender!r} has no address with a domain, e.g. shop@example.com")
    start = cart_row["session_start"]
    start_text = start.astimezone(UTC).isoformat() if isinstance(start, datetime) else str(start)
    key = f"{cart_row['user_session']}|{start_text}".encode()
    return f"<{hashlib.sha256(key).hexdigest()[:32]}@{domain}>"


def email_context(
    cart_row: Mapping[str, Any],
    customer: Mapping[str, Any],
    offer: Offer,
    settings: RetargetSettings,
) -> dict[str, Any]:
    """The variables templates see (documented in this module's docstring)."""
    locale = _locale(customer.get("locale"))
    secret = require_secret(settings)
    base_url = settings.base_url.rstrip("/")
    user_id = int(cart_row["user_id"])
    cart_token = sign(
        secret, "cart", {"s": str(cart_row["user_session"]), "u": user_id}, offer.expires_at
    )
    unsubscribe_token = sign(secret, "unsubscribe", {"u": user_id})

    def money(value: float) -> str:
        return format_currency(value, settings.currency, locale=locale)

    return {
        "shop_name": settings.shop_name,
        "base_url": base_url,
        "first_name": (customer.get("first_name") or "").strip() or NAME_FALLBACK,
        "locale": str(locale),
        "items": [_item(item, money) for item in cart_row["items"]],
        "item_count": int(cart_row["item_count"]),
        "cart_value": money(float(cart_row["cart_value"])),
        "offer": {
            "kind": offer.kind,
            "free_shipping": offer.kind == "free_shipping",
            "percent": offer.percent,
            "code": offer.code,
            "expires": format_date(offer.expires_at.date(), format="long", locale=locale),
            "expires_at": offer.expires_at,
        },
        "cart_url": f"{base_url}/cart?{urlencode({'token': cart_token})}",
        "unsubscribe_url": f"{base_url}/unsubscribe?{urlencode({'token': unsubscribe_token})}",
    }


def _item(item: Mapping[str, Any], money: Callable[[float], str]) -> dict[str, Any]:
    """One carted product, with display name and formatted money."""
    brand = item.get("brand") or None
    category_code = item.get("category_code") or None
    category = category_code.rsplit(".", 1)[-1].replace("_", " ") if category_code else None
    name = " · ".join(part for part in (brand, category) if part)
    price = float(item["price"])
    count = int(item["count"])
    return {
        "name": name or f"Product {item['product_id']}",
        "brand": brand,
        "category": category,
        "category_code": category_code,
        "product_id": item["product_id"],
        "count": count,
        "price": money(price),
        "line_total": money(price * count),
    }


def _subject(shop_name: str, offer: Offer) -> str:
    """English subject naming the shop and the offer (the built-in templates are English too)."""
    if offer.kind == "free_shipping":
        return f"Your {shop_name} cart is waiting, with free shipping"
    return f"Your {shop_name} cart is waiting, with {offer.percent}% off"


def _locale(value: object) -> Locale:
    """The customer's Babel locale, en_US when unset or unknown (the import already checked it)."""
    try:
        return Locale.parse(str(value or DEFAULT_LOCALE).replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse(DEFAULT_LOCALE)


@functools.lru_cache(maxsize=8)
def _environment(template_dir: Path | None) -> jinja2.Environment:
    """Templates from `template_dir` first, then the packaged ones."""
    loaders: list[jinja2.BaseLoader] = []
    if template_dir is not None:
        if not template_dir.is_dir():
            raise EmailTemplateError(
                f"setting `retarget.template_dir` = {str(template_dir)!r} is not a directory"
            )
        loaders.append(jinja2.FileSystemLoader(template_dir))
    loaders.append(jinja2.FunctionLoader(functools.partial(_builtin_template, template_dir)))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
        # A misspelt variable fails loudly instead of silently rendering an empty string.
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def _builtin_template(
    template_dir: Path | None, name: str
) -> tuple[str, str, Callable[[], bool]] | None:
    """A packaged template, read through importlib.resources (works from wheels and zips)."""
    resource = resources.files("cartpulse.retarget").joinpath("templates", name)
    if not resource.is_file():
        return None

    def uptodate() -> bool:
        # Stale once the user adds their own version, so a running server picks it up.
        return template_dir is None or not (template_dir / name).is_file()

    return resource.read_text(encoding="utf-8"), f"<cartpulse built-in>/{name}", uptodate


def _render(environment: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
    """Render one template; any error in it becomes an EmailTemplateError naming file and line."""
    try:
        template = environment.get_template(name)
    except jinja2.TemplateSyntaxError as exc:
        where = f"{exc.filename or name} line {exc.lineno}"
        raise EmailTemplateError(f"email template {where}: {exc.message}") from exc
    except jinja2.TemplateNotFound as exc:
        raise EmailTemplateError(f"email template {name} not found") from exc
    try:
        return template.render(context)
    except Exception as exc:  # a filter or expression in a user's template can raise anything
        where = template.filename or name
        line = _template_line(exc, where)
        at = f"{where} line {line}" if line else where
        raise EmailTemplateError(
            f"email template {at} failed: {type(exc).__name__}: {exc}"
        ) from exc


def _template_line(exc: BaseException, filename: str) -> int | None:
    """The template line that raised: Jinja maps its frames back to template file and line."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
