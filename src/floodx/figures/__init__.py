"""The paper's Figures 1-4 from our result files (matplotlib, Agg; no display needed).

Each `figureN(...)` (module `figureN`) takes explicit data (data frames / dicts;
`figureN_inputs(...)` reads them from result files), writes one PNG and returns the matplotlib
Figure (tests inspect its axes). Every figure carries a title with the data set, axis labels with
units, a legend and a footnote-size caption line naming the configuration and its deviations from
the paper. `write` is the command line, `python -m floodx.figures figureN ...`.
"""
