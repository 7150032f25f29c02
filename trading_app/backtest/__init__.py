"""Backtest a whole workflow: its triggers, steps, risk checks and broker interface replayed over
history on a simulated clock (README "Backtest a workflow").

Modules: ``record`` (the ``Backtest`` row), ``arguments`` (the operation's arguments and the fill
model's parameters), ``data`` (history and the as-of views of market data and news), ``fills``
(the pessimistic fill model, pure), ``broker`` (the backtest broker on a throw-away account),
``replay`` (the simulated clock, trigger evaluation and the step handlers in order), ``metrics``
(pure), ``service`` (start, run, read).
"""
