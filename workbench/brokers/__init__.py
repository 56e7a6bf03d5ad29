"""Brokers: where orders go. Every broker follows the contract in ``base.py``."""
