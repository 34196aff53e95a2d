"""The paper's tables regenerated from our result files, with the paper's numbers beside them.

- Table 2: Clean%, Aua%, Suc%, #Query per data set x method x attack: the estimate (mean over
  seeds; the sample std too in the CSV) with its 95% interval, and Aua% tested against
  fine-tuning example by example (`floodx.comparisons`): ▲/▼ mark significant wins and losses,
  and bold is the highest Aua% among the significant wins only. From the attack `summary.json`
  files and the `examples.csv` beside each. `reading.md` says in words what the table shows.
- `table2_vs_paper`: every cell we ran beside the paper's value and the difference; data sets the
  paper did not use are compared through a configurable stand-in mapping (e.g. rt -> sst2).
- Search summary: flood levels chosen by Flooding (wide grid) and Flooding-X (accordance window)
  and how many training runs each search needed. From `choice.json`.
- Table 3: seconds per training epoch and the ratio to fine-tuning, from `times.json`.

The paper's Tables 2 and 3 are package data (`floodx/paper_results/paper_table{2,3}.csv`).

Every Markdown table is also written as an HTML page beside it (`floodx.pages`): the report shows
those.

CLI (one sub-command per table, every output written atomically)::

    python -m floodx.tables table2 --summaries results/attack/*/*/seed*/*/summary.json \
        --out-dir results/tables [--paper-map '{"rt": {"paper": "sst2", "stand_in": true}}']
    python -m floodx.tables table3 --times results/profile/*/times.json --out-dir results/tables
    python -m floodx.tables search --choices results/search/*/*/seed*/choice.json \
        [--windows results/probe/*/seed*/window.json] --out-dir results/tables
"""
