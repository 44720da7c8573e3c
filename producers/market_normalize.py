"""Market feeds (Gamma-, CLOB- and odds-shaped JSON) to ``MarketUpdated`` / ``MarketResolved``.

Pure: no I/O, no clock. The contract is docs/providers.md, "Market feeds".

- A Gamma market object (the market list and the resolution view) is a
  :class:`MarketListing`: ``id``, ``question``, ``slug``, ``outcomes``, ``outcomePrices``
  and ``clobTokenIds`` (JSON-encoded lists, as Gamma sends them; plain lists are accepted
  too), ``active``, ``closed``, ``endDate``, ``umaResolutionStatus``, ``resolvedAt``, and
  ``sportsMarketType: "1x2"`` with ``gameId`` on a match market.
- CLOB midpoints ``{"<token id>": "0.55"}`` reprice the outcomes of a binary market
  (:func:`with_midpoints`); an odds event (The Odds API shape, the first bookmaker's
  ``h2h`` market) gives a match market's decimal odds (:func:`with_odds`).
- Prices have 4 decimals (half-even) and are clamped to 0.0001..0.9999; a match outcome's
  price is its implied probability ``1 / odds`` (:func:`implied_price`).
- ``MarketUpdated.active`` is ``active and not closed``. ``version`` is 1 for a market's
  first update and +1 for every change; ``updated_at`` is when the poller fetched it.
- Change detection: ``content_sha256`` is the SHA-256 of the canonical JSON of every
  ``MarketUpdated`` field but ``version`` and ``updated_at``: the same content publishes
  nothing, whatever feed it came from. A closed market's prices are frozen: once closed,
  only a change of what the market is (question, outcomes, dates, flags) publishes.
- Resolution: with ``umaResolutionStatus == "resolved"``, the outcome priced 1 (the others
  0) wins; every outcome at 0.5 is void (Polymarket's 50-50). ``MarketResolved.version``
  is 1 for the first resolution and +1 for every change of outcome (or to void); a listing
  without a resolution after one was published publishes nothing (never withdrawn).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from producers.exceptions import MalformedPayloadError
from producers.normalize import (
    EventSlice,
    _array_spans,
    _id,
    _kind,
    _member_span,
    _require_object,
    _skip,
    _text,
    canonical_json,
)
from schemas.records import PRICE_TICK, MarketOutcome, MarketResolved, MarketUpdated
from schemas.records.fixtures import MarketKind

DEFAULT_MARKETS_PROVIDER = "polymarket-replay"
MIN_PRICE = PRICE_TICK
MAX_PRICE = 1 - PRICE_TICK
VOID_PRICE = Decimal("0.5")
#: ``sportsMarketType`` values and what they are.
_KINDS: Mapping[str, MarketKind] = {"1x2": MarketKind.MATCH_1X2}


@dataclass(frozen=True, slots=True)
class ListedResolution:
    """A resolution as listed: the winning outcome, or ``None`` for void."""

    outcome: str | None
    resolved_at: datetime

    @property
    def key(self) -> str:
        """What identifies it in the poller's state: ``void`` or ``outcome:<name>``."""
        return "void" if self.outcome is None else f"outcome:{self.outcome}"


@dataclass(frozen=True, slots=True)
class MarketListing:
    """A Gamma market object, checked."""

    market_id: str
    question: str
    slug: str | None
    kind: MarketKind
    match_id: str | None
    outcomes: tuple[str, ...]
    prices: tuple[Decimal, ...]  # outcomePrices as listed, 0..1
    token_ids: tuple[str, ...]  # one per outcome, or none (not traded on the CLOB)
    active: bool
    closed: bool
    end_date: datetime | None
    resolution: ListedResolution | None

    @property
    def open(self) -> bool:
        return self.active and not self.closed


@dataclass(frozen=True, slots=True)
class OddsQuote:
    """An odds event: decimal odds per outcome name for the match ``match_id``."""

    match_id: str
    odds: Mapping[str, Decimal]


@dataclass(frozen=True, slots=True)
class ProviderMarketState:
    """What the poller last published for a market."""

    provider: str
    market_id: str
    content_sha256: str = ""
    version: int = 0  # of the last MarketUpdated
    resolution: str = ""  # ListedResolution.key of the last MarketResolved; "" before one
    resolution_version: int = 0


# -- documents ------------------------------------------------------------------------


