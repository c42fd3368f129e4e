"""Load test for mxconv: a table-driven request mix at fixed concurrency, with figures.

    python -m loadtest --spawn --concurrency 32 64 --duration 60   # starts its own server
    python -m loadtest --url http://127.0.0.1:8000 --server-pid <pid of mxconv serve>

See README "Hardening" for the targets and the latest figures.
"""
