"""The report's sections, one module each, in the order they appear in ``report.md``.

Each takes the datasets and options and returns its Markdown, saving its figures and tables through a
:class:`~birdkit.explore.sections.output.ReportOutput` (which also collects the numbers for ``summary.json``):

``header``          the stores explored
``frequency``       1. species frequency and call share (paper Table 1, Figure 2)
``cooccurrence``    2. FP-growth itemsets and association rules (Table 2, Figures 3 and 6)
``maps``            3. PaCMAP/UMAP maps per encoder (Figures 1 and 5)
``clusters``        4. k-means clusters scored against labels, and ``contact_sheets`` of their windows
"""
