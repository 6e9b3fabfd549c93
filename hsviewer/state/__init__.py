"""The app's state outside the widgets, as napari's ViewerModel: plain Python, no Qt.

The loaded model, each tab's current result and what is out of date, the jobs in flight, the
runs listed. Each part emits psygnal signals that the Qt views (hsviewer.gui) observe; the GUI's
behaviour can so be tested without a window. Core types are imported inside the functions that
need them: the bare window shows before numpy is imported.
"""
