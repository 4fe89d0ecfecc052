"""The report side of mtlib: what turns finished runs into tables, figures and pages; the training core never
imports it. Modules: paper (the report's numbers, the experiment plan), runs (the one reader of run folders),
stats (intervals, verdicts), tables (results.md, the notebooks' tables and prose), execute (papermill, the
`report` command), figures, cost (profile.md), sweep (the lr sweep), datacard (00_data's tables)."""
