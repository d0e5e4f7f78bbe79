"""State a server keeps between calls beyond ConnectWise's own records: in this process (the embedded default).

Only what ConnectWise cannot hold lives here, and losing it (a restart) costs at most a little: the alert
intake's per-key locks and repeat counters (`alerts.py`). What must survive a restart - which ticket belongs
to an alert - is kept on the ticket itself.
"""
