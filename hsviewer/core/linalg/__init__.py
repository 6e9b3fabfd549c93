"""The linear algebra every analysis shares: centred SVD, the reduction, spectrum measures, grids."""
