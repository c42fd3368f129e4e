"""mxconv's service: a Flask app, served by gunicorn, running MXNet convolution math."""

__version__ = "0.1.0"
