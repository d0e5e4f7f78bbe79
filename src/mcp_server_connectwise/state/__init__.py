"""State a server keeps between calls beyond ConnectWise's own records (`store`): in this process by default,
or in a Redis that replicas share (`redis`, with `[state] url`).

Only what ConnectWise cannot hold lives here, and losing it (a restart) costs at most a little: the rate
budgets, the alert intake's per-key locks and repeat counters (`alerts.py`), the catalog caches. What must
survive a restart - which ticket belongs to an alert - is kept on the ticket itself.
"""
