"""Published layer-geometry curves reproduced from clean forward passes over a corpus (hsviewer reproduce)."""