def parse_json(body: bytes) -> tuple[str, Any]:
    """The text and the JSON value of a body; numbers with a fraction as ``Decimal``."""
    try:
        text = body.decode("utf-8")
        return text, json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except UnicodeDecodeError as e:
        raise MalformedPayloadError("body", f"not UTF-8: {e}") from e
    except ValueError as e:  # json.JSONDecodeError is a ValueError
        raise MalformedPayloadError("body", f"not JSON: {e}") from e


def parse_array(body: bytes) -> list[EventSlice]:
    """The items of a top-level JSON array, each with its exact bytes in the body."""
    text, document = parse_json(body)
    if not isinstance(document, list):
        raise MalformedPayloadError("body", f"expected a JSON array, got {_kind(document)}")
    start = _skip(text, 0)
    spans = _array_spans(text, (start, len(text)))
    return [
        EventSlice(index, item, text[begin:end].encode("utf-8"))
        for index, (item, (begin, end)) in enumerate(zip(document, spans, strict=True))
    ]


def parse_midpoint_items(body: bytes) -> list[EventSlice]:
    """``{"<token id>": "<midpoint>", ...}``: per token, ``(token, raw value)`` as payload
    (see :func:`price`) and the exact bytes of the value."""
    text, document = parse_json(body)
    _require_object(document, "body")
    return [
        EventSlice(index, (token, value), text[start:end].encode("utf-8"))
        for index, (token, value) in enumerate(document.items())
        for start, end in (_member_span(text, token),)
    ]


# -- a market --------------------------------------------------------------------------


def parse_market(value: Any) -> MarketListing:
    """A Gamma market object; :class:`MalformedPayloadError` names the bad field."""
    market = _require_object(value, "market")
    market_id = _id(market.get("id"), "market.id")
    outcomes = _names(market.get("outcomes"), "market.outcomes")
    prices = tuple(
        _unit(p, f"market.outcomePrices[{i}]")
        for i, p in enumerate(_list(market.get("outcomePrices"), "market.outcomePrices"))
    )
    if len(prices) != len(outcomes):
        raise MalformedPayloadError(
            "market.outcomePrices", f"{len(prices)} prices for {len(outcomes)} outcomes"
        )
    tokens = tuple(
        _text(t, f"market.clobTokenIds[{i}]")
        for i, t in enumerate(_list(market.get("clobTokenIds", "[]"), "market.clobTokenIds"))
    )
    if tokens and len(tokens) != len(outcomes):
        raise MalformedPayloadError(
            "market.clobTokenIds", f"{len(tokens)} tokens for {len(outcomes)} outcomes"
        )
    kind, match_id = _kind_of(market)
    slug = market.get("slug")
    return MarketListing(
        market_id=market_id,
        question=_text(market.get("question"), "market.question"),
        slug=None if slug is None else _text(slug, "market.slug"),
        kind=kind,
        match_id=match_id,
        outcomes=outcomes,
        prices=prices,
        token_ids=tokens,
        active=_bool(market.get("active"), "market.active"),
        closed=_bool(market.get("closed"), "market.closed"),
        end_date=_optional_time(market.get("endDate"), "market.endDate"),
        resolution=_resolution(market, outcomes, prices),
    )


def market_key(value: Any) -> str | None:
    """The market id, when the object has a usable one."""
    if not isinstance(value, Mapping):
        return None
    try:
        return _id(value.get("id"), "market.id")
    except MalformedPayloadError:
        return None


def parse_odds_event(value: Any) -> OddsQuote:
    """An odds event: the first bookmaker's ``h2h`` outcomes, ``{name: decimal odds}``."""
    event = _require_object(value, "event")
    match_id = _id(event.get("id"), "event.id")
    bookmakers = event.get("bookmakers")
    if not isinstance(bookmakers, list) or not bookmakers:
        raise MalformedPayloadError(
            "event.bookmakers", f"expected a non-empty list: {bookmakers!r}"
        )
    bookmaker = _require_object(bookmakers[0], "event.bookmakers[0]")
    books = _list(bookmaker.get("markets"), "event.bookmakers[0].markets")
    h2h = [m for m in books if isinstance(m, Mapping) and m.get("key") == "h2h"]
    if not h2h:
        raise MalformedPayloadError("event.bookmakers[0].markets", "no h2h market")
    field = "event.bookmakers[0].markets[h2h].outcomes"
    odds: dict[str, Decimal] = {}
    for i, item in enumerate(_list(h2h[0].get("outcomes"), field)):
        outcome = _require_object(item, f"{field}[{i}]")
        name = _text(outcome.get("name"), f"{field}[{i}].name")
        odds[name] = _odds(outcome.get("price"), f"{field}[{i}].price")
    return OddsQuote(match_id, odds)


