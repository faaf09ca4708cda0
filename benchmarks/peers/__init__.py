"""Peers of the data-plane benchmark (benchmarks/data_plane.py): one module per system.

Every in-venv peer module defines ``Peer(files, rows, work_dir)`` with ``statistics() -> rows
counted`` and ``transform(out_dir) -> rows written``, and optional ``extras()`` and ``close()``.
``tfx_peer.py`` is a script for its own virtual environment (TFDV + tf.Transform).
"""
