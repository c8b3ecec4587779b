"""Training sets built from the audit log: selected, cleaned, split, pinned and verifiable.

:func:`~preflog.dataset.build.build` writes a build; :mod:`preflog.dataset.catalog`
lists, reads and verifies them; :mod:`preflog.dataset.select` is the selection and cleaning.
"""
