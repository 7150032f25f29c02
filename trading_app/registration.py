"""Trading's operations, served by the engine's MCP face next to its own (TradingAppConfig.ready()).

Everything else trading plugs into the engine is declared in ``trading_app.plugin``.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from trading_app import operations
from workflows_app.registry import registry

# --- trading operations as MCP tools (the models give the input schemas; the operations validate) ---
_ACCOUNT = Field(None, max_length=64, description="An account you may see (default: your own).")


class NoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountArgs(NoArgs):
    account: str | None = _ACCOUNT


class OrdersArgs(NoArgs):
    status: str | None = Field(None, description="open, new, filled, canceled, rejected, ...")
    symbol: str | None = Field(None, max_length=16)
    execution_id: str | None = Field(None, max_length=64)
    account: str | None = _ACCOUNT
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0)


class KillSwitchArgs(NoArgs):
    active: bool | None = Field(None, description="Omit to read the state; true/false to set it (the global "
                                                  "switch: staff only; an account's: its owners or staff).")
    reason: str | None = Field(None, max_length=300)
    account: str | None = Field(None, max_length=64, description="An account you may see: its own switch "
                                                                 "(default: the global switch).")


# tool name: (operation, args model, description) - the same functions the REST views call
OPERATIONS = {
    "trading_accounts": (operations.trading_accounts, NoArgs, "The broker accounts you may see."),
    "trading_account": (operations.trading_account, AccountArgs,
                        "A broker account (default: your own), its exposure, caps and the trading mode."),
    "trading_positions": (operations.trading_positions, AccountArgs, "Open positions of an account (marked to "
                                                                     "market)."),
    "trading_orders": (operations.trading_orders, OrdersArgs, "Orders of the accounts you may see, newest first."),
    "trading_kill_switch": (operations.trading_kill_switch, KillSwitchArgs,
                            "Read the kill switch (global; with account, that account's too) or set it."),
}


def register_operations() -> None:
    for name, (fn, model, description) in OPERATIONS.items():
        registry.register_operation(name, fn, params_model=model, description=description)
