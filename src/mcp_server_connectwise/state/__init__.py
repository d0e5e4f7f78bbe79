"""State a server keeps beyond ConnectWise's own records.

In this process (the embedded default), and lost at a restart at little cost: the alert intake's per-key locks
and repeat counters (`alerts.py`); what must survive a restart - which ticket belongs to an alert - is kept on
the ticket itself. On disk: the event log of ConnectWise's callbacks (`events.py`, a SQLite file by default),
which survives restarts because ConnectWise will not send a callback again.
"""
