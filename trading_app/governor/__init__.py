"""The account-wide risk governor: one gate every order passes (``gate.submit``, called by
``trading_app.brokers.Broker.submit_order``), per broker account, with latching states
active -> reduce_only -> halted (``models.RiskState``), limits as ceilings from settings tightened
per account (``limits``), a judgement robust to bad readings (``evaluate``, ``readings``), and an
audited record of every decision, breach, warning and reset (``records``). Faces: ``service``
(status, reset) through ``trading_app.operations``.

Nothing is imported here: ``trading_app.models`` imports ``governor.models`` at start-up.
"""
