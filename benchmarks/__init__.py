"""mxconv's benchmark suite: ``python -m benchmarks`` (or ``make bench``) prints one table.

Sections: (1) in-process ``compute.conv2d`` against PyTorch and scipy, (2) the service end to
end through the client in each transport, (3) small-request throughput against a bare Flask
app under the same gunicorn settings, (4) peak worker RSS during the large cases. All timings
are medians of repeated runs; competitors run interleaved in the same process, as ratios.
"""
