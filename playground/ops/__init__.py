"""What the operator sees and does: the figures an instance is sized by, the per-minute count of
refusals behind them, and the actions staff may take (each one logged).

- `tally`    refusals (429, 503) counted per minute in the app database
- `figures`  the status page's figures: sandboxes against the cap, sizes, connections, rates
- `actions`  drop a sandbox, reap now, close a room: each recorded as an `OperatorAction`
"""
