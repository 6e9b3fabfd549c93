"""Reduce each layer in turn, with controls and a grid."""
