"""The UNIFIED account wallet: per-coin balances and the account object of `wallet-balance`.

Margin model (documented in docs/bybit_sim.md): USDT is the only margin collateral for linear
positions (cross margin). Other coins are spot holdings valued at their spot price in the USD
totals but do not back derivatives margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bybit_sim.engine.numbers import ZERO, fmt

MARGIN_COIN = "USDT"


@dataclass(slots=True)
class CoinBalance:
    wallet: Decimal = ZERO
    # reserved by open spot orders
    locked: Decimal = ZERO
    cum_realised: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class MarginFigures:
    """USDT-denominated derivative figures the wallet rendering needs."""

    upl: Decimal
    position_im: Decimal
    position_mm: Decimal
    order_im: Decimal

    @staticmethod
    def empty() -> MarginFigures:
        return MarginFigures(ZERO, ZERO, ZERO, ZERO)


def available_margin(usdt: CoinBalance, m: MarginFigures) -> Decimal:
    """Cross-margin available balance: wallet + UPL - position IM - order IM - spot locks."""
    return usdt.wallet + m.upl - m.position_im - m.order_im - usdt.locked


def render_account(
    coins: dict[str, CoinBalance],
    usd_prices: dict[str, Decimal],
    m: MarginFigures,
    only: set[str] | None,
) -> dict[str, Any]:
    """The single account object of `wallet-balance` / the WS `wallet` item (minus category)."""
    total_wallet = ZERO
    total_equity = ZERO
    coin_items: list[dict[str, Any]] = []
    for coin, bal in coins.items():
        price = usd_prices.get(coin, ZERO)
        is_margin = coin == MARGIN_COIN
        upl = m.upl if is_margin else ZERO
        equity = bal.wallet + upl
        total_wallet += bal.wallet * price
        total_equity += equity * price
        if only is not None:
            if coin not in only:
                continue
        elif bal.wallet == 0 and bal.locked == 0 and upl == 0:
            continue
        coin_items.append(
            {
                "coin": coin,
                "equity": fmt(equity),
                "usdValue": fmt(equity * price),
                "walletBalance": fmt(bal.wallet),
                "free": "",
                "locked": fmt(bal.locked),
                "spotHedgingQty": "0",
                "borrowAmount": "0",
                "availableToWithdraw": "",
                "availableToBorrow": "",
                "accruedInterest": "0",
                "totalOrderIM": fmt(m.order_im if is_margin else ZERO),
                "totalPositionIM": fmt(m.position_im if is_margin else ZERO),
                "totalPositionMM": fmt(m.position_mm if is_margin else ZERO),
                "unrealisedPnl": fmt(upl),
                "cumRealisedPnl": fmt(bal.cum_realised),
                "bonus": "0",
                "marginCollateral": True,
                "collateralSwitch": is_margin,
                "colRes": "0",
                "spotBorrow": "0",
            }
        )
    usdt = coins.get(MARGIN_COIN, CoinBalance())
    margin_balance = usdt.wallet + m.upl
    total_im = m.position_im + m.order_im
    im_rate = total_im / margin_balance if margin_balance > 0 else ZERO
    mm_rate = m.position_mm / margin_balance if margin_balance > 0 else ZERO
    available = max(available_margin(usdt, m), ZERO)
    return {
        "accountType": "UNIFIED",
        "accountIMRate": fmt(im_rate.quantize(Decimal("0.0001"))),
        "accountMMRate": fmt(mm_rate.quantize(Decimal("0.0001"))),
        "accountIMRateByMp": fmt(im_rate.quantize(Decimal("0.0001"))),
        "accountMMRateByMp": fmt(mm_rate.quantize(Decimal("0.0001"))),
        "totalEquity": fmt(total_equity),
        "totalWalletBalance": fmt(total_wallet),
        "totalMarginBalance": fmt(margin_balance),
        "totalAvailableBalance": fmt(available),
        "totalPerpUPL": fmt(m.upl),
        "totalInitialMargin": fmt(total_im),
        "totalMaintenanceMargin": fmt(m.position_mm),
        "totalInitialMarginByMp": fmt(total_im),
        "totalMaintenanceMarginByMp": fmt(m.position_mm),
        "accountLTV": "0",
        "coin": coin_items,
    }
