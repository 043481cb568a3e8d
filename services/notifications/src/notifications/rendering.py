"""Messages from Jinja2 templates: subject, plain text and HTML (and SMS), money and dates in the
recipient's locale.

A template `<name>` is `templates/<name>.txt` (blocks `subject` and `body`), `<name>.html` (the
same blocks, HTML-escaped) and, for messages that may go by SMS, `<name>.sms.txt`. Campaigns bring
their own templates as text, rendered in a sandbox: staff write them, they must not reach Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime
from babel.numbers import format_currency, get_currency_precision
from jinja2 import (
    Environment,
    PackageLoader,
    StrictUndefined,
    Template,
    TemplateError,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from notifications.errors import TemplateBroken, UnknownLocale
from shopkit.money import CURRENCY, MAX_AMOUNT

SHOP_NAME = "Shop"
CAMPAIGN_TEMPLATES_KEPT = 64
SMS_LIMIT = 320
MAX_EXPONENT = 100
MAX_REPEAT = 10_000  # two concatenated segments: longer is cut, never refused


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "text": self.text, "html": self.html}


def valid_locale(tag: str) -> str:
    """`tag` as Babel knows it (`en`, `de_DE`, `pt-BR`); UnknownLocale otherwise."""
    try:
        return str(Locale.parse(tag.replace("-", "_")))
    except (ValueError, UnknownLocaleError):
        raise UnknownLocale(f"unknown locale {tag!r}") from None


@pass_context
def _money(context: Context, amount: int, currency: str) -> str:
    """Minor units as the locale writes the currency: 123456 EUR is `€1,234.56` or `1.234,56 €`."""
    if isinstance(amount, bool) or not isinstance(amount, int) or abs(amount) > MAX_AMOUNT:
        raise TemplateBroken(f"money needs an amount of minor units, not {amount!r:.40}")
    if not isinstance(currency, str) or not CURRENCY.match(currency):
        raise TemplateBroken(f"money needs an ISO 4217 currency, not {currency!r:.40}")
    places = get_currency_precision(currency)
    value = Decimal(amount).scaleb(-places)
    return str(format_currency(value, currency, locale=context.get("locale", "en")))


@pass_context
def _when(context: Context, moment: str | datetime) -> str:
    """An RFC 3339 moment as the locale writes it, in UTC, saying so."""
    try:
        if isinstance(moment, str):
            moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        if not isinstance(moment, datetime):
            raise TypeError(type(moment).__name__)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        written = format_datetime(moment, "medium", tzinfo=UTC, locale=context.get("locale", "en"))
    except (TypeError, ValueError, OverflowError) as error:
        raise TemplateBroken(f"when needs an RFC 3339 moment: {error}") from None
    return f"{written} UTC"


def _repeated_length(left: Any, right: Any) -> int:
    """How long `left * right` would be when it repeats a text or list; 0 otherwise."""
    for items, times in ((left, right), (right, left)):
        if isinstance(items, str | list) and isinstance(times, int):
            return len(items) * times
    return 0


class LimitedSandbox(SandboxedEnvironment):
    """Jinja's sandbox (no attribute escapes, `range` capped), and no `*` or `**` whose result
    could exhaust an instance: a campaign's templates are written by staff, run on every send."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and (not isinstance(right, int) or abs(right) > MAX_EXPONENT):
            raise TemplateBroken("exponents above 100 are not allowed in a template")
        if operator == "*" and _repeated_length(left, right) > MAX_REPEAT:
            raise TemplateBroken("a repeated text or list is limited to 10,000 items")
        return super().call_binop(context, operator, left, right)


def _with_filters(environment: Environment) -> Environment:
    environment.filters["money"] = _money
    environment.filters["when"] = _when
    return environment


class Renderer:
    """The packaged templates, loaded once per process."""

    def __init__(self, default_locale: str) -> None:
        self.default_locale = default_locale
        self._files = _with_filters(
            Environment(
                loader=PackageLoader("notifications", "templates"),
                autoescape=select_autoescape(["html"]),
                undefined=StrictUndefined,
                trim_blocks=True,
                keep_trailing_newline=False,
            )
        )
        self._sandbox = _with_filters(LimitedSandbox(undefined=StrictUndefined, autoescape=False))
        self._sandbox_html = _with_filters(
            LimitedSandbox(undefined=StrictUndefined, autoescape=True)
        )
        self._packaged = frozenset(self._files.list_templates())
        self._campaign_templates: dict[tuple[str, bool], Template] = {}

    def render(self, name: str, context: Mapping[str, Any], locale: str | None) -> Rendered:
        values = self._values(context, locale)
        text = self._files.get_template(f"{name}.txt")
        html = self._files.get_template(f"{name}.html")
        try:
            return Rendered(
                subject=_block(text, "subject", values).strip(),
                text=_block(text, "body", values).strip() + "\n",
                html=html.render(values),
            )
        except TemplateBroken:
            raise
        except Exception as error:
            # (TemplateError, TypeError, ArithmeticError, ...) is the template's fault, not a 500
            raise TemplateBroken(f"{name}: {error}") from None

    def render_sms(self, name: str, context: Mapping[str, Any], locale: str | None) -> Rendered:
        template = self._files.get_template(f"{name}.sms.txt")
        try:
            body = template.render(self._values(context, locale)).strip()
        except TemplateBroken:
            raise
        except Exception as error:
            # (TemplateError, TypeError, ArithmeticError, ...) is the template's fault, not a 500
            raise TemplateBroken(f"{name}: {error}") from None
        return Rendered(subject="", text=body[:SMS_LIMIT])

    def render_campaign(
        self, subject: str, text: str, html: str, context: Mapping[str, Any], locale: str | None
    ) -> Rendered:
        values = self._values(context, locale)
        try:
            return Rendered(
                subject=self._compiled(subject, html=False).render(values).strip(),
                text=self._compiled(text, html=False).render(values).strip() + "\n",
                html=self._compiled(html, html=True).render(values),
            )
        except TemplateBroken:
            raise
        except Exception as error:
            # (TemplateError, TypeError, ArithmeticError, ...) is the template's fault, not a 500
            raise TemplateBroken(str(error)) from None

    def check_campaign(self, subject: str, text: str, html: str) -> None:
        """TemplateBroken when a campaign's templates do not compile."""
        try:
            self._compiled(subject, html=False)
            self._compiled(text, html=False)
            self._compiled(html, html=True)
        except TemplateError as error:
            raise TemplateBroken(str(error)) from None

    def has_sms(self, name: str) -> bool:
        return f"{name}.sms.txt" in self._names()

    def names(self) -> list[str]:
        return sorted(
            name.removesuffix(".txt")
            for name in self._names()
            if name.endswith(".txt") and not name.startswith("_") and not name.endswith(".sms.txt")
        )

    def _names(self) -> frozenset[str]:
        return self._packaged

    def _compiled(self, source: str, *, html: bool) -> Template:
        """A campaign's templates, compiled once while the campaign is sent."""
        key = (source, html)
        if key not in self._campaign_templates:
            if len(self._campaign_templates) >= CAMPAIGN_TEMPLATES_KEPT:
                self._campaign_templates.clear()
            environment = self._sandbox_html if html else self._sandbox
            self._campaign_templates[key] = environment.from_string(source)
        return self._campaign_templates[key]

    def _values(self, context: Mapping[str, Any], locale: str | None) -> dict[str, Any]:
        return {"shop_name": SHOP_NAME, **context, "locale": locale or self.default_locale}


def _block(template: Template, name: str, values: dict[str, Any]) -> str:
    return "".join(template.blocks[name](template.new_context(values)))
