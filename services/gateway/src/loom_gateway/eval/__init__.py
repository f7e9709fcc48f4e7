"""`loom eval`: measures a model or an app on the seed's validation metrics.

    suite.py      the suite, its cases and thresholds, read from data files (data/)
    checker.py    tool-call arguments checked as the Berkeley Function-Calling Leaderboard does
    metrics.py    percentiles, rates, threshold verdicts (pure functions)
    targets.py    what is measured: an OpenAI-compatible model, or a Dify-API app behind the gateway
    latency.py    time to first token at 1 and N concurrent streams
    retention.py  a fact given at turn 1, asked again at turn k
    toolcalls.py  the function-calling cases run and checked
    runner.py     one subject (direct and/or gateway) through the whole suite
    report.py     the JSON report and its HTML page; plots.py draws the figures (matplotlib)
    cli.py        the `loom` command line (typer)

Nothing here imports the gateway's service code: `loom eval` is a client of the public APIs.
"""