# -- quotes ----------------------------------------------------------------------------


def price(value: Any, field: str) -> Decimal:
    """A price from 0 to 1 (a string or a number) at 4 decimals, clamped to 0.0001..0.9999."""
    return min(MAX_PRICE, max(MIN_PRICE, _unit(value, field).quantize(PRICE_TICK, ROUND_HALF_EVEN)))


def implied_price(odds: Decimal) -> Decimal:
    """The price of an outcome at decimal ``odds``: ``1 / odds``, 4 decimals, clamped."""
    return price(1 / odds, "odds")


def listed_quotes(listing: MarketListing) -> tuple[MarketOutcome, ...]:
    """The outcomes at the listing's own prices (a market not priced yet)."""
    return tuple(
        MarketOutcome(name=name, price=price(p, "market.outcomePrices"))
        for name, p in zip(listing.outcomes, listing.prices, strict=True)
    )


def with_midpoints(
    listing: MarketListing, current: Sequence[MarketOutcome], midpoints: Mapping[str, Decimal]
) -> tuple[MarketOutcome, ...]:
    """``current`` with each outcome whose token has a midpoint repriced."""
    return tuple(
        replace(outcome, price=midpoints[token]) if token in midpoints else outcome
        for outcome, token in zip(current, listing.token_ids, strict=True)
    )


def with_odds(listing: MarketListing, quote: OddsQuote) -> tuple[MarketOutcome, ...]:
    """The listing's outcomes at ``quote``'s odds; every outcome must have odds."""
    missing = [name for name in listing.outcomes if name not in quote.odds]
    if missing:
        raise MalformedPayloadError(
            "event.bookmakers[0].markets[h2h].outcomes", f"no odds for {', '.join(missing)}"
        )
    return tuple(
        MarketOutcome(name=name, price=implied_price(quote.odds[name]), odds=quote.odds[name])
        for name in listing.outcomes
    )


# -- what to publish -------------------------------------------------------------------


def market_update(
    listing: MarketListing,
    outcomes: Sequence[MarketOutcome],
    *,
    provider: str = DEFAULT_MARKETS_PROVIDER,
    previous: ProviderMarketState | None = None,
    at: datetime,
) -> tuple[MarketUpdated, ProviderMarketState] | None:
    """The ``MarketUpdated`` to publish and the new state, or ``None`` when nothing changed."""
    state = _previous(previous, provider, listing.market_id)
    content: dict[str, Any] = {
        "market_id": listing.market_id,
        "question": listing.question,
        "slug": listing.slug,
        "kind": listing.kind.value,
        "match_id": listing.match_id,
        "outcomes": [
            {"name": o.name}
            if listing.closed  # no trading: a closed market's prices are frozen
            else {"name": o.name, "price": str(o.price), "odds": _text_or_none(o.odds)}
            for o in outcomes
        ],
        "active": listing.open,
        "closed": listing.closed,
        "end_date": None if listing.end_date is None else listing.end_date.isoformat(),
    }
    digest = hashlib.sha256(canonical_json(content)).hexdigest()
    if digest == state.content_sha256:
        return None
    update = MarketUpdated(
        market_id=listing.market_id,
        question=listing.question,
        outcomes=tuple(outcomes),
        active=listing.open,
        closed=listing.closed,
        end_date=listing.end_date,
        version=state.version + 1,
        updated_at=at,
        kind=listing.kind,
        slug=listing.slug,
        match_id=listing.match_id,
    )
    return update, replace(state, content_sha256=digest, version=state.version + 1)


def market_resolution(
    listing: MarketListing,
    *,
    provider: str = DEFAULT_MARKETS_PROVIDER,
    previous: ProviderMarketState | None = None,
) -> tuple[MarketResolved, ProviderMarketState] | None:
    """The ``MarketResolved`` to publish and the new state, or ``None`` (unresolved, same)."""
    state = _previous(previous, provider, listing.market_id)
    resolution = listing.resolution
    if resolution is None or resolution.key == state.resolution:
        return None
    version = state.resolution_version + 1
    resolved = MarketResolved(
        market_id=listing.market_id,
        outcome=resolution.outcome,
        void=resolution.outcome is None,
        version=version,
        resolved_at=resolution.resolved_at,
        kind=listing.kind,
        match_id=listing.match_id,
    )
    return resolved, replace(state, resolution=resolution.key, resolution_version=version)


