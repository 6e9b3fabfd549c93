"""Reduce one layer: its hidden state, the reduction and what it costs in the later layers."""
