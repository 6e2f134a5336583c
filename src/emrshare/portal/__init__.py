"""The patient portal (``emrshare portal``): a local web app on 127.0.0.1, next to the
patient's keys, that shows what the chain says about the patient's records (who read which
kind of record, when; who can read what now) and answers requests and revokes grants.

``emrshare.portal.charts`` draws the audit timeline and the access map (SVG, and the
timeline as PNG with matplotlib) for the portal and for ``emrshare audit --html|--png``.
"""
