"""Reconciliation of a live run's journal with what the venue holds (``brokers/reconcile.py``)."""

from __future__ import annotations

from decimal import Decimal

from workbench.brokers.reconcile import OurView, VenueView, reconcile

OURS = OurView(open_ids={"run-1-3": "BTCUSDT"}, sent_ids=frozenset({"run-1-1", "run-1-2",
                                                                    "run-1-3"}),
               units={"BTCUSDT": 1_000_000}, baseline={"BTC": Decimal("0.5")},
               base_assets={"BTCUSDT": "BTC"}, steps={"BTCUSDT": Decimal("0.00001")},
               base_commission={"BTCUSDT": Decimal("0.00001")})
OPEN_3 = {"symbol": "BTCUSDT", "clientOrderId": "run-1-3", "status": "NEW"}


def test_reconcile_venue_matching_the_journal_has_no_difference() -> None:
    venue = VenueView([OPEN_3], {"BTC": Decimal("0.50999")})  # 0.5 + 0.01 - 0.00001
    assert reconcile(venue, OURS) == []


def test_reconcile_names_an_order_it_did_not_send_and_leaves_it_alone() -> None:
    other = {"symbol": "BTCUSDT", "clientOrderId": "web_abc", "status": "NEW", "side": "SELL",
             "origQty": "0.1"}
    found = reconcile(VenueView([OPEN_3, other], {"BTC": Decimal("0.50999")}), OURS)
    assert [(d.kind, d.client_order_id, d.halts) for d in found] == [
        ("unknown_venue_order", "web_abc", False)]
    assert "not sent by this run" in found[0].detail


def test_reconcile_orders_open_on_one_side_only() -> None:
    done_here = {"symbol": "BTCUSDT", "clientOrderId": "run-1-2", "status": "NEW"}
    found = reconcile(VenueView([done_here], {"BTC": Decimal("0.50999")}), OURS)
    assert sorted((d.kind, d.client_order_id) for d in found) == [
        ("missing_at_venue", "run-1-3"), ("open_at_venue_only", "run-1-2")]
    assert not any(d.halts for d in found)


def test_reconcile_position_off_by_more_than_half_a_step_halts() -> None:
    close = reconcile(VenueView([OPEN_3], {"BTC": Decimal("0.509994")}), OURS)
    assert close == []  # within half a lot step
    off = reconcile(VenueView([OPEN_3], {"BTC": Decimal("0.51999")}), OURS)
    assert [(d.kind, d.symbol, d.halts) for d in off] == [("position_mismatch", "BTCUSDT", True)]
    assert "0.01999" in off[0].detail and "0.00999" in off[0].detail


def test_reconcile_position_off_while_an_outcome_is_unknown_does_not_halt() -> None:
    unsettled = OurView(open_ids={}, sent_ids=OURS.sent_ids, units=OURS.units,
                        baseline=OURS.baseline, base_assets=OURS.base_assets, steps=OURS.steps,
                        base_commission=OURS.base_commission,
                        unknown_ids={"run-1-3": "BTCUSDT"})
    found = reconcile(VenueView([], {"BTC": Decimal("0.5")}), unsettled)
    assert [(d.kind, d.halts) for d in found] == [("position_unsettled", False)]


def test_reconcile_names_trades_it_did_not_make_or_did_not_journal() -> None:
    ours = OurView(open_ids={"run-1-3": "BTCUSDT"}, sent_ids=OURS.sent_ids, units=OURS.units,
                   baseline=OURS.baseline, base_assets=OURS.base_assets, steps=OURS.steps,
                   base_commission=OURS.base_commission,
                   journaled_trades=frozenset({("run-1-1", 7)}))
    venue = VenueView([OPEN_3], {"BTC": Decimal("0.50999")}, trades=[
        ("run-1-1", 7, "BTCUSDT"), ("run-1-2", 9, "BTCUSDT"), ("web_x", 11, "BTCUSDT"),
        (None, 12, "BTCUSDT")])
    found = reconcile(venue, ours)
    assert [(d.kind, d.client_order_id, d.halts) for d in found] == [
        ("untracked_trade", "run-1-2", False), ("foreign_trade", "web_x", False),
        ("foreign_trade", None, False)]
    assert "trade 9" in found[0].detail and "trade 12 of order ?" in found[2].detail