def _text_or_none(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _previous(
    previous: ProviderMarketState | None, provider: str, market_id: str
) -> ProviderMarketState:
    if previous is None:
        return ProviderMarketState(provider, market_id)
    if (previous.provider, previous.market_id) != (provider, market_id):
        raise ValueError(
            f"previous state is {previous.provider}/{previous.market_id}, "
            f"the market is {provider}/{market_id}"
        )
    return previous


# -- the parts of a market -------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _list(value: Any, field: str) -> list[Any]:
    """A JSON list, or a string holding one (Gamma encodes its lists as JSON text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value, parse_float=Decimal, parse_constant=_reject_constant)
        except ValueError as e:
            raise MalformedPayloadError(field, f"not a JSON list: {value[:40]!r}") from e
    if not isinstance(value, list):
        raise MalformedPayloadError(field, f"expected a list, got {_kind(value)}")
    return value


def _names(value: Any, field: str) -> tuple[str, ...]:
    names = tuple(_text(n, f"{field}[{i}]") for i, n in enumerate(_list(value, field)))
    if len(names) < 2 or len(set(names)) != len(names):
        raise MalformedPayloadError(field, f"expected two or more distinct names: {names!r}")
    return names


def _decimal(value: Any, field: str) -> Decimal:
    """A number or a numeric string; a float as its shortest repr (``2.1`` is ``2.1``)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise MalformedPayloadError(field, f"expected a decimal number, got {value!r}")
    try:
        number = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation as e:
        raise MalformedPayloadError(field, f"expected a decimal number, got {value!r}") from e
    if not number.is_finite():
        raise MalformedPayloadError(field, f"expected a finite number, got {value!r}")
    return number


def _unit(value: Any, field: str) -> Decimal:
    number = _decimal(value, field)
    if not 0 <= number <= 1:
        raise MalformedPayloadError(field, f"expected 0..1, got {value!r}")
    return number


def _odds(value: Any, field: str) -> Decimal:
    number = _decimal(value, field)
    if not 1 < number < 10**6:
        raise MalformedPayloadError(field, f"expected decimal odds above 1, got {value!r}")
    return number.quantize(PRICE_TICK, ROUND_HALF_EVEN)


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise MalformedPayloadError(field, f"expected true or false, got {value!r}")
    return value


def _time(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise MalformedPayloadError(field, f"expected an ISO-8601 time, got {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as e:
        raise MalformedPayloadError(field, f"expected an ISO-8601 time, got {value!r}") from e
    if moment.utcoffset() is None:
        raise MalformedPayloadError(field, f"expected a time with a UTC offset, got {value!r}")
    return moment.astimezone(UTC)


def _optional_time(value: Any, field: str) -> datetime | None:
    return None if value is None else _time(value, field)


def _kind_of(market: Mapping[str, Any]) -> tuple[MarketKind, str | None]:
    sports = market.get("sportsMarketType")
    if sports is None:
        return MarketKind.BINARY, None
    if sports not in _KINDS:
        raise MalformedPayloadError(
            "market.sportsMarketType", f"expected one of {', '.join(_KINDS)}, got {sports!r}"
        )
    return _KINDS[sports], _id(market.get("gameId"), "market.gameId")


def _resolution(
    market: Mapping[str, Any], outcomes: tuple[str, ...], prices: tuple[Decimal, ...]
) -> ListedResolution | None:
    if market.get("umaResolutionStatus") != "resolved":
        return None
    resolved_at = _time(market.get("resolvedAt"), "market.resolvedAt")
    if all(p == VOID_PRICE for p in prices):
        return ListedResolution(None, resolved_at)
    winners = [name for name, p in zip(outcomes, prices, strict=True) if p == 1]
    if len(winners) != 1 or sum(prices) != 1:
        raise MalformedPayloadError(
            "market.outcomePrices",
            "a resolved market has one outcome at 1 and the others at 0, or all at 0.5 (void)",
        )
    return ListedResolution(winners[0], resolved_at)
