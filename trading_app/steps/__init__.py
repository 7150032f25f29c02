"""Trading step types: params schemas (pydantic, extra fields forbidden, every field defaulted) and handlers.

Handlers take a ``StepContext`` and return a JSON-serialisable dict. Which symbols a step works on
follows one rule (``trading_app.symbols.symbol_scope``, README "Symbol scope"): the trigger's event
or ``input_data.symbols`` narrows the step's list (its ``symbols``, else the previous steps'),
unless the step says ``symbols_mode: fixed``; each output's ``symbol_scope`` says which and why.
``ctx.test_mode`` forces the simulated providers and the paper broker.

Each module declares its step types next to their handlers (``STEP_TYPES``; ``trading_app.plugin``
collects them):

- ``analysis``       news_analysis, technical_analysis, signal_generation, market_scan
- ``orders``         trade_execution, position_sizing
- ``protection``     risk_check, hedge, stop_loss_management
- ``saga``           reserve/release_funds, place/cancel_order, update/revert_portfolio
- ``notifications``  send_notification / send_failure_alert, the alert_user action
- ``actions``        the other actions of ``conditional`` steps: analyze, queue_for_execution, trade,
                     immediate_hedge
- ``common``         what they share: params bases, symbol scope, order audit, retry policies
"""
