"""MXNet math with no Flask: the service's compute core."""
