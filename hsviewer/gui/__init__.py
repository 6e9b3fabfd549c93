"""The PySide6 desktop app: a thin, live view over hsviewer.core."""
