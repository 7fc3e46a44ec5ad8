"""Wire models parse Bybit's payload shapes (v5-reference §3-§5) into Decimal and UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from order_manager.adapters.bybit.models import (
    Envelope,
    Execution,
    Order,
    OrderBook,
    Page,
    Position,
    PrivateMessage,
    RawInstrument,
    Ticker,
    WalletAccount,
    loads,
)

ORDER_JSON = """{
  "orderId": "fd4300ae-7847-404e-b947-b46980a4d140", "orderLinkId": "test-000005",
  "blockTradeId": "", "symbol": "ETHUSDT", "price": "1600.00", "qty": "0.10", "side": "Buy",
  "isLeverage": "", "positionIdx": 1, "orderStatus": "Cancelled", "cancelType": "UNKNOWN",
  "rejectReason": "EC_PostOnlyWillTakeLiquidity", "avgPrice": "0", "leavesQty": "0.00",
  "leavesValue": "0", "cumExecQty": "0.00", "cumExecValue": "0", "cumExecFee": "0",
  "cumFeeDetail": {"USDT": "0.0012"}, "timeInForce": "PostOnly", "orderType": "Limit",
  "stopOrderType": "UNKNOWN", "orderIv": "", "triggerPrice": "0.00", "takeProfit": "2500.00",
  "stopLoss": "1500.00", "tpTriggerBy": "LastPrice", "slTriggerBy": "LastPrice",
  "triggerDirection": 0, "triggerBy": "UNKNOWN", "lastPriceOnCreated": "", "reduceOnly": false,
  "closeOnTrigger": false, "smpType": "None", "smpGroup": 0, "smpOrderId": "", "tpslMode": "Full",
  "tpLimitPrice": "", "slLimitPrice": "", "placeType": "", "createdTime": "1684738540559",
  "updatedTime": "1684738540561"
}"""


def test_order_parses_numbers_to_decimal_and_times_to_utc() -> None:
    order = Order.model_validate(loads(ORDER_JSON))
    assert order.price == Decimal("1600.00") and isinstance(order.price, Decimal)
    assert order.qty == Decimal("0.10")
    assert order.cum_exec_qty == Decimal("0")
    assert order.cum_fee_detail == {"USDT": Decimal("0.0012")}
    assert order.position_idx == 1
    assert order.reject_reason == "EC_PostOnlyWillTakeLiquidity"
    assert order.created_time == datetime(2023, 5, 22, 6, 55, 40, 559000, tzinfo=UTC)
    assert order.created_time is not None and order.created_time.tzinfo is UTC
    assert not order.is_open


def test_empty_strings_become_none() -> None:
    order = Order.model_validate(loads(ORDER_JSON.replace('"avgPrice": "0"', '"avgPrice": ""')))
    assert order.avg_price is None


def test_floats_are_refused_even_if_a_server_sends_json_numbers() -> None:
    data = {
        "orderId": "x",
        "symbol": "BTCUSDT",
        "side": "Buy",
        "orderType": "Limit",
        "qty": 0.1,
        "orderStatus": "New",
    }
    with pytest.raises(ValidationError):
        Order.model_validate(data)


def test_loads_never_produces_floats() -> None:
    assert loads('{"a": 0.1}') == {"a": Decimal("0.1")}


def test_envelope_and_paginated_orders() -> None:
    text = (
        '{"retCode":0,"retMsg":"OK","result":{"category":"linear","list":['
        + ORDER_JSON
        + '],"nextPageCursor":"page_args%3Dfd43%26symbol%3D6%26"},"retExtInfo":{},'
        '"time":1684765770483}'
    )
    env = Envelope.model_validate(loads(text))
    assert env.ret_code == 0 and env.time == 1684765770483
    page = Page[Order].model_validate(env.result)
    assert page.next_page_cursor == "page_args%3Dfd43%26symbol%3D6%26"
    assert page.list[0].order_link_id == "test-000005"


def test_execution_fast_and_full() -> None:
    fast = Execution.model_validate(
        {
            "category": "linear",
            "symbol": "BTCUSDT",
            "orderId": "o1",
            "isMaker": True,
            "orderLinkId": "",
            "execId": "e1",
            "execPrice": "30000.5",
            "execQty": "0.002",
            "side": "Sell",
            "execTime": "1672364174443",
            "seq": 4688002127,
        }
    )
    assert fast.exec_price == Decimal("30000.5") and fast.is_maker and fast.seq == 4688002127
    assert fast.exec_fee is None


def test_position_rest_and_ws_entry_price() -> None:
    rest = Position.model_validate(
        {
            "symbol": "BTCUSDT",
            "side": "Buy",
            "size": "0.01",
            "positionIdx": 0,
            "avgPrice": "30000",
            "liqPrice": "",
            "seq": -1,
            "createdTime": "1676538056258",
        }
    )
    ws = Position.model_validate(
        {"symbol": "BTCUSDT", "side": "", "size": "0", "positionIdx": 0, "entryPrice": "29000.1"}
    )
    assert rest.entry == Decimal("30000") and rest.liq_price is None
    assert ws.entry == Decimal("29000.1") and ws.size == 0


def test_wallet_account_with_coins() -> None:
    account = WalletAccount.model_validate(
        {
            "accountType": "UNIFIED",
            "totalEquity": "3.31216591",
            "totalAvailableBalance": "3.0",
            "totalPerpUPL": "0",
            "accountIMRate": "0",
            "coin": [
                {
                    "coin": "USDT",
                    "equity": "1.5",
                    "walletBalance": "1.5",
                    "totalOrderIM": "0",
                    "totalPositionIM": "0.1",
                    "availableToWithdraw": "",
                    "marginCollateral": True,
                }
            ],
        }
    )
    usdt = account.coin_balance("USDT")
    assert usdt is not None and usdt.total_position_im == Decimal("0.1")
    assert account.total_perp_upl == 0 and account.coin_balance("BTC") is None


def test_linear_and_spot_instruments() -> None:
    linear = RawInstrument.model_validate(
        {
            "symbol": "BTCUSDT",
            "contractType": "LinearPerpetual",
            "status": "Trading",
            "baseCoin": "BTC",
            "quoteCoin": "USDT",
            "settleCoin": "USDT",
            "fundingInterval": 480,
            "priceFilter": {"minPrice": "0.10", "maxPrice": "199999.80", "tickSize": "0.10"},
            "lotSizeFilter": {
                "maxOrderQty": "1190.000",
                "maxMktOrderQty": "500.000",
                "minOrderQty": "0.001",
                "qtyStep": "0.001",
                "minNotionalValue": "5",
            },
        }
    )
    assert linear.price_filter.tick_size == Decimal("0.10")
    assert linear.lot_size_filter.max_mkt_order_qty == Decimal("500.000")
    spot = RawInstrument.model_validate(
        {
            "symbol": "BTCUSDT",
            "status": "Trading",
            "baseCoin": "BTC",
            "quoteCoin": "USDT",
            "priceFilter": {"tickSize": "0.01"},
            "lotSizeFilter": {
                "basePrecision": "0.000001",
                "quotePrecision": "0.00000001",
                "minOrderQty": "0.000048",
                "minOrderAmt": "1",
                "maxMarketOrderQty": "40",
            },
        }
    )
    assert spot.lot_size_filter.qty_step is None
    assert spot.lot_size_filter.base_precision == Decimal("0.000001")


def test_ticker_and_orderbook() -> None:
    ticker = Ticker.model_validate(
        {
            "symbol": "BTCUSDT",
            "bid1Price": "29999.9",
            "ask1Price": "30000.0",
            "markPrice": "30000.1",
        }
    )
    assert ticker.bid1_price == Decimal("29999.9") and ticker.last_price is None
    book = OrderBook.model_validate(
        {
            "s": "BTCUSDT",
            "b": [["29999.9", "1.2"]],
            "a": [["30000.0", "0.5"]],
            "ts": 1,
            "u": 7,
            "seq": 9,
        }
    )
    assert book.bids == [(Decimal("29999.9"), Decimal("1.2"))] and book.update_id == 7


def test_private_message_items_by_topic() -> None:
    msg = PrivateMessage.model_validate(
        loads(
            '{"id":"5923240c6880ab-c59f-420b-9adb-3639adc9dd90","topic":"order",'
            '"creationTime":1672364262474,"data":[' + ORDER_JSON + "]}"
        )
    )
    assert msg.base_topic == "order"
    assert msg.orders()[0].order_id == "fd4300ae-7847-404e-b947-b46980a4d140"
    assert msg.creation_time == datetime(2022, 12, 30, 1, 37, 42, 474000, tzinfo=UTC)
    assert PrivateMessage(topic="execution.fast.linear", data=()).base_topic == "execution"
