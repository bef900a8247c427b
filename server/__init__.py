"""The Flask application: OpenRosa for ODK Collect, review screens and reports.

Built by the embedded OpenRosa server issue; the package exists so the tree shows the pipeline.
"""
