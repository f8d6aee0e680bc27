"""Exploration of embedding stores: the paper's exploratory analysis and the SSL poster's cluster analysis.

``explore(stores, out, ExploreOptions())`` (in `report`) writes ``report.md`` with PNG figures and CSV/Parquet
tables; ``options`` holds its knobs and ``sections`` one module per part of the report. The analyses it draws
on, one concern each:

``datasets``       stores -> `Dataset` per (encoder, split); window labels (folder species or pseudo-label)
``frequency``      species counts, call share, top-N table, ranked-frequency plot (Table 1, Figure 2)
``cooccurrence``   FP-growth itemsets, association rules, size distribution and rule graph (Table 2, Figs 3, 6)
``maps``           PaCMAP/UMAP projections coloured by species (Figures 1, 5)
``clusters``       k-means, purity, random baseline, AMI, per-cluster table
``contact_sheet``  spectrograms of each cluster's most typical windows
``figures``, ``markdown``, ``errors``  matplotlib (Agg) and table helpers, the user-facing error

Heavy imports (matplotlib, pacmap, mlxtend) happen only when a module is imported, not here.
"""
