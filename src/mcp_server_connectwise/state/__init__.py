"""State a server keeps between calls beyond ConnectWise's own records (`store`): in this process by default,
or in a Redis that replicas share (`redis`, with `[state] url`).

Only what ConnectWise cannot hold lives here. Losing the rate budgets, the alert intake's per-key locks and
repeat counters (`alerts.py`) and the catalog caches (a restart) costs at most a little; what must survive a
restart - which ticket belongs to an alert - is kept on the ticket itself. On disk: the event log of
ConnectWise's callbacks (`events.py`, a SQLite file by default), which survives restarts because ConnectWise
will not send a callback again.
"""
