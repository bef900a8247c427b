"""Sync with ODK Central through pyodk: publish forms, pull submissions, push review decisions.

Built by the Central sync issue; the package exists so the tree shows the pipeline.
"""
