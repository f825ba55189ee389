"""The bottom layer: what blocks, tasks and flows all need and none of them owns.

Error vocabulary and retry policy, step results and planned changes, the rule book (names,
patterns, limits, cron) and the data types flows pass between steps. Pure: no Prefect, no SDK
clients, no I/O (``errors.classify`` imports SDK exception types lazily to recognise them).
"""
