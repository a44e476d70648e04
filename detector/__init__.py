"""goipwatch: telecom-side detection of GOIP gateways, SIM boxes, modem pools and bulk cards."""

__version__ = "0.1.0"
